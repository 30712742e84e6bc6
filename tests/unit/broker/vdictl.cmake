# vdictl: the command line, tables and exit codes without a network (test_vdictl), and
# the HTTPS client against a real local TLS server with a throwaway PKI (test_http_client).
vdi_unit_test(test_vdictl SOURCES test_vdictl.c LIBS vdi_vdictl)
vdi_unit_test(test_http_client SOURCES test_http_client.c
              LIBS vdi_vdictl vdi_test_pki Threads::Threads)
