#pragma once
/*
 * The windowed vdi-client: login screen -> (trust prompt) -> (desktop chooser) -> desktop,
 * with automatic reconnection after a network drop, and kiosk mode (README.md, "Flow").
 * Runs on the main thread; connecting happens in a worker thread so the window stays
 * responsive and Escape can abandon an attempt.
 */
#include "options.h"

/* Returns the process exit code (enum client_exit): 0 when the user quit (or, in kiosk
 * mode, on SIGTERM/SIGINT), 1 when the window or fonts cannot be set up. */
int app_run(const struct client_options *o);
