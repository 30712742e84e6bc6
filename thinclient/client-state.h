#pragma once
/*
 * What vdi-client remembers between runs: the last broker and user name typed on the
 * login screen, and the desktop pool each user chose on each broker. One small text file,
 * $XDG_STATE_HOME/vdi/client-state, else ~/.local/state/vdi/client-state:
 *
 *     last BROKER USER
 *     pool BROKER USER POOL
 *
 * (BROKER as typed: HOST, HOST:PORT or [v6]:PORT). Unknown or malformed lines are
 * ignored; values are checked (user names: username_is_valid; pools: [a-z0-9-], 1..32;
 * brokers: no blanks, at most 255 bytes). The file is read up to 64 KiB and rewritten
 * whole (temporary file + rename, 0600, directory 0700). Losing it only costs a choice.
 * At most CLIENT_STATE_POOLS_MAX pool choices are kept (the oldest go first).
 */
#include <stdbool.h>
#include <stddef.h>

#define CLIENT_STATE_BROKER_MAX 255
#define CLIENT_STATE_USER_MAX 32
#define CLIENT_STATE_POOL_MAX 32
#define CLIENT_STATE_POOLS_MAX 128
#define CLIENT_STATE_FILE_MAX (64 * 1024)

struct client_state;

/* The default path (malloc'd); -ENOENT when neither XDG_STATE_HOME nor HOME is set. */
int client_state_default_path(char **ret);

/* Loads path (a missing file is an empty state). Returns 0 or -errno (-ENOMEM). A file
 * that cannot be read gives an empty state and a warning, never an error. */
int client_state_load(const char *path, struct client_state **ret);
void client_state_free(struct client_state *s);

/* Last login: fills broker/user ("" when none). */
void client_state_last_login(const struct client_state *s, char broker[CLIENT_STATE_BROKER_MAX + 1],
                             char user[CLIENT_STATE_USER_MAX + 1]);
int client_state_set_last_login(struct client_state *s, const char *broker, const char *user);

/* The remembered pool for user on broker: true with pool filled, else false. */
bool client_state_pool(const struct client_state *s, const char *broker, const char *user,
                       char pool[CLIENT_STATE_POOL_MAX + 1]);
/* Remembers pool for user on broker; pool "" forgets. Returns 0, or -EINVAL for a value
 * the file could not hold (see above). client_state_set_last_login() likewise. */
int client_state_set_pool(struct client_state *s, const char *broker, const char *user,
                          const char *pool);

/* Writes the state back to the path it was loaded from. Returns 0 or -errno. */
int client_state_save(const struct client_state *s);

/*
 * The file discipline of vdi-client's own files (client-state, known_brokers), shared by
 * client-state.c, known-brokers.c and options.c.
 */

/* "$XDG_VAR/vdi/NAME" when the environment variable xdg_var holds an absolute path (the
 * XDG rule: relative ones are ignored), else "$HOME/HOME_DIR/vdi/NAME" (home_dir e.g.
 * ".config"). Returns 0, -ENOENT when neither is usable, -ENOMEM. */
int client_file_path(const char *xdg_var, const char *home_dir, const char *name, char **ret);

/* Replaces path with data: creates the missing directories (0700), writes a new file next
 * to path (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600), fsyncs it, renames it over path and
 * fsyncs the directory, so a crash leaves the old file or the new one. A symbolic link at
 * path is replaced, not followed. Returns 0 or -errno. */
int client_file_write(const char *path, const char *data, size_t size);
