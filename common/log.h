#pragma once
/*
 * One logging convention for every vdi program: one line per event, to stderr (which
 * systemd's journal captures) with a level prefix, optionally key=value pairs for grep:
 *     log_info("login ok user=%s client=%s", user, addr);
 * Never log a password or token. Library code logs only at debug level; the caller that
 * decides what an error means logs it once, usually through log_error_errno().
 */
#include <stdarg.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARNING, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Program name in every line ("vdi-broker[123]"). */
void log_set_ident(const char *ident);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warning", "info", "debug". Returns 0 or -EINVAL. */
int log_level_from_string(const char *s, enum log_level *ret);

void log_message(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logs "<message>: <strerror(-error)>" at error level and returns error (a negative
 * errno), so that `return log_error_errno(r, "...")` reads naturally. */
int log_errno(enum log_level level, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...) log_message(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_message(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_message(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_message(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_error_errno(error, ...) log_errno(LOG_LEVEL_ERROR, (error), __VA_ARGS__)
#define log_warning_errno(error, ...) log_errno(LOG_LEVEL_WARNING, (error), __VA_ARGS__)
