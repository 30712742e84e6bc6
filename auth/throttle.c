/* Brute-force protection and MaxStartups (throttle.h). */
#include "throttle.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "util.h"

/* Both tables use the same entry; the account table leaves the end of key unused. */
#define KEY_SIZE (THROTTLE_ADDRESS_MAX + 1)
/* A long key: its first bytes, "~", 16 hex digits of the keyed hash of the whole string. */
#define KEY_HASH_SUFFIX 17
#define BUCKETS_MIN 16

struct entry {
    struct entry *chain; /* next in the hash bucket */
    struct entry *older; /* neighbours in the age list (by last failure) */
    struct entry *newer;
    uint64_t hash;
    uint64_t last_failure_ms;
    uint64_t until_ms; /* penalty: no attempt before this */
    uint32_t failures; /* within the window */
    bool locked;       /* the penalty is a lockout (else a delay) */
    char key[KEY_SIZE];
};

struct table {
    struct entry **buckets;
    size_t n_buckets; /* a power of two */
    size_t n;
    size_t key_max;
    bool fold; /* ASCII lower case (account names) */
    struct entry *oldest, *newest;
};

struct throttle {
    pthread_mutex_t lock;
    struct throttle_options o;
    uint64_t window_ms, lockout_ms;
    uint64_t sip_k0, sip_k1;
    struct table addresses, accounts;
    uint64_t delayed, locked, lockouts;
};

/* ---- SipHash-2-4 (keyed, so that clients cannot aim keys at one bucket) ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static unsigned char fold_byte(unsigned char c, bool fold)
{
    return fold && c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static uint64_t siphash(const struct throttle *t, const char *s, size_t len, bool fold)
{
    uint64_t v0 = t->sip_k0 ^ UINT64_C(0x736f6d6570736575);
    uint64_t v1 = t->sip_k1 ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = t->sip_k0 ^ UINT64_C(0x6c7967656e657261);
    uint64_t v3 = t->sip_k1 ^ UINT64_C(0x7465646279746573);
    const unsigned char *p = (const unsigned char *)s;
    uint64_t m = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        m |= (uint64_t)fold_byte(p[i], fold) << (8 * (i % 8));
        if (i % 8 == 7) {
            v3 ^= m;
            SIPROUND;
            SIPROUND;
            v0 ^= m;
            m = 0;
        }
    }
    m |= (uint64_t)(len & 0xff) << 56;
    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* The table key for s into buf (KEY_SIZE bytes); returns its hash. */
static uint64_t key_make(const struct throttle *t, const struct table *tb, const char *s, char *buf)
{
    size_t len = strnlen(s, tb->key_max + 1);

    if (len > tb->key_max) {
        static const char hex[] = "0123456789abcdef";
        uint64_t h = siphash(t, s, strlen(s), tb->fold);

        len = tb->key_max - KEY_HASH_SUFFIX;
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)fold_byte((unsigned char)s[i], tb->fold);
        buf[len++] = '~';
        for (int shift = 60; shift >= 0; shift -= 4)
            buf[len++] = hex[(h >> shift) & 0xf];
    } else {
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)fold_byte((unsigned char)s[i], tb->fold);
    }
    buf[len] = '\0';
    return siphash(t, buf, len, false);
}

/* ---- one table: hash buckets plus a list from oldest to newest last failure ---- */

static int table_init(struct table *tb, size_t key_max, bool fold)
{
    *tb = (struct table){.n_buckets = BUCKETS_MIN, .key_max = key_max, .fold = fold};
    tb->buckets = calloc(tb->n_buckets, sizeof(*tb->buckets));
    return tb->buckets ? 0 : -ENOMEM;
}

static void table_done(struct table *tb)
{
    struct entry *e = tb->oldest;

    while (e) {
        struct entry *next = e->newer;
        free(e);
        e = next;
    }
    free(tb->buckets);
}

static struct entry *table_find(const struct table *tb, const char *key, uint64_t hash)
{
    for (struct entry *e = tb->buckets[hash & (tb->n_buckets - 1)]; e; e = e->chain)
        if (e->hash == hash && streq(e->key, key))
            return e;
    return NULL;
}

static void age_unlink(struct table *tb, struct entry *e)
{
    if (e->older)
        e->older->newer = e->newer;
    else
        tb->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        tb->newest = e->older;
    e->older = e->newer = NULL;
}

static void age_append(struct table *tb, struct entry *e)
{
    e->older = tb->newest;
    e->newer = NULL;
    if (tb->newest)
        tb->newest->newer = e;
    else
        tb->oldest = e;
    tb->newest = e;
}

static void bucket_unlink(struct table *tb, struct entry *e)
{
    struct entry **p = &tb->buckets[e->hash & (tb->n_buckets - 1)];

    while (*p != e)
        p = &(*p)->chain;
    *p = e->chain;
    e->chain = NULL;
}

static void bucket_link(struct table *tb, struct entry *e)
{
    struct entry **p = &tb->buckets[e->hash & (tb->n_buckets - 1)];

    e->chain = *p;
    *p = e;
}

/* Takes e out of the table without freeing it. */
static void table_unlink(struct table *tb, struct entry *e)
{
    bucket_unlink(tb, e);
    age_unlink(tb, e);
    tb->n--;
}

static void table_remove(struct table *tb, struct entry *e)
{
    table_unlink(tb, e);
    free(e);
}

/* Doubles the buckets while the load is above 1, up to max_entries buckets (rounded up
 * to a power of two). A failed allocation only keeps the chains longer. */
static void table_grow(struct table *tb, size_t max_entries)
{
    struct entry **buckets;
    size_t n = tb->n_buckets * 2;

    if (tb->n <= tb->n_buckets || tb->n_buckets >= max_entries)
        return;
    buckets = calloc(n, sizeof(*buckets));
    if (!buckets)
        return;
    for (struct entry *e = tb->oldest; e; e = e->newer) {
        e->chain = buckets[e->hash & (n - 1)];
        buckets[e->hash & (n - 1)] = e;
    }
    free(tb->buckets);
    tb->buckets = buckets;
    tb->n_buckets = n;
}

/* ---- policy ---- */

/* Nothing left to remember: the window has passed since the last failure, and the
 * penalty is over. A clock that went back (another thread's earlier reading) is not. */
static bool entry_expired(const struct throttle *t, const struct entry *e, uint64_t now)
{
    return now >= e->last_failure_ms + t->window_ms && now >= e->until_ms;
}

/* Drops expired entries from the old end; each entry is dropped once, so this is O(1)
 * amortised per call. */
static void table_purge(const struct throttle *t, struct table *tb, uint64_t now)
{
    while (tb->oldest && entry_expired(t, tb->oldest, now))
        table_remove(tb, tb->oldest);
}

/* The entry for key, or NULL (also when it expired: then it is dropped). */
static struct entry *table_get(struct throttle *t, struct table *tb, const char *s, uint64_t now)
{
    char key[KEY_SIZE];
    uint64_t hash = key_make(t, tb, s, key);
    struct entry *e = table_find(tb, key, hash);

    if (e && entry_expired(t, e, now)) {
        table_remove(tb, e);
        e = NULL;
    }
    return e;
}

static uint64_t delay_ms(const struct throttle *t, uint32_t failures)
{
    uint32_t shift = failures - (uint32_t)t->o.free_failures - 1;
    uint64_t d = (uint64_t)t->o.delay_base_ms;

    /* delay_base_ms < 2^31: shifted by < 32 it stays below 2^63 */
    if (shift < 32)
        d <<= shift;
    else
        d = (uint64_t)t->o.delay_max_ms;
    return d < (uint64_t)t->o.delay_max_ms ? d : (uint64_t)t->o.delay_max_ms;
}

/* Counts one failure of e at now and sets its penalty. */
static void entry_fail(struct throttle *t, struct table *tb, struct entry *e, uint64_t now)
{
    uint64_t until;

    if (entry_expired(t, e, now)) {
        e->failures = 0;
        e->locked = false;
    }
    if (e->failures < UINT32_MAX)
        e->failures++;
    if (now > e->last_failure_ms)
        e->last_failure_ms = now;
    age_unlink(tb, e);
    age_append(tb, e);

    if (e->failures >= (uint32_t)t->o.lockout_failures) {
        if (!e->locked || now >= e->until_ms)
            t->lockouts++;
        e->locked = true;
        until = now + t->lockout_ms;
    } else if (e->failures > (uint32_t)t->o.free_failures) {
        until = now + delay_ms(t, e->failures);
    } else {
        return;
    }
    if (until > e->until_ms)
        e->until_ms = until;
}

/* Counts a failure of key s, adding its entry (evicting the oldest at the cap). */
static void table_fail(struct throttle *t, struct table *tb, const char *s, uint64_t now)
{
    char key[KEY_SIZE];
    uint64_t hash = key_make(t, tb, s, key);
    struct entry *e = table_find(tb, key, hash);

    if (!e) {
        if (tb->n >= t->o.max_entries) {
            /* reuse the oldest entry's memory */
            e = tb->oldest;
            table_unlink(tb, e);
        } else {
            e = malloc(sizeof(*e));
            if (!e)
                return; /* not counted: at worst a missed penalty, never a refusal */
        }
        *e = (struct entry){.hash = hash, .last_failure_ms = now};
        memcpy(e->key, key, sizeof(key));
        bucket_link(tb, e);
        age_append(tb, e);
        tb->n++;
        table_grow(tb, t->o.max_entries);
    }
    entry_fail(t, tb, e, now);
}

static bool user_counts(const char *user)
{
    return user && user[0] != '\0';
}

void throttle_options_default(struct throttle_options *o)
{
    *o = (struct throttle_options){
        .free_failures = 3,
        .delay_base_ms = 1000,
        .delay_max_ms = 30000,
        .lockout_failures = 10,
        .lockout_s = 300,
        .window_s = 900,
        .max_entries = 10000,
    };
}

static void seed(struct throttle *t)
{
    uint64_t k[2];
    struct timespec ts;

    if (getrandom(k, sizeof(k), GRND_NONBLOCK) == (ssize_t)sizeof(k)) {
        t->sip_k0 = k[0];
        t->sip_k1 = k[1];
        return;
    }
    /* No entropy yet (early boot): weaker against hash flooding, still correct. */
    clock_gettime(CLOCK_REALTIME, &ts);
    t->sip_k0 = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)t;
    t->sip_k1 = (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&ts;
}

int throttle_new(const struct throttle_options *o, struct throttle **ret)
{
    struct throttle *t;
    int r;

    if (o->free_failures < 0 || o->delay_base_ms < 0 || o->delay_max_ms < o->delay_base_ms ||
        o->lockout_failures <= o->free_failures || o->lockout_s <= 0 || o->window_s <= 0 ||
        o->max_entries == 0 || o->max_entries > THROTTLE_ENTRIES_MAX)
        return -EINVAL;

    t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->o = *o;
    t->window_ms = (uint64_t)o->window_s * 1000;
    t->lockout_ms = (uint64_t)o->lockout_s * 1000;
    seed(t);
    r = table_init(&t->addresses, THROTTLE_ADDRESS_MAX, false);
    if (r >= 0)
        r = table_init(&t->accounts, THROTTLE_USER_MAX, true);
    if (r < 0) {
        free(t->addresses.buckets);
        free(t);
        return r;
    }
    pthread_mutex_init(&t->lock, NULL);
    *ret = t;
    return 0;
}

void throttle_free(struct throttle *t)
{
    if (!t)
        return;
    table_done(&t->addresses);
    table_done(&t->accounts);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* Whether a (locked, until) beats b: LOCKED over DELAYED, then the later end. */
static bool stricter(const struct entry *a, const struct entry *b)
{
    if (a->locked != b->locked)
        return a->locked;
    return a->until_ms > b->until_ms;
}

struct throttle_result throttle_check(struct throttle *t, const char *address, const char *user,
                                      uint64_t now_ms)
{
    struct throttle_result res = {.verdict = THROTTLE_ALLOW};
    struct entry *a, *u = NULL, *decider;

    pthread_mutex_lock(&t->lock);
    table_purge(t, &t->addresses, now_ms);
    table_purge(t, &t->accounts, now_ms);

    a = table_get(t, &t->addresses, address, now_ms);
    if (user_counts(user))
        u = table_get(t, &t->accounts, user, now_ms);
    if (a && now_ms >= a->until_ms)
        a = NULL;
    if (u && now_ms >= u->until_ms)
        u = NULL;
    if (!a && !u)
        goto out;

    if (a)
        entry_fail(t, &t->addresses, a, now_ms);
    if (u)
        entry_fail(t, &t->accounts, u, now_ms);
    decider = u && (!a || !stricter(a, u)) ? u : a;
    res.by_account = decider == u;
    res.verdict = decider->locked ? THROTTLE_LOCKED : THROTTLE_DELAYED;
    res.wait_ms = decider->until_ms - now_ms;
    if (decider->locked)
        t->locked++;
    else
        t->delayed++;
out:
    pthread_mutex_unlock(&t->lock);
    return res;
}

void throttle_failure(struct throttle *t, const char *address, const char *user, uint64_t now_ms)
{
    pthread_mutex_lock(&t->lock);
    table_purge(t, &t->addresses, now_ms);
    table_purge(t, &t->accounts, now_ms);
    table_fail(t, &t->addresses, address, now_ms);
    if (user_counts(user))
        table_fail(t, &t->accounts, user, now_ms);
    pthread_mutex_unlock(&t->lock);
}

static void table_forget(struct throttle *t, struct table *tb, const char *s)
{
    char key[KEY_SIZE];
    uint64_t hash = key_make(t, tb, s, key);
    struct entry *e = table_find(tb, key, hash);

    if (e)
        table_remove(tb, e);
}

void throttle_success(struct throttle *t, const char *address, const char *user)
{
    pthread_mutex_lock(&t->lock);
    table_forget(t, &t->addresses, address);
    if (user_counts(user))
        table_forget(t, &t->accounts, user);
    pthread_mutex_unlock(&t->lock);
}

void throttle_stats(struct throttle *t, struct throttle_stats *ret)
{
    pthread_mutex_lock(&t->lock);
    *ret = (struct throttle_stats){
        .delayed = t->delayed,
        .locked = t->locked,
        .lockouts = t->lockouts,
        .addresses = t->addresses.n,
        .accounts = t->accounts.n,
    };
    pthread_mutex_unlock(&t->lock);
}

/* ---- MaxStartups ---- */

/* A decimal number of 1..10 digits that fits in unsigned; *p moves past it. */
static int parse_unsigned(const char **p, unsigned *ret)
{
    unsigned long long v = 0;
    const char *s = *p;
    size_t n = 0;

    while (*s >= '0' && *s <= '9') {
        if (++n > 10)
            return -EINVAL;
        v = v * 10 + (unsigned)(*s++ - '0');
    }
    if (n == 0 || v > UINT_MAX)
        return -EINVAL;
    *p = s;
    *ret = (unsigned)v;
    return 0;
}

int throttle_startups_parse(const char *text, struct throttle_startups *ret)
{
    unsigned start, rate = 100, full;
    const char *p = text;

    if (!p || parse_unsigned(&p, &start) < 0)
        return -EINVAL;
    full = start;
    if (*p == ':') {
        p++;
        if (parse_unsigned(&p, &rate) < 0 || *p++ != ':' || parse_unsigned(&p, &full) < 0)
            return -EINVAL;
    }
    if (*p != '\0' || start < 1 || start > full || rate < 1 || rate > 100)
        return -EINVAL;
    ret->start = start;
    ret->rate = rate;
    ret->full = full;
    return 0;
}

bool throttle_startup_allowed(const struct throttle_startups *s, size_t unauthenticated,
                              size_t from_address, uint32_t random, const char **ret_reason)
{
    const char *reason = NULL;

    if (s->per_address > 0 && from_address >= s->per_address) {
        reason = "too many unauthenticated connections from this address";
    } else if (unauthenticated >= s->full) {
        reason = "too many unauthenticated connections (MaxStartups full)";
    } else if (unauthenticated >= s->start) {
        /* Refused when random < p * 2^32, p = rate% rising linearly to 100% at full.
         * Here start <= unauthenticated < full, so every product below fits in 64 bits. */
        unsigned rate = s->rate > 100 ? 100 : s->rate;
        uint64_t base = ((uint64_t)rate << 32) / 100;
        uint64_t span = ((uint64_t)(100 - rate) << 32) / 100;
        uint64_t threshold = base + span * (unauthenticated - s->start) / (s->full - s->start);

        if (random < threshold)
            reason = "too many unauthenticated connections (MaxStartups)";
    }
    if (ret_reason)
        *ret_reason = reason;
    return !reason;
}
