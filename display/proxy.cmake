# Owned by the proxy work: defines the vdi_proxy library.
add_library(vdi_proxy STATIC proxy.c)
target_include_directories(vdi_proxy PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(vdi_proxy PUBLIC vdi_common PkgConfig::VNCSERVER PkgConfig::VNCCLIENT Threads::Threads)
