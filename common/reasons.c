/* Telling the broker's refusal reasons apart (reasons.h). */
#include "reasons.h"

#include <stdbool.h>
#include <string.h>

#include "pool-list.h"
#include "util.h"

/* prefix followed by a space (and whatever the broker put after it). */
static bool has_prefix_word(const char *s, const char *prefix)
{
    return startswith(s, prefix) && s[strlen(prefix)] == ' ';
}

enum reason_class reason_classify(const char *reason)
{
    if (!reason)
        return REASON_CLASS_OTHER;
    if (streq(reason, REASON_AUTH_FAILED) || streq(reason, REASON_AUTH_INVALID))
        return REASON_CLASS_AUTH_FAILED;
    if (streq(reason, REASON_NO_DESKTOP))
        return REASON_CLASS_NO_DESKTOP;
    if (has_prefix_word(reason, REASON_THROTTLED_PREFIX))
        return REASON_CLASS_THROTTLED;
    if (has_prefix_word(reason, REASON_LOCKED_PREFIX))
        return REASON_CLASS_LOCKED;
    if (has_prefix_word(reason, REASON_NOT_ENTITLED_PREFIX))
        return REASON_CLASS_NOT_ENTITLED;
    if (has_prefix_word(reason, POOL_LIST_TAG))
        return REASON_CLASS_POOL_LIST;
    return REASON_CLASS_OTHER;
}
