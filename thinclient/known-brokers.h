#pragma once
/*
 * Trust on first use: the SHA-256 fingerprints of broker certificates this user accepted,
 * one "HOST:PORT FINGERPRINT" line each ([v6addr]:PORT for IPv6; fingerprint as 64 hex
 * digits, colons allowed), like ssh's known_hosts. Lines starting with '#' and blank
 * lines are ignored; malformed lines are skipped with a warning (the file is the user's
 * to edit: removing a line is how a replaced certificate is accepted again).
 *
 * Host names match case-insensitively, addresses as written (no normalisation: the
 * client writes them the way it looks them up).
 *
 * Default file: $XDG_CONFIG_HOME/vdi/known_brokers, else ~/.config/vdi/known_brokers.
 * Caps: a file larger than 1 MiB is refused (-EFBIG); lines longer than 1024 bytes are
 * skipped like malformed ones.
 */
#include <stdint.h>

#define KNOWN_BROKERS_FILE_MAX (1024 * 1024)
#define KNOWN_BROKERS_LINE_MAX 1024

/* As in display/tls.h (an identical definition is allowed twice): vdi_thinclient_core
 * has no TLS and does not see the display headers. */
#define TLS_SHA256_SIZE 32

/* The default path (malloc'd). -ENOENT when neither XDG_CONFIG_HOME nor HOME is set. */
int known_brokers_default_path(char **ret);

/* Looks up host:port (host without brackets, as tcp_parse_target() gives it). Returns 1
 * with sha filled (the accepted fingerprint; the first matching line wins), 0 when the
 * broker is not in the file (or the file does not exist), -EINVAL for a host or port the
 * file cannot hold, -EFBIG, -errno when unreadable. */
int known_brokers_lookup(const char *path, const char *host, int port,
                         uint8_t sha[TLS_SHA256_SIZE]);

/* Records host:port -> sha (replacing every older line for the same host:port; other
 * lines, comments and malformed ones included, are kept as they are). Creates the
 * directory (0700) and the file (0600); writes a temporary file and renames it, so a
 * crash leaves the old file or the new one (client_file_write()). Returns 0, -EINVAL
 * (host, port), -EFBIG, or -errno. */
int known_brokers_add(const char *path, const char *host, int port,
                      const uint8_t sha[TLS_SHA256_SIZE]);
