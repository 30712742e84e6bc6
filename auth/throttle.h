#pragma once
/*
 * Brute-force protection for password checks (VNC logins and the admin API): growing
 * delays and temporary lockouts per client address and per account, and OpenSSH-style
 * MaxStartups for unauthenticated connections.
 *
 * Failures are counted per attempt (each credential check, and each attempt refused
 * because it came too early), not per connection, in two tables: by client address and
 * by account name. For each key:
 *   - its failures are forgotten once window_s has passed since its last failure (and
 *     its penalty is over);
 *   - after free_failures failures, each further failure sets a penalty: the key may not
 *     try again for delay_base_ms * 2^(failures - free_failures - 1), at most delay_max_ms;
 *   - at lockout_failures failures the key is locked for lockout_s (temporary on purpose:
 *     a permanent lock would let anyone lock any account out for good); each further
 *     failure within the window locks it again;
 *   - a success resets the account and the address.
 * Memory is capped: at max_entries keys per table the entry with the oldest last failure
 * is dropped (its penalty is lost, not anybody else's).
 *
 * Keys: an address is used as given up to THROTTLE_ADDRESS_MAX bytes; an account name is
 * folded to ASCII lower case (directories such as AD compare names case-insensitively)
 * and used up to THROTTLE_USER_MAX bytes. A longer key keeps its beginning and ends in
 * "~" plus 16 hex digits of a keyed hash of the whole string, so long keys that share a
 * prefix stay apart. Lookups use a hash table with a random key (no hash flooding).
 *
 * Time comes from the caller (monotonic milliseconds) so that tests can drive it.
 * Thread-safe (one mutex): the broker's event loop and the admin API's threads share one.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define THROTTLE_ADDRESS_MAX 64
#define THROTTLE_USER_MAX 32
#define THROTTLE_ENTRIES_MAX (1u << 24)

struct throttle_options {
    int free_failures;    /* failures before any delay; default 3 */
    int delay_base_ms;    /* first delay; default 1000 */
    int delay_max_ms;     /* default 30000 */
    int lockout_failures; /* failures within the window that lock; default 10 */
    int lockout_s;        /* default 300 */
    int window_s;         /* default 900 */
    size_t max_entries;   /* per table; default 10000 */
};

/* The defaults above. */
void throttle_options_default(struct throttle_options *o);

enum throttle_verdict {
    THROTTLE_ALLOW,   /* go ahead and check the password */
    THROTTLE_DELAYED, /* too early after a failure: refuse without checking */
    THROTTLE_LOCKED,  /* locked out: refuse without checking */
};

struct throttle_result {
    enum throttle_verdict verdict;
    bool by_account;  /* the account's entry decided (else the address's) */
    uint64_t wait_ms; /* DELAYED / LOCKED: until the key may try again */
};

struct throttle;

/* Returns 0, -EINVAL (a value out of range: negative, lockout_failures <= free_failures,
 * delay_max_ms < delay_base_ms, lockout_s or window_s 0, max_entries 0 or above
 * THROTTLE_ENTRIES_MAX), -ENOMEM. */
int throttle_new(const struct throttle_options *o, struct throttle **ret);
void throttle_free(struct throttle *t);

/* Before checking a password of user (may be "" when the name is invalid: then only the
 * address counts) from address. A refusal (DELAYED, LOCKED) counts as a failed attempt
 * of the key(s) that refused it, so hammering while penalised only makes it longer; the
 * other key is not charged (a penalised address spraying names locks none of them).
 * When both keys refuse, the stricter decides: LOCKED over DELAYED, then the longer wait,
 * then the account. Allocates nothing. */
struct throttle_result throttle_check(struct throttle *t, const char *address, const char *user,
                                      uint64_t now_ms);
/* After the password check: failure or success (success clears both keys). */
void throttle_failure(struct throttle *t, const char *address, const char *user, uint64_t now_ms);
void throttle_success(struct throttle *t, const char *address, const char *user);

/* Counters for /metrics and tests. */
struct throttle_stats {
    uint64_t delayed, locked;   /* attempts refused so far */
    uint64_t lockouts;          /* times a key became locked */
    size_t addresses, accounts; /* tracked entries (expired ones go at the next check) */
};
void throttle_stats(struct throttle *t, struct throttle_stats *ret);

/* ---- MaxStartups ---- */

/* "start:rate:full" as in sshd_config(5) (or a single number N = N:100:N): with `start`
 * or more unauthenticated connections, a new one is refused with probability rate%,
 * rising linearly to 100% at `full`. */
struct throttle_startups {
    unsigned start, rate, full;
    unsigned per_address; /* unauthenticated connections from one address; 0 = no limit */
};

/* Parses "10:30:100" or "10" (decimal digits only) into start, rate and full;
 * per_address is left as it is. 1 <= start <= full, rate 1..100. Returns 0 or -EINVAL
 * (then *ret is unchanged). */
int throttle_startups_parse(const char *text, struct throttle_startups *ret);

/* Whether a new connection may be accepted, given how many unauthenticated connections
 * exist in total and from its address now (not counting the new one): refused when
 * from_address >= per_address (if set), or with the probability above, i.e. when
 * random < probability * 2^32. random: a uniformly random 32-bit value.
 * *ret_reason (may be NULL) gets a static text for the log when refused. */
bool throttle_startup_allowed(const struct throttle_startups *s, size_t unauthenticated,
                              size_t from_address, uint32_t random, const char **ret_reason);
