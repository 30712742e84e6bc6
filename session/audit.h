#pragma once
/*
 * The audit log: who did what, from where, one JSON object per line in a file the broker
 * keeps open (append only), and the same line to syslog (LOG_AUTHPRIV) when asked:
 *
 *   {"time":"2026-11-21T04:29:25.123Z","event":"login.failure","user":"alice","client":"192.0.2.7"}
 *
 * "time" (UTC, milliseconds) and "event" come first; the caller's fields follow in the
 * order given. Values are JSON strings or integers. Every string is escaped here (quotes,
 * backslashes, control characters as \u00XX) and invalid UTF-8 becomes U+FFFD, so a user
 * name or client string can never forge a second line or break the JSON. A line is at
 * most AUDIT_LINE_MAX bytes: a value that does not fit is cut (on a character boundary)
 * and the line gets "truncated":true.
 *
 * Events are named "<area>.<what>" ("login.success", "login.failure", "login.throttled",
 * "login.locked", "admin.pool.add", "session.start", ...); readers filter on prefixes.
 *
 * The log has no field for a password and must never get one: callers pass no secrets
 * (passwords, tokens, keys) in any field.
 *
 * Thread-safe: each line is built on the caller's stack and goes out in one write() on an
 * O_APPEND descriptor, so lines of concurrent writers (threads or processes) never mix.
 * Rotation by copytruncate works as is (packaging/vdi-audit.logrotate).
 *
 * Linux's libaudit, which libpam loads into the broker, has functions named audit_open()
 * and audit_close() too: had ours these link names, libpam would call them (the program's
 * symbols come first) and crash. So each function below keeps its name in C and links as
 * "vdi_<name>" (AUDIT_SYMBOL).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIT_LINE_MAX 4096 /* bytes, with the newline */
#define AUDIT_SYMBOL(name) __asm__("vdi_" #name)

struct audit;

/* Opens (creating with mode 0600) path for appending. path NULL: no file, syslog only.
 * Returns 0 or a negative errno from open(). */
int audit_open(const char *path, bool to_syslog, struct audit **ret) AUDIT_SYMBOL(audit_open);
/* NULL ok. */
void audit_close(struct audit *a) AUDIT_SYMBOL(audit_close);
static inline void audit_closep(struct audit **a)
{
    audit_close(*a);
}

/* One field of an event: a string (NULL leaves the field out) or an integer. */
struct audit_field {
    const char *key;
    const char *str;
    int64_t num;
    bool is_num;
};
#define AUDIT_STR(k, v) ((struct audit_field){.key = (k), .str = (v)})
#define AUDIT_NUM(k, v) ((struct audit_field){.key = (k), .num = (int64_t)(v), .is_num = true})

/* Writes one event with string fields given as NULL-terminated key, value pairs (at most
 * 32 pairs):
 *     audit_event(a, "login.failure", "user", user, "client", addr, NULL);
 * A NULL value leaves its field out; keys "time" and "event" are ignored (they are the
 * log's own). a NULL: nothing happens (returns 0), so callers need no checks.
 * Returns 0, -EINVAL (event NULL or ""), or the write's negative errno; the first failure
 * after a success is also logged, so a full disk is noticed once rather than per event. */
int audit_event(struct audit *a, const char *event, ...) AUDIT_SYMBOL(audit_event)
    __attribute__((sentinel));
/* The same with typed fields (n of them). */
int audit_event_fields(struct audit *a, const char *event, const struct audit_field *fields,
                       size_t n) AUDIT_SYMBOL(audit_event_fields);

/* Formats one line as audit_event_fields() would write it (with the newline and a NUL) into
 * buf of AUDIT_LINE_MAX + 1 bytes, with time_ms (unix milliseconds) as its time. Returns
 * the line's length, or -EINVAL. For tests and for writers of their own. */
int audit_format(char *buf, int64_t time_ms, const char *event, const struct audit_field *fields,
                 size_t n) AUDIT_SYMBOL(audit_format);
