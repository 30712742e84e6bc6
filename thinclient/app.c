/*
 * The windowed flow (README.md, "Flow"):
 *
 *   login --Connect--> connecting --ok--> desktop --dropped--> reconnecting --ok--> desktop
 *     ^                   |  |  |             |                     |
 *     |                   |  |  +-- pool list --> chooser --pick--> connecting (USER@POOL)
 *     |                   |  +----- unknown certificate --> trust prompt --trust--> connecting
 *     |                   +-------- changed certificate --> warning --Back--> login
 *     +-- error message / session ended (Enter, or after a while in kiosk mode)
 *
 * One connection attempt at a time runs in a connect_job; its result arrives as an SDL
 * event. The password stays in memory (wiped on the way back to the login screen) so that
 * a dropped connection can be re-established without asking.
 */
#include "app.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client-state.h"
#include "connect-job.h"
#include "desktop.h"
#include "handshake.h"
#include "known-brokers.h"
#include "log.h"
#include "pool-list.h"
#include "prompt.h"
#include "proto.h"
#include "reasons.h"
#include "screens.h"
#include "tcp.h"
#include "ui.h"
#include "util.h"
#include "viewer.h"

/* A kiosk shows "session ended" this long, then the login screen for the next person. */
#define KIOSK_ENDED_MS 15000
#define RECONNECT_FIRST_DELAY_MS 1000

enum app_screen {
    APP_LOGIN,
    APP_CHOOSER,
    APP_TRUST,
    APP_ENDED,        /* the last frame + "the session has ended" */
    APP_RECONNECTING, /* the last frame + "Reconnecting..." */
};

struct app {
    const struct client_options *o;
    struct ui *ui;
    struct viewer *viewer;
    struct client_state *state; /* NULL when no path (no HOME) */
    char *known_brokers;        /* TOFU file, NULL when no path */
    enum app_screen screen;
    bool quit;
    bool redraw;

    struct login_screen login;
    struct chooser_screen chooser;
    struct trust_screen trust;

    /* The attempt in progress or the session it became. */
    struct connect_job *job; /* NULL when none runs */
    char broker[SCREEN_FIELD_MAX + 1];
    char *host;
    int port;
    char user[SCREEN_FIELD_MAX + 1];   /* as typed: "alice" or "alice@eng" */
    char pool[POOL_LIST_NAME_MAX + 1]; /* chosen in the chooser this time, else "" */
    bool using_remembered_pool;
    /* What was sent: user, user@pool, user@? (longer than PROTO_MAX_USERNAME: the
     * handshake refuses to send it). */
    char login_name[SCREEN_FIELD_MAX + POOL_LIST_NAME_MAX + 2];
    char *password;

    /* Reconnecting. */
    unsigned attempt;
    uint64_t next_attempt_ms; /* when no job runs: when the next attempt starts */
    uint64_t ended_at_ms;
    char overlay[256];
};

/* ---- helpers -------------------------------------------------------------------------- */

static void set_title(struct app *a, const char *suffix)
{
    char title[SCREEN_FIELD_MAX * 2 + 16];
    if (suffix)
        snprintf(title, sizeof(title), "%s - vdi", suffix);
    else
        snprintf(title, sizeof(title), "vdi");
    SDL_SetWindowTitle(ui_window(a->ui), title);
}

static void forget_password(struct app *a)
{
    secret_free(TAKE_PTR(a->password));
    login_screen_clear_password(&a->login);
}

/* Back to the login screen with a message ("" for none). Kiosks forget the user too:
 * the next person at the device is someone else. */
static void show_login(struct app *a, bool error, const char *message)
{
    forget_password(a);
    a->screen = APP_LOGIN;
    a->login.busy = false;
    a->pool[0] = 0;
    if (a->o->kiosk)
        login_screen_set_field(&a->login, LOGIN_USER, "");
    login_screen_message(&a->login, error, "%s", message);
    login_screen_focus_first_empty(&a->login);
    /* The window had the desktop's size: the login form gets its own back. */
    ui_fit_window(a->ui, UI_DEFAULT_WIDTH, UI_DEFAULT_HEIGHT);
    set_title(a, NULL);
    a->redraw = true;
}

static void remember_success(struct app *a)
{
    if (!a->state)
        return;
    if (!a->o->kiosk)
        client_state_set_last_login(a->state, a->broker, a->user);
    if (a->pool[0])
        client_state_set_pool(a->state, a->broker, a->user, a->pool);
    int r = client_state_save(a->state);
    if (r < 0)
        log_warning("Cannot save the remembered choices: %s", strerror(-r));
}

/* The login name to send: what the user typed when it names a pool, else the pool chosen
 * this time, the --pool option, the remembered one, or "?" (my pool, or the list). */
static void choose_login_name(struct app *a)
{
    char remembered[CLIENT_STATE_POOL_MAX + 1];
    const char *pool = POOL_LIST_REQUEST;
    a->using_remembered_pool = false;
    if (strchr(a->user, '@'))
        pool = NULL;
    else if (a->pool[0])
        pool = a->pool;
    else if (a->o->pool)
        pool = a->o->pool;
    else if (a->state && client_state_pool(a->state, a->broker, a->user, remembered)) {
        pool = remembered;
        a->using_remembered_pool = true;
    }
    if (pool)
        snprintf(a->login_name, sizeof(a->login_name), "%s@%s", a->user, pool);
    else
        snprintf(a->login_name, sizeof(a->login_name), "%s", a->user);
}

/* ---- connecting --------------------------------------------------------------------- */

static int start_attempt(struct app *a)
{
    static const uint8_t learn_only[TLS_SHA256_SIZE];
    uint8_t pin[TLS_SHA256_SIZE];
    const uint8_t *pin_ptr = NULL;

    if (a->o->fingerprint) {
        if (tls_fingerprint_parse(a->o->fingerprint, pin) < 0)
            return -EINVAL; /* checked at start-up */
        pin_ptr = pin;
    } else if (!a->o->ca_file) {
        /* Trust on first use: the accepted fingerprint, or learn the server's. */
        int r =
            a->known_brokers ? known_brokers_lookup(a->known_brokers, a->host, a->port, pin) : 0;
        if (r < 0)
            log_warning("Cannot read %s: %s", a->known_brokers, strerror(-r));
        pin_ptr = r > 0 ? pin : learn_only;
    }
    choose_login_name(a);
    struct connect_request req = {
        .host = a->host,
        .port = a->port,
        .ca_file = a->o->ca_file,
        .pin_sha256 = pin_ptr,
        .login = a->login_name,
        .password = a->password,
    };
    log_info("connecting host=%s port=%d login=%s", a->host, a->port, a->login_name);
    return connect_job_start(a->ui, &req, &a->job);
}

/* From the login form: take the fields, start the first attempt. */
static void submit_login(struct app *a)
{
    const char *broker = a->login.fields[LOGIN_BROKER].text;
    char *host = NULL;
    int port = a->o->port;
    if (tcp_parse_target(broker, &host, &port) < 0) {
        login_screen_message(&a->login, true, "Not a server address: %s", broker);
        a->login.focus = LOGIN_BROKER;
        return;
    }
    free(a->host);
    a->host = host;
    a->port = port;
    snprintf(a->broker, sizeof(a->broker), "%s", broker);
    snprintf(a->user, sizeof(a->user), "%s", a->login.fields[LOGIN_USER].text);
    secret_free(a->password);
    a->password = strdup(a->login.fields[LOGIN_PASSWORD].text);
    if (!a->password) {
        login_screen_message(&a->login, true, "Out of memory");
        return;
    }
    a->pool[0] = 0;
    a->attempt = 0;
    int r = start_attempt(a);
    if (r < 0) {
        login_screen_message(&a->login, true, "Cannot start connecting: %s", strerror(-r));
        return;
    }
    a->login.busy = true;
    login_screen_message(&a->login, false, "Connecting to %s...", a->broker);
}

static void show_trust(struct app *a, const struct connect_job *j, bool mismatch,
                       const uint8_t known[TLS_SHA256_SIZE])
{
    memset(&a->trust, 0, sizeof(a->trust));
    snprintf(a->trust.broker, sizeof(a->trust.broker), "%s", a->broker);
    tls_fingerprint_format(j->peer_sha256, a->trust.fingerprint);
    a->trust.mismatch = mismatch;
    if (mismatch) {
        tls_fingerprint_format(known, a->trust.known_fingerprint);
        snprintf(a->trust.known_brokers_path, sizeof(a->trust.known_brokers_path), "%s",
                 a->known_brokers ? a->known_brokers : "");
        log_error("REFUSED host=%s port=%d: the certificate changed (accepted %s, now %s)", a->host,
                  a->port, a->trust.known_fingerprint, a->trust.fingerprint);
    }
    a->screen = APP_TRUST;
    a->redraw = true;
}

/* The certificate was not trusted: first contact (ask), a changed pin (warn), or a CA /
 * --fingerprint that does not match (say so). */
static void on_untrusted(struct app *a, const struct connect_job *j)
{
    char fp[96] = "";
    if (j->have_peer_sha256)
        tls_fingerprint_format(j->peer_sha256, fp);
    if (!a->o->ca_file && !a->o->fingerprint && j->have_peer_sha256) {
        uint8_t known[TLS_SHA256_SIZE];
        int r =
            a->known_brokers ? known_brokers_lookup(a->known_brokers, a->host, a->port, known) : 0;
        if (j->learn_only && r <= 0) {
            show_trust(a, j, false, NULL);
            return;
        }
        if (r > 0 && memcmp(known, j->peer_sha256, sizeof(known)) != 0) {
            show_trust(a, j, true, known);
            return;
        }
    }
    char msg[SCREEN_MESSAGE_MAX];
    snprintf(msg, sizeof(msg), "The server's certificate is not trusted: %s.%s%s", j->status.detail,
             fp[0] ? " Its SHA-256 fingerprint is " : "", fp);
    log_error("%s", msg);
    show_login(a, true, msg);
}

static void on_refused(struct app *a, const struct connect_job *j)
{
    const char *reason = j->status.reason;
    switch (reason_classify(reason)) {
    case REASON_CLASS_POOL_LIST: {
        int n = pool_list_parse(reason, a->chooser.pools);
        if (n <= 0) {
            show_login(a, true, "The server sent a desktop list this client cannot read");
            return;
        }
        a->chooser.n_pools = (size_t)n;
        a->chooser.selected = 0;
        a->chooser.first_visible = 0;
        snprintf(a->chooser.user, sizeof(a->chooser.user), "%s", a->user);
        a->screen = APP_CHOOSER;
        a->redraw = true;
        return;
    }
    case REASON_CLASS_NOT_ENTITLED:
        if (a->using_remembered_pool) {
            /* The pool remembered from last time is gone: ask again. */
            log_info("remembered pool of user %s is no longer available", a->user);
            client_state_set_pool(a->state, a->broker, a->user, "");
            (void)client_state_save(a->state);
            if (start_attempt(a) == 0)
                return;
        }
        break;
    case REASON_CLASS_AUTH_FAILED:
        log_info("login refused user=%s: wrong user name or password", a->login_name);
        show_login(a, true, "Wrong user name or password.");
        return;
    default:
        break;
    }
    log_info("login refused user=%s reason=%s", a->login_name, reason);
    show_login(a, true, reason[0] ? reason : "The server refused the login without a reason.");
}

static void describe_failure(const struct app *a, const struct connect_job *j, char *msg,
                             size_t size)
{
    const struct handshake_status *st = &j->status;
    int code = handshake_exit_code(j->result, st->phase);
    if (j->result == -ECONNREFUSED && st->phase > HANDSHAKE_PHASE_CONNECT)
        snprintf(msg, size, "The server refused the connection: %.512s",
                 st->reason[0] ? st->reason : "no reason given");
    else if (code == CLIENT_EXIT_UNREACHABLE)
        snprintf(msg, size, "Cannot reach the server %s: %s", a->broker,
                 st->detail[0] ? st->detail : strerror(-j->result));
    else if (code == CLIENT_EXIT_PROTOCOL)
        snprintf(msg, size, "%s does not look like a vdi server (%s)", a->broker,
                 st->detail[0] ? st->detail : strerror(-j->result));
    else
        snprintf(msg, size, "The connection to %s failed during the %s: %s", a->broker,
                 handshake_phase_to_string(st->phase),
                 st->detail[0] ? st->detail : strerror(-j->result));
}

static void schedule_reconnect(struct app *a, const char *why);
static void run_desktop(struct app *a, struct tls_conn *tls);

static void on_connect_done(struct app *a, struct connect_job *j)
{
    if (j != a->job) { /* abandoned */
        connect_job_free(j);
        return;
    }
    a->job = NULL;
    bool reconnecting = a->screen == APP_RECONNECTING;
    if (j->result == 0) {
        log_info("authenticated host=%s login=%s", a->host, a->login_name);
        remember_success(a);
        struct tls_conn *tls = TAKE_PTR(j->tls);
        connect_job_free(j);
        run_desktop(a, tls);
        return;
    }
    switch (j->result) {
    case -EPERM:
        on_untrusted(a, j);
        break;
    case -EACCES:
        on_refused(a, j);
        break;
    default: {
        char msg[SCREEN_MESSAGE_MAX];
        describe_failure(a, j, msg, sizeof(msg));
        int code = handshake_exit_code(j->result, j->status.phase);
        /* While reconnecting, a server that is not there yet, or busy, or restarting
         * (refused with a reason) is expected: keep trying. */
        if (reconnecting && (code == CLIENT_EXIT_UNREACHABLE || code == CLIENT_EXIT_LOST)) {
            schedule_reconnect(a, msg);
            break;
        }
        log_error("%s", msg);
        show_login(a, true, msg);
        break;
    }
    }
    connect_job_free(j);
}

/* ---- the desktop and what follows it ------------------------------------------------ */

static void schedule_reconnect(struct app *a, const char *why)
{
    uint64_t delay = RECONNECT_FIRST_DELAY_MS;
    for (unsigned i = 0; i < a->attempt && delay < (uint64_t)a->o->reconnect_max_s * 1000; i++)
        delay *= 2;
    if (delay > (uint64_t)a->o->reconnect_max_s * 1000)
        delay = (uint64_t)a->o->reconnect_max_s * 1000;
    a->attempt++;
    a->next_attempt_ms = now_ms() + delay;
    a->screen = APP_RECONNECTING;
    log_info("reconnecting in %" PRIu64 " ms (attempt %u): %s", delay, a->attempt, why);
    a->redraw = true;
}

static void run_desktop(struct app *a, struct tls_conn *tls)
{
    char title[SCREEN_FIELD_MAX * 2 + 8];
    snprintf(title, sizeof(title), "%s@%s", a->user, a->broker);
    set_title(a, title);
    viewer_set_overlay(a->viewer, NULL);
    a->screen = APP_RECONNECTING; /* what shows if the session cannot even start */

    struct desktop_params p = {
        .quality = a->o->quality,
        .compress = a->o->compress,
        .viewer = a->viewer,
        .signal_fd = -1,
    };
    char message[512];
    enum desktop_end end = desktop_run(tls, &p, message, sizeof(message));
    switch (end) {
    case DESKTOP_END_USER_QUIT:
    case DESKTOP_END_SCREENSHOT:
        log_info("disconnected by the user");
        a->quit = true;
        break;
    case DESKTOP_END_DROPPED:
        log_warning("%s", message);
        a->attempt = 0;
        schedule_reconnect(a, message);
        break;
    case DESKTOP_END_CLOSED:
        /* The server drew its reason on the last frame (logoff, takeover, ...). */
        log_info("%s", message);
        forget_password(a);
        a->screen = APP_ENDED;
        a->ended_at_ms = now_ms();
        a->redraw = true;
        break;
    default:
        log_error("%s", message);
        show_login(a, true, message);
        break;
    }
}

/* ---- events --------------------------------------------------------------------------- */

static void leave_reconnecting(struct app *a, const char *why)
{
    a->job = NULL; /* abandoned: freed when its event arrives */
    show_login(a, false, why);
}

static void on_key_screen_event(struct app *a, const SDL_Event *e)
{
    enum screen_action act = SCREEN_NONE;
    switch (a->screen) {
    case APP_LOGIN:
        act = login_screen_event(&a->login, e);
        if (act == SCREEN_SUBMIT && !a->job)
            submit_login(a);
        else if (act == SCREEN_CANCEL && a->job) {
            a->job = NULL; /* abandoned */
            a->login.busy = false;
            login_screen_message(&a->login, false, "Stopped.");
        } else if (act == SCREEN_QUIT && !a->o->kiosk)
            a->quit = true;
        break;
    case APP_CHOOSER:
        act = chooser_screen_event(&a->chooser, e);
        if (act == SCREEN_SUBMIT && !a->job) {
            snprintf(a->pool, sizeof(a->pool), "%s", a->chooser.pools[a->chooser.selected].name);
            if (start_attempt(a) < 0)
                show_login(a, true, "Cannot start connecting");
            else {
                a->screen = APP_LOGIN;
                a->login.busy = true;
                login_screen_message(&a->login, false, "Connecting to %s...", a->pool);
            }
        } else if (act == SCREEN_CANCEL)
            show_login(a, false, "");
        break;
    case APP_TRUST:
        act = trust_screen_event(&a->trust, e);
        if (act == SCREEN_SUBMIT && !a->trust.mismatch) {
            uint8_t sha[TLS_SHA256_SIZE];
            int r = tls_fingerprint_parse(a->trust.fingerprint, sha);
            if (r == 0 && a->known_brokers)
                r = known_brokers_add(a->known_brokers, a->host, a->port, sha);
            else if (r == 0)
                r = -ENOENT;
            if (r < 0) {
                show_login(a, true, "Cannot record the server's fingerprint");
                break;
            }
            log_info("trusted host=%s port=%d fingerprint=%s", a->host, a->port,
                     a->trust.fingerprint);
            a->screen = APP_LOGIN;
            a->login.busy = true;
            login_screen_message(&a->login, false, "Connecting to %s...", a->broker);
            if (start_attempt(a) < 0)
                show_login(a, true, "Cannot start connecting");
        } else if (act == SCREEN_CANCEL) {
            show_login(a, true,
                       a->trust.mismatch
                           ? "Refused: the server's certificate has changed since you "
                             "accepted it."
                           : "Not connected: you did not trust the server.");
        }
        break;
    case APP_ENDED:
        if ((e->type == SDL_KEYDOWN &&
             (e->key.keysym.sym == SDLK_RETURN || e->key.keysym.sym == SDLK_KP_ENTER ||
              e->key.keysym.sym == SDLK_ESCAPE)) ||
            e->type == SDL_MOUSEBUTTONDOWN)
            show_login(a, false, "");
        break;
    case APP_RECONNECTING:
        if (e->type == SDL_KEYDOWN && e->key.keysym.sym == SDLK_ESCAPE)
            leave_reconnecting(a, "Stopped reconnecting.");
        break;
    }
    if (act != SCREEN_NONE)
        a->redraw = true;
}

static void draw(struct app *a)
{
    switch (a->screen) {
    case APP_LOGIN:
        login_screen_draw(a->ui, &a->login);
        ui_present(a->ui);
        break;
    case APP_CHOOSER:
        chooser_screen_draw(a->ui, &a->chooser);
        ui_present(a->ui);
        break;
    case APP_TRUST:
        trust_screen_draw(a->ui, &a->trust);
        ui_present(a->ui);
        break;
    case APP_ENDED:
        viewer_set_overlay(a->viewer, a->o->kiosk ? "The session has ended."
                                                  : "The session has ended. Press Enter to "
                                                    "log in again.");
        viewer_render(a->viewer);
        break;
    case APP_RECONNECTING:
        if (a->job)
            snprintf(a->overlay, sizeof(a->overlay), "Reconnecting... (attempt %u)", a->attempt);
        else {
            uint64_t now = now_ms();
            uint64_t s = a->next_attempt_ms > now ? (a->next_attempt_ms - now + 999) / 1000 : 0;
            snprintf(a->overlay, sizeof(a->overlay),
                     "Connection lost. Reconnecting in %" PRIu64 " s... (Escape: stop)", s);
        }
        viewer_set_overlay(a->viewer, a->overlay);
        viewer_render(a->viewer);
        break;
    }
}

/* How long the loop may sleep before something is due (reconnect, countdown, kiosk). */
static int wait_timeout(const struct app *a)
{
    if (a->screen == APP_RECONNECTING && !a->job)
        return 250; /* the countdown ticks */
    if (a->screen == APP_ENDED && a->o->kiosk)
        return 1000;
    return -1;
}

static void on_tick(struct app *a)
{
    uint64_t now = now_ms();
    if (a->screen == APP_RECONNECTING && !a->job) {
        if (now >= a->next_attempt_ms) {
            int r = start_attempt(a);
            if (r < 0)
                schedule_reconnect(a, strerror(-r));
        }
        a->redraw = true;
    }
    if (a->screen == APP_ENDED && a->o->kiosk && now - a->ended_at_ms >= KIOSK_ENDED_MS)
        show_login(a, false, "");
}

static void handle_event(struct app *a, const SDL_Event *e)
{
    if (e->type == ui_event_type(a->ui)) {
        if (e->user.code == UI_EVENT_CONNECT_DONE)
            on_connect_done(a, e->user.data1);
        else if (e->user.code == UI_EVENT_CLIPBOARD)
            free(e->user.data1); /* from a session that ended */
        return;
    }
    switch (e->type) {
    case SDL_QUIT:
        a->quit = true;
        return;
    case SDL_WINDOWEVENT:
        if (e->window.event == SDL_WINDOWEVENT_CLOSE && !a->o->kiosk)
            a->quit = true;
        else if (e->window.event == SDL_WINDOWEVENT_EXPOSED ||
                 e->window.event == SDL_WINDOWEVENT_SIZE_CHANGED)
            a->redraw = true;
        return;
    case SDL_KEYDOWN:
        /* The full-screen key is never a screen's input (a kiosk just ignores it: passed
         * to the login form it left the form deaf to typing under a keyboard grab). */
        if (e->key.keysym.sym == SDLK_RETURN && (e->key.keysym.mod & KMOD_CTRL) &&
            (e->key.keysym.mod & KMOD_ALT)) {
            if (!a->o->kiosk)
                ui_set_fullscreen(a->ui, !ui_fullscreen(a->ui));
            return;
        }
        break;
    default:
        break;
    }
    on_key_screen_event(a, e);
}

/* ---- start-up ------------------------------------------------------------------------- */

/* The password for an automatic login (--password-file, else $VDI_PASSWORD); NULL when
 * neither. */
static char *automatic_password(const struct client_options *o)
{
    char *password = NULL;
    int r = prompt_preset_password(o->password_file, PROTO_MAX_PASSWORD, &password);
    if (r < 0)
        log_error("Cannot read the password from %s: %s",
                  o->password_file ? o->password_file : "VDI_PASSWORD", strerror(-r));
    return password;
}

static void prefill_login(struct app *a)
{
    char broker[CLIENT_STATE_BROKER_MAX + 1] = "", user[CLIENT_STATE_USER_MAX + 1] = "";
    if (a->state && !a->o->kiosk)
        client_state_last_login(a->state, broker, user);
    login_screen_init(&a->login, a->o->kiosk);
    login_screen_set_field(&a->login, LOGIN_BROKER, a->o->broker ? a->o->broker : broker);
    login_screen_set_field(&a->login, LOGIN_USER, a->o->user ? a->o->user : user);
    /* A kiosk's server is set by its administrator, not by whoever stands in front. */
    a->login.broker_locked = a->o->kiosk && a->o->broker;
    login_screen_focus_first_empty(&a->login);
}

static int app_init(struct app *a, const struct client_options *o)
{
    a->o = o;
    struct ui_options uo = {
        .title = "vdi",
        .font_path = o->font,
        .fullscreen = o->fullscreen,
        .kiosk = o->kiosk,
    };
    int r = ui_new(&uo, &a->ui);
    if (r < 0)
        return r;
    r = viewer_new(a->ui, &a->viewer);
    if (r < 0)
        return r;

    _cleanup_(freep) char *state_path = NULL;
    if (client_state_default_path(&state_path) == 0)
        (void)client_state_load(state_path, &a->state);
    if (o->known_brokers)
        a->known_brokers = strdup(o->known_brokers);
    else if (known_brokers_default_path(&a->known_brokers) < 0)
        log_warning("No home directory: servers cannot be remembered (trust on first use)");

    prefill_login(a);
    return 0;
}

int app_run(const struct client_options *o)
{
    struct app a = {0};
    int code = CLIENT_EXIT_OK;
    _cleanup_(secret_freep) char *password = NULL;
    if (app_init(&a, o) < 0) {
        fprintf(stderr, "vdi-client: cannot open the window (is DISPLAY set? is the font "
                        "installed?); see the messages above\n");
        code = CLIENT_EXIT_INTERNAL;
        goto out;
    }

    /* Everything given (tests, scripted desktops): connect at once. */
    password = o->user && o->broker ? automatic_password(o) : NULL;
    if (password) {
        login_screen_set_field(&a.login, LOGIN_PASSWORD, password);
        submit_login(&a);
    }
    a.redraw = true;

    while (!a.quit) {
        if (a.redraw) {
            a.redraw = false;
            draw(&a);
        }
        SDL_Event e;
        int timeout = wait_timeout(&a);
        int got = timeout < 0 ? SDL_WaitEvent(&e) : SDL_WaitEventTimeout(&e, timeout);
        if (got)
            handle_event(&a, &e);
        while (!a.quit && SDL_PollEvent(&e))
            handle_event(&a, &e);
        on_tick(&a);
    }

out:
    /* Jobs still running free themselves from now on; those already finished are in the
     * event queue, as is server clipboard text nobody took. */
    connect_jobs_shutdown();
    SDL_Event e;
    while (a.ui && SDL_PollEvent(&e)) {
        if (e.type != ui_event_type(a.ui))
            continue;
        if (e.user.code == UI_EVENT_CONNECT_DONE)
            connect_job_free(e.user.data1);
        else if (e.user.code == UI_EVENT_CLIPBOARD)
            free(e.user.data1);
    }
    forget_password(&a);
    viewer_free(a.viewer);
    ui_free(a.ui);
    client_state_free(a.state);
    free(a.known_brokers);
    free(a.host);
    return code;
}
