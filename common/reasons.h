#pragma once
/*
 * The login refusal reasons the broker sends (SecurityResult reason strings) that
 * vdi-client recognises to tell the user what happened in its own words: one definition
 * for both sides. Standard VNC clients just show the text.
 */

#define REASON_AUTH_FAILED "Authentication failed"
/* vdi-session's own refusal of a malformed user name, before the broker sees it. */
#define REASON_AUTH_INVALID "Invalid username or password"
/* Both followed by " %s" (a duration such as "2 minutes"). */
#define REASON_THROTTLED_PREFIX "Too many failed logins; try again in"
#define REASON_LOCKED_PREFIX "Too many failed logins; logging in is locked for"
#define REASON_NO_DESKTOP "No desktop is assigned to you; ask your IT administrator for access"
/* Followed by " '%s'" (the pool). */
#define REASON_NOT_ENTITLED_PREFIX "You are not entitled to desktop pool"

enum reason_class {
    REASON_CLASS_OTHER,        /* show the text as it is */
    REASON_CLASS_AUTH_FAILED,  /* wrong user name or password */
    REASON_CLASS_THROTTLED,    /* too many failures: wait (the text says how long) */
    REASON_CLASS_LOCKED,       /* locked out for a while */
    REASON_CLASS_NO_DESKTOP,   /* no entitlement at all */
    REASON_CLASS_NOT_ENTITLED, /* the named pool is not (or no longer) the user's */
    REASON_CLASS_POOL_LIST,    /* pool-list.h: several pools, choose one */
};

/* Which of the reasons above reason is: REASON_AUTH_FAILED, REASON_AUTH_INVALID (both
 * REASON_CLASS_AUTH_FAILED) and REASON_NO_DESKTOP match exactly; the others by their
 * prefix followed by a space (pool-list.h's POOL_LIST_TAG too: whether the list itself is
 * well formed is pool_list_parse()'s question). NULL or anything else: REASON_CLASS_OTHER. */
enum reason_class reason_classify(const char *reason);
