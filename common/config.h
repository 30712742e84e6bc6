#pragma once
/*
 * Declarative config files: one table per program lists every key with its type,
 * default, bounds and documentation; parsing, defaults and the documented sample
 * config (config_print) all come from that table.
 *
 * File format: one "key = value" per line; blank lines and lines starting with '#'
 * are ignored; the value is the rest of the line with surrounding blanks removed.
 * Unknown keys, repeated keys, malformed lines, out-of-range numbers, bad booleans
 * and values outside an enum's choices are errors that name the file and line.
 * Caps: a file of at most CONFIG_MAX_FILE bytes, lines of at most CONFIG_MAX_LINE.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CONFIG_MAX_FILE (1024 * 1024)
#define CONFIG_MAX_LINE 4096

enum config_type {
    CONFIG_STRING, /* char * (malloc'd; "" when empty) */
    CONFIG_INT,    /* int, within [min, max] */
    CONFIG_BOOL,   /* bool: true/false, yes/no, on/off, 1/0 */
    CONFIG_ENUM,   /* char *, one of choices */
};

struct config_option {
    const char *name; /* equals the struct field name */
    enum config_type type;
    size_t offset; /* offsetof(struct ..., field) */
    const char *default_value; /* as it would be written in the file; NULL means "" / 0 */
    int min, max;              /* CONFIG_INT only */
    const char *const *choices; /* CONFIG_ENUM only: NULL-terminated */
    const char *doc;            /* one line, for config_print and --help */
};

struct config_error {
    char message[512]; /* "FILE:LINE: what is wrong" */
};

/* Fills every field of obj with its default. Returns 0 or -ENOMEM / -EINVAL (bad table). */
int config_set_defaults(const struct config_option *table, size_t n, void *obj,
                        struct config_error *err);
/* Parses a file over obj (call config_set_defaults first). Returns 0, -ENOENT when the
 * file does not exist, -EINVAL with err filled for any content error, -EFBIG, -errno. */
int config_parse_file(const struct config_option *table, size_t n, void *obj, const char *path,
                      struct config_error *err);
/* Same for text in memory; name is used in error messages in place of the file name. */
int config_parse_string(const struct config_option *table, size_t n, void *obj, const char *text,
                        const char *name, struct config_error *err);
/* Sets one key from a string, e.g. from a command-line "--set key=value". */
int config_set(const struct config_option *table, size_t n, void *obj, const char *key,
               const char *value, struct config_error *err);
/* Frees the strings config_* allocated in obj. */
void config_done(const struct config_option *table, size_t n, void *obj);
/* Writes a documented sample config with every key at its default, commented out. */
void config_print(const struct config_option *table, size_t n, FILE *f);
