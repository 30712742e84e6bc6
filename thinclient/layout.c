#include "layout.h"

#include <stdint.h>

struct layout layout_fit(int win_w, int win_h, int fb_w, int fb_h)
{
    struct layout l = {0, 0, 0, 0};
    if (win_w <= 0 || win_h <= 0 || fb_w <= 0 || fb_h <= 0)
        return l;
    /* Compare win_w / fb_w with win_h / fb_h without rounding: 64-bit cross products. */
    if ((int64_t)win_w * fb_h <= (int64_t)win_h * fb_w) {
        l.w = win_w;
        l.h = (int)((int64_t)fb_h * win_w / fb_w);
    } else {
        l.h = win_h;
        l.w = (int)((int64_t)fb_w * win_h / fb_h);
    }
    if (l.w < 1)
        l.w = 1;
    if (l.h < 1)
        l.h = 1;
    l.x = (win_w - l.w) / 2;
    l.y = (win_h - l.h) / 2;
    return l;
}

static int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void layout_window_to_fb(const struct layout *l, int fb_w, int fb_h, int wx, int wy, int *fx,
                         int *fy)
{
    if (l->w <= 0 || l->h <= 0 || fb_w <= 0 || fb_h <= 0) {
        *fx = *fy = 0;
        return;
    }
    int64_t x = ((int64_t)wx - l->x) * fb_w / l->w;
    int64_t y = ((int64_t)wy - l->y) * fb_h / l->h;
    if (wx < l->x)
        x = 0;
    if (wy < l->y)
        y = 0;
    *fx = clamp((int)(x > fb_w ? fb_w : x), 0, fb_w - 1);
    *fy = clamp((int)(y > fb_h ? fb_h : y), 0, fb_h - 1);
}
