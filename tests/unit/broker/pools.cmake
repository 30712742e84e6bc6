# broker/pools.c against a real store (SQLite in a temporary directory) and real libvirt
# through its in-memory test driver (test:///default). Group entitlements go through NSS:
# nss_wrapper serves passwd/group files written here (the system's entries plus alice,
# bob, carol and a group "eng" of alice and bob).
find_library(NSS_WRAPPER_LIBRARY NAMES nss_wrapper libnss_wrapper.so)
if(NOT NSS_WRAPPER_LIBRARY)
  message(FATAL_ERROR "nss_wrapper not found (run packaging/install-deps.sh)")
endif()

set(nss_dir ${CMAKE_CURRENT_BINARY_DIR}/nss)
file(READ /etc/passwd system_passwd)
file(READ /etc/group system_group)
file(WRITE ${nss_dir}/passwd
     "${system_passwd}"
     "alice:x:5001:5001:Alice:/home/alice:/bin/sh\n"
     "bob:x:5002:5002:Bob:/home/bob:/bin/sh\n"
     "carol:x:5003:5003:Carol:/home/carol:/bin/sh\n")
file(WRITE ${nss_dir}/group
     "${system_group}"
     "alice:x:5001:\n"
     "bob:x:5002:\n"
     "carol:x:5003:\n"
     "eng:x:5100:alice,bob\n")

vdi_unit_test(test_pools SOURCES test_pools.c pools-fixture.c LIBS vdi_broker_pools)
set(pools_env LD_PRELOAD=${NSS_WRAPPER_LIBRARY} NSS_WRAPPER_PASSWD=${nss_dir}/passwd
    NSS_WRAPPER_GROUP=${nss_dir}/group)
if(VDI_SANITIZE)
  # ASan wants to come first in the library list, and refuses dlopen(RTLD_DEEPBIND).
  list(APPEND pools_env ASAN_OPTIONS=verify_asan_link_order=0 NSS_WRAPPER_DISABLE_DEEPBIND=1)
endif()
set_tests_properties(test_pools PROPERTIES ENVIRONMENT "${pools_env}")
# Desktops that stop by themselves (pools-events.c): stop actions, crash back-off, FAILED.
vdi_unit_test(test_pools_events SOURCES test_pools_events.c pools-fixture.c LIBS vdi_broker_pools)
set_tests_properties(test_pools_events PROPERTIES ENVIRONMENT "${pools_env}")
