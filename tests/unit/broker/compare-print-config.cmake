# Fails when `vdi-broker --print-config` differs from packaging/vdi.conf.
execute_process(COMMAND ${PROGRAM} --print-config OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "vdi-broker --print-config failed: ${rc}")
endif()
file(READ ${EXPECTED} expected)
if(NOT out STREQUAL expected)
  message(FATAL_ERROR "packaging/vdi.conf is stale: regenerate with vdi-broker --print-config")
endif()
