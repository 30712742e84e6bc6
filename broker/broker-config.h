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
    char *max_startups; /* "start:rate:full", see throttle_startups_parse */
    int max_startups_per_address;
    int max_sessions;
    int desktop_start_timeout_s;
    char *database;
    char *cpu_overcommit;    /* a decimal ratio, see broker_config_ratio */
    char *memory_overcommit;
    int shutdown_timeout_s;
    int spare_check_interval_s;
    char *admin_address; /* "" = no admin API */
    int admin_port;
    char *admin_group;
    /* brute force (auth/throttle.h) */
    int throttle_free_failures;
    int throttle_delay_ms;
    int throttle_delay_max_ms;
    int lockout_failures;
    int lockout_s;
    int throttle_window_s;
    /* sessions */
    int reattach_timeout_s;
    char *shadow_policy; /* notify | silent | deny */
    bool audit_syslog;
    int worker_threads;
    char *log_level; /* error | warning | info | debug */
};

extern const struct config_option broker_config_table[];
extern const size_t broker_config_table_size;

/* Defaults for every key. Returns 0 or -errno (err filled). */
int broker_config_init(struct broker_config *c, struct config_error *err);
/* Cross-field rules, checked after the file and --set options: absolute paths, files that
 * must exist and be readable (tls_*), pairs that go together (tls_cert with tls_key),
 * numeric listen/admin addresses, overcommit ratios, the database URL.
 * Returns 0 or -EINVAL with err naming the key. */
int broker_config_validate(const struct broker_config *c, struct config_error *err);
/* The libvirt URI to open: libvirt_uri, or qemu:///embed?root=<state_dir>/libvirt.
 * Returns 0 or -ENOMEM. */
int broker_config_libvirt_uri(const struct broker_config *c, char **ret);
/* The store URL: database, or sqlite:<state_dir>/vdi.db. Returns 0 or -ENOMEM. */
int broker_config_database(const struct broker_config *c, char **ret);
/* Parses an overcommit ratio ("4.0"): 0.1 to 100. ret may be NULL. 0 or -EINVAL. */
int broker_config_ratio(const char *text, double *ret);
/* The throttling options these keys describe. */
struct throttle_options;
void broker_config_throttle(const struct broker_config *c, struct throttle_options *ret);
void broker_config_done(struct broker_config *c);
