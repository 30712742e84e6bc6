# Owned by the proxy work: defines the vdi_proxy library (proxy.h; README.md).

# The status screen's font: DejaVu Sans (Debian package fonts-dejavu-core) rasterised at
# build time by vdi-fontgen (FreeType, libfreetype-dev) into a generated C file. Nothing
# is committed and vdi-session opens no font file at run time.
pkg_check_modules(FREETYPE REQUIRED IMPORTED_TARGET freetype2)
find_file(VDI_STATUS_FONT DejaVuSans.ttf
          PATHS /usr/share/fonts/truetype/dejavu /usr/share/fonts/TTF
          NO_DEFAULT_PATH REQUIRED)
set(VDI_STATUS_FONT_PX 22 CACHE STRING "Pixel size of the proxy's status screen text")

add_executable(vdi-fontgen ${CMAKE_CURRENT_SOURCE_DIR}/fontgen.c)
target_link_libraries(vdi-fontgen PRIVATE PkgConfig::FREETYPE)

set(VDI_STATUS_FONT_C ${CMAKE_CURRENT_BINARY_DIR}/status-font.c)
add_custom_command(
  OUTPUT ${VDI_STATUS_FONT_C}
  COMMAND vdi-fontgen ${VDI_STATUS_FONT} ${VDI_STATUS_FONT_PX} ${VDI_STATUS_FONT_C}
  DEPENDS vdi-fontgen ${VDI_STATUS_FONT}
  COMMENT "Rasterising the status screen font"
  VERBATIM)

# The status screen and notice banner renderer alone (no libvnc), so that the test tool
# vdi-render-status draws with exactly the proxy's code.
add_library(vdi_status_screen STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/status-screen.c
  ${VDI_STATUS_FONT_C})
target_include_directories(vdi_status_screen PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})

add_library(vdi_proxy STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/proxy.c
  ${CMAKE_CURRENT_SOURCE_DIR}/upstream.c
  ${CMAKE_CURRENT_SOURCE_DIR}/extkey.c
  ${CMAKE_CURRENT_SOURCE_DIR}/extclip.c
  ${CMAKE_CURRENT_SOURCE_DIR}/input-queue.c)
target_include_directories(vdi_proxy PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
pkg_check_modules(ZLIB REQUIRED IMPORTED_TARGET zlib) # the extended clipboard's data
target_link_libraries(vdi_proxy PUBLIC vdi_status_screen vdi_common PkgConfig::VNCSERVER
                      PkgConfig::VNCCLIENT PkgConfig::ZLIB Threads::Threads)
