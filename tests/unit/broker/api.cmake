# broker/api.c over real HTTPS (vdictl's http-client) with a real store (SQLite in a
# temporary directory), real pools on libvirt's test:///default driver, PAM through
# pam_wrapper (pam_matrix with a password file) and groups through nss_wrapper (the
# system's entries plus vdiadmin, a member of vdi-admins, and plain, who is not).
find_library(PAM_WRAPPER_LIBRARY NAMES pam_wrapper libpam_wrapper.so.0)
find_file(PAM_MATRIX_MODULE pam_matrix.so PATHS /usr/lib/x86_64-linux-gnu/pam_wrapper
          /usr/lib/pam_wrapper /usr/lib64/pam_wrapper NO_DEFAULT_PATH)
find_library(NSS_WRAPPER_LIBRARY NAMES nss_wrapper libnss_wrapper.so)
if(NOT PAM_WRAPPER_LIBRARY OR NOT PAM_MATRIX_MODULE OR NOT NSS_WRAPPER_LIBRARY)
  message(FATAL_ERROR "pam_wrapper or nss_wrapper not found (run packaging/install-deps.sh)")
endif()

set(api_dir ${CMAKE_CURRENT_BINARY_DIR}/api-test)
file(WRITE ${api_dir}/passdb "vdiadmin:admin-pw:vdi-api-test\nplain:plain-pw:vdi-api-test\n")
file(WRITE ${api_dir}/services/vdi-api-test
     "auth required ${PAM_MATRIX_MODULE} passdb=${api_dir}/passdb\n"
     "account required ${PAM_MATRIX_MODULE} passdb=${api_dir}/passdb\n")
# libpam reads "other" first (and complains when there is none): the same, no users.
file(WRITE ${api_dir}/nobody "")
file(WRITE ${api_dir}/services/other
     "auth required ${PAM_MATRIX_MODULE} passdb=${api_dir}/nobody\n"
     "account required ${PAM_MATRIX_MODULE} passdb=${api_dir}/nobody\n")
file(READ /etc/passwd api_system_passwd)
file(READ /etc/group api_system_group)
file(WRITE ${api_dir}/passwd
     "${api_system_passwd}"
     "vdiadmin:x:5201:5201:vdi admin:/nonexistent:/bin/sh\n"
     "plain:x:5202:5202:plain user:/nonexistent:/bin/sh\n")
file(WRITE ${api_dir}/group
     "${api_system_group}"
     "vdiadmin:x:5201:\n"
     "plain:x:5202:\n"
     "vdi-admins:x:5200:vdiadmin\n")

# json-c comes with vdi_vdictl (PUBLIC)
vdi_unit_test(test_api SOURCES test_api.c
              LIBS vdi_broker_api vdi_vdictl vdi_test_pki Threads::Threads)
set(api_env "LD_PRELOAD=${PAM_WRAPPER_LIBRARY}:${NSS_WRAPPER_LIBRARY}" PAM_WRAPPER=1
    PAM_WRAPPER_SERVICE_DIR=${api_dir}/services NSS_WRAPPER_PASSWD=${api_dir}/passwd
    NSS_WRAPPER_GROUP=${api_dir}/group)
if(VDI_SANITIZE)
  # ASan wants to come first in the library list and refuses dlopen(RTLD_DEEPBIND);
  # pam_wrapper 1.1 reads its switch under uid_wrapper's name.
  list(APPEND api_env ASAN_OPTIONS=verify_asan_link_order=0 UID_WRAPPER_DISABLE_DEEPBIND=1
       PAM_WRAPPER_DISABLE_DEEPBIND=1 NSS_WRAPPER_DISABLE_DEEPBIND=1)
endif()
set_tests_properties(test_api PROPERTIES ENVIRONMENT "${api_env}" TIMEOUT 120)
