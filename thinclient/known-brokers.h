#pragma once
/*
 * Trust on first use: the SHA-256 fingerprints of broker certificates this user accepted,
 * one "HOST:PORT FINGERPRINT" line each ([v6addr]:PORT for IPv6; fingerprint as 64 hex
 * digits, colons allowed), like ssh's known_hosts. Lines starting with '#' and blank
 * lines are ignored; malformed lines are skipped with a warning (the file is the user's
 * to edit: removing a line is how a replaced certificate is accepted again).
 *
 * Default file: $XDG_CONFIG_HOME/vdi/known_brokers, else ~/.config/vdi/known_brokers.
 * Caps: the file is read up to 1 MiB, lines up to 1024 bytes.
 */
#include <stdint.h>

#include "tls.h"

/* The default path (malloc'd). -ENOENT when neither XDG_CONFIG_HOME nor HOME is set. */
int known_brokers_default_path(char **ret);

/* Looks up host:port. Returns 1 with sha filled (the accepted fingerprint), 0 when the
 * broker is not in the file (or the file does not exist), -errno when unreadable. */
int known_brokers_lookup(const char *path, const char *host, int port,
                         uint8_t sha[TLS_SHA256_SIZE]);

/* Records host:port -> sha (replacing an older line for the same host:port). Creates
 * the directory (0700) and the file (0600); writes a temporary file and renames it, so
 * a crash leaves the old file or the new one. Returns 0 or -errno. */
int known_brokers_add(const char *path, const char *host, int port,
                      const uint8_t sha[TLS_SHA256_SIZE]);
