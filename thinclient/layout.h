#pragma once
/*
 * Where the framebuffer goes in the window: scaled to fit, aspect ratio kept, centred
 * (letterboxed). The same mapping, reversed, turns mouse positions into framebuffer
 * coordinates. Pure functions.
 */
struct layout {
    int x, y, w, h; /* destination rectangle in window (or renderer output) pixels */
};

/* Largest rectangle of the framebuffer's aspect ratio that fits the window, centred.
 * A window or framebuffer of zero size gives an empty rectangle. */
struct layout layout_fit(int win_w, int win_h, int fb_w, int fb_h);

/* Maps a window position to framebuffer coordinates, clamped into the framebuffer (a
 * click on the black border lands on the nearest edge pixel). */
void layout_window_to_fb(const struct layout *l, int fb_w, int fb_h, int wx, int wy, int *fx,
                         int *fy);
