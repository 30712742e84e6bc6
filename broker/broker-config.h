#pragma once
/*
 * vdi-broker's configuration: one declarative table (broker-config.c) that gives
 * parsing, defaults, `vdi-broker --print-config` and packaging/vdi.conf. Field names are
 * the key names.
 */
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define BROKER_CONFIG_DEFAULT_FILE "/etc/vdi/vdi.conf"

struct broker_config {
    char *listen_address;
    int listen_port;
    char *state_dir;
    char *libvirt_uri;
    char *virt_type; /* kvm | qemu */
    char *tls_cert;
    char *tls_key;
    char *tls_hostnames;
    char *tls_priority;
    char *pam_service;
    char *session_program;
    char *session_user;
    int handshake_timeout_s;
    int login_timeout_s;
    int max_unauthenticated;
    int max_sessions;
    int desktop_start_timeout_s;
    char *template_disk;
    char *template_kernel;
    char *template_initrd;
    char *template_cmdline;
    int template_memory_mib;
    int template_vcpus;
    int worker_threads;
    char *log_level; /* error | warning | info | debug */
};

extern const struct config_option broker_config_table[];
extern const size_t broker_config_table_size;

/* Defaults for every key. Returns 0 or -errno (err filled). */
int broker_config_init(struct broker_config *c, struct config_error *err);
/* Cross-field rules, checked after the file and --set options: absolute paths, files that
 * must exist and be readable (template_*, tls_*), pairs that go together (tls_cert with
 * tls_key, template_initrd/template_cmdline need template_kernel), a listen_address that
 * is a numeric IP address. Returns 0 or -EINVAL with err naming the key. */
int broker_config_validate(const struct broker_config *c, struct config_error *err);
/* The libvirt URI to open: libvirt_uri, or qemu:///embed?root=<state_dir>/libvirt.
 * Returns 0 or -ENOMEM. */
int broker_config_libvirt_uri(const struct broker_config *c, char **ret);
void broker_config_done(struct broker_config *c);
