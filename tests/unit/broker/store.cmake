vdi_unit_test(test_store SOURCES test_store.c LIBS vdi_broker_store)
