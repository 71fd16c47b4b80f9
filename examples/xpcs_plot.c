/*
 * xpcs_plot.c - PNG figures of a fit (see xpcs_plot.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "xpcs_plot.h"
#include "safe_io.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t xpcs_plot_default_angles(size_t n_total, size_t *out)
{
    size_t n = 0;
    if (n_total == 0) return 0;
    size_t cand[3] = {0, n_total / 2, n_total - 1};
    for (int k = 0; k < 3; k++) {
        int dup = 0;
        for (size_t t = 0; t < n; t++) dup |= out[t] == cand[k];
        if (!dup) out[n++] = cand[k];
    }
    return n;
}

int xpcs_plot_file_name(char *buf, size_t size, const char *prefix, size_t angle)
{
    int n = angle == (size_t)-1 ? snprintf(buf, size, "%s_g2.png", prefix)
                                : snprintf(buf, size, "%s_angle%03zu.png", prefix, angle);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

#ifdef FIT_XPCS_NO_PNG   /* built without libpng */

int xpcs_plot_available(void) { return 0; }

int xpcs_plot(const char *prefix, const xpcs_report *r, const size_t *angles, size_t n_angles,
              char *err, size_t es)
{
    (void)prefix; (void)r; (void)angles; (void)n_angles;
    snprintf(err, es, "--plot: this fit_xpcs was built without libpng");
    return -1;
}

#else

#include <png.h>

int xpcs_plot_available(void) { return 1; }

/* ------------------------------------------------------------------------ */
/* Canvas                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct rgb { unsigned char r, g, b; } rgb;

static const rgb BLACK = {0, 0, 0}, GREY = {150, 150, 150},
                 LIGHT = {225, 225, 225}, NAN_RGB = {128, 128, 128};

typedef struct canvas {
    int w, h;
    unsigned char *px;   /* w * h * 3 */
} canvas;

static int canvas_init(canvas *c, int w, int h)
{
    c->w = w;
    c->h = h;
    c->px = malloc((size_t)w * (size_t)h * 3);
    if (!c->px) return -1;
    memset(c->px, 255, (size_t)w * (size_t)h * 3);
    return 0;
}

static void canvas_free(canvas *c)
{
    free(c->px);
    c->px = NULL;
}

static inline void put(canvas *c, int x, int y, rgb col)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    unsigned char *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    p[0] = col.r;
    p[1] = col.g;
    p[2] = col.b;
}

static void fill_rect(canvas *c, int x, int y, int w, int h, rgb col)
{
    for (int j = y; j < y + h; j++)
        for (int i = x; i < x + w; i++) put(c, i, j, col);
}

static void rect_outline(canvas *c, int x, int y, int w, int h, rgb col)
{
    for (int i = x - 1; i <= x + w; i++) {
        put(c, i, y - 1, col);
        put(c, i, y + h, col);
    }
    for (int j = y - 1; j <= y + h; j++) {
        put(c, x - 1, j, col);
        put(c, x + w, j, col);
    }
}

/* A line of the given thickness (square pen), Bresenham. */
static void line(canvas *c, int x0, int y0, int x1, int y1, rgb col, int thick)
{
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    int dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int e = dx + dy, lo = -(thick - 1) / 2, hi = thick / 2;
    for (int guard = 0; guard < 100000; guard++) {
        for (int a = lo; a <= hi; a++)
            for (int b = lo; b <= hi; b++) put(c, x0 + a, y0 + b, col);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) { e += dy; x0 += sx; }
        if (e2 <= dx) { e += dx; y0 += sy; }
    }
}

/* ------------------------------------------------------------------------ */
/* 5 x 7 bitmap font (upper case; lower case is drawn as upper case)          */
/* ------------------------------------------------------------------------ */

typedef struct glyph { char c; const char *rows[7]; } glyph;

static const glyph font[] = {
    {'0', {" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "}},
    {'1', {"  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "}},
    {'2', {" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"}},
    {'3', {"#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "}},
    {'4', {"   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "}},
    {'5', {"#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "}},
    {'6', {"  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "}},
    {'7', {"#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "}},
    {'8', {" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "}},
    {'9', {" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "}},
    {'A', {" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"}},
    {'B', {"#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### "}},
    {'C', {" ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### "}},
    {'D', {"#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### "}},
    {'E', {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"}},
    {'F', {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#    "}},
    {'G', {" ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####"}},
    {'H', {"#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"}},
    {'I', {" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "}},
    {'J', {"  ###", "   # ", "   # ", "   # ", "   # ", "#  # ", " ##  "}},
    {'K', {"#   #", "#  # ", "# #  ", "##   ", "# #  ", "#  # ", "#   #"}},
    {'L', {"#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"}},
    {'M', {"#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #"}},
    {'N', {"#   #", "#   #", "##  #", "# # #", "#  ##", "#   #", "#   #"}},
    {'O', {" ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "}},
    {'P', {"#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "}},
    {'Q', {" ### ", "#   #", "#   #", "#   #", "# # #", "#  # ", " ## #"}},
    {'R', {"#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"}},
    {'S', {" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "}},
    {'T', {"#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "}},
    {'U', {"#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "}},
    {'V', {"#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  "}},
    {'W', {"#   #", "#   #", "#   #", "# # #", "# # #", "# # #", " # # "}},
    {'X', {"#   #", "#   #", " # # ", "  #  ", " # # ", "#   #", "#   #"}},
    {'Y', {"#   #", "#   #", " # # ", "  #  ", "  #  ", "  #  ", "  #  "}},
    {'Z', {"#####", "    #", "   # ", "  #  ", " #   ", "#    ", "#####"}},
    {'.', {"     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "}},
    {',', {"     ", "     ", "     ", "     ", " ##  ", "  #  ", " #   "}},
    {':', {"     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "     "}},
    {'-', {"     ", "     ", "     ", "#####", "     ", "     ", "     "}},
    {'+', {"     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     "}},
    {'=', {"     ", "     ", "#####", "     ", "#####", "     ", "     "}},
    {'/', {"    #", "    #", "   # ", "  #  ", " #   ", "#    ", "#    "}},
    {'(', {"   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # "}},
    {')', {" #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   "}},
    {'[', {" ### ", " #   ", " #   ", " #   ", " #   ", " #   ", " ### "}},
    {']', {" ### ", "   # ", "   # ", "   # ", "   # ", "   # ", " ### "}},
    {'_', {"     ", "     ", "     ", "     ", "     ", "     ", "#####"}},
    {'^', {"  #  ", " # # ", "#   #", "     ", "     ", "     ", "     "}},
    {'*', {"     ", "# # #", " ### ", "#####", " ### ", "# # #", "     "}},
    {'%', {"##  #", "##  #", "   # ", "  #  ", " #   ", "#  ##", "#  ##"}},
    {'<', {"   # ", "  #  ", " #   ", "#    ", " #   ", "  #  ", "   # "}},
    {'>', {" #   ", "  #  ", "   # ", "    #", "   # ", "  #  ", " #   "}},
    {'|', {"  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "}},
    {'\'', {"  #  ", "  #  ", " #   ", "     ", "     ", "     ", "     "}},
    {'?', {" ### ", "#   #", "    #", "   # ", "  #  ", "     ", "  #  "}},
};

#define GLYPH_W 5
#define GLYPH_H 7

static const glyph *find_glyph(char ch)
{
    if (ch >= 'a' && ch <= 'z') ch = (char)(ch - 'a' + 'A');
    for (size_t k = 0; k < sizeof font / sizeof font[0]; k++)
        if (font[k].c == ch) return &font[k];
    return NULL;   /* space and anything unknown: blank */
}

static int text_width(const char *s, int scale)
{
    int n = (int)strlen(s);
    return n ? n * (GLYPH_W + 1) * scale - scale : 0;
}

static int text_height(int scale) { return GLYPH_H * scale; }

/* Text with its top-left corner at (x, y). */
static void text(canvas *c, int x, int y, const char *s, int scale, rgb col)
{
    for (; *s; s++, x += (GLYPH_W + 1) * scale) {
        const glyph *g = find_glyph(*s);
        if (!g) continue;
        for (int r = 0; r < GLYPH_H; r++)
            for (int q = 0; q < GLYPH_W; q++)
                if (g->rows[r][q] == '#') fill_rect(c, x + q * scale, y + r * scale, scale, scale, col);
    }
}

/* Text centred horizontally on cx. */
static void text_c(canvas *c, int cx, int y, const char *s, int scale, rgb col)
{
    text(c, cx - text_width(s, scale) / 2, y, s, scale, col);
}

/* Text ending at x (right-aligned). */
static void text_r(canvas *c, int x, int y, const char *s, int scale, rgb col)
{
    text(c, x - text_width(s, scale), y, s, scale, col);
}

/* A number for a label, short. */
static void fmt_num(char *buf, size_t size, double v)
{
    if (!isfinite(v)) snprintf(buf, size, "NAN");
    else if (v == 0) snprintf(buf, size, "0");
    else snprintf(buf, size, "%.4g", v);
}

/* ------------------------------------------------------------------------ */
/* Colour maps                                                                */
/* ------------------------------------------------------------------------ */

static rgb lerp_map(const unsigned char (*tab)[3], int n, double t)
{
    if (!(t >= 0)) t = 0;   /* NaN too */
    if (t > 1) t = 1;
    double u = t * (n - 1);
    int k = (int)u;
    if (k >= n - 1) k = n - 2;
    double f = u - k;
    rgb c;
    c.r = (unsigned char)lround(tab[k][0] + f * (tab[k + 1][0] - tab[k][0]));
    c.g = (unsigned char)lround(tab[k][1] + f * (tab[k + 1][1] - tab[k][1]));
    c.b = (unsigned char)lround(tab[k][2] + f * (tab[k + 1][2] - tab[k][2]));
    return c;
}

/* viridis, sampled at 9 points */
static rgb seq_color(double t)
{
    static const unsigned char tab[9][3] = {
        {68, 1, 84},   {71, 44, 122},  {59, 81, 139},  {44, 113, 142}, {33, 144, 141},
        {39, 173, 129}, {92, 200, 99}, {170, 220, 50}, {253, 231, 37}};
    return lerp_map(tab, 9, t);
}

/* blue - white - red (t = 0.5 is zero) */
static rgb div_color(double t)
{
    static const unsigned char tab[5][3] = {
        {33, 102, 172}, {103, 169, 207}, {247, 247, 247}, {239, 138, 98}, {178, 24, 43}};
    return lerp_map(tab, 5, t);
}

/* ------------------------------------------------------------------------ */
/* PNG                                                                        */
/* ------------------------------------------------------------------------ */

/* libpng reports through these: the message is kept (one line, ours) and
 * nothing is printed; the error callback must not return. */
typedef struct png_msg {
    char text[160];
} png_msg;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_msg *m = png_get_error_ptr(png);
    if (m) snprintf(m->text, sizeof m->text, "%s", msg ? msg : "error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Encode c into fp (open for writing).  0, or -1 with the reason in m. */
static int encode_png(FILE *fp, const canvas *c, png_msg *m)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, m, png_on_error,
                                              png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(m->text, sizeof m->text, "out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)c->w, (png_uint_32)c->h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_text t[1];
    memset(t, 0, sizeof t);
    t[0].compression = PNG_TEXT_COMPRESSION_NONE;
    t[0].key = (png_charp) "Software";
    t[0].text = (png_charp) "fit_xpcs (nlsq)";
    png_set_text(png, info, t, 1);
    png_write_info(png, info);
    for (int y = 0; y < c->h; y++) png_write_row(png, c->px + (size_t)y * (size_t)c->w * 3);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

/* Write the PNG to a temporary next to path and rename it over path
 * (safe_io.h): a failure leaves path as it was and no temporary. */
static int write_png(const char *path, const canvas *c, char *err, size_t es)
{
    size_t ts = strlen(path) + 16;
    char *tmp = malloc(ts);
    if (!tmp) {
        snprintf(err, es, "--plot %s: out of memory", path);
        return -1;
    }
    int fd = safe_temp_create(path, tmp, ts);
    FILE *fp = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!fp) {
        snprintf(err, es, "--plot %s: cannot create a temporary next to it: %s", path,
                 strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        free(tmp);
        return -1;
    }
    png_msg m = {""};
    int rc = encode_png(fp, c, &m);
    int e = errno;
    if (fflush(fp) != 0 || ferror(fp)) {
        e = errno;
        if (rc == 0) snprintf(m.text, sizeof m.text, "%s", strerror(e));
        rc = -1;
    }
    if (fclose(fp) != 0 && rc == 0) {
        snprintf(m.text, sizeof m.text, "%s", strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        unlink(tmp);
        /* libpng's "Write Error" says less than errno */
        if (!strcmp(m.text, "Write Error") && e) snprintf(m.text, sizeof m.text, "%s", strerror(e));
        snprintf(err, es, "--plot %s: cannot write the image: %s", path, m.text);
    } else {
        rc = safe_commit("--plot", tmp, path, err, es);
    }
    free(tmp);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Streaming one angle                                                        */
/* ------------------------------------------------------------------------ */

typedef struct binned {
    size_t N, f, n;          /* frames, bin size, bins per side (n = ceil(N / f)) */
    double *sd, *sf, *sr;    /* sums of data, fit, residual per bin (n * n) */
    uint32_t *cd, *cf;       /* counts: finite data, all entries */
    double *gd, *gf;         /* sums along diagonals, lag 0..N-1 */
    size_t *gdn, *gfn;
} binned;

#define MAX_BINS 500

static void binned_free(binned *b)
{
    free(b->sd);
    free(b->cd);
    free(b->gd);
    free(b->gdn);
    memset(b, 0, sizeof *b);
}

static int binned_init(binned *b, size_t N)
{
    memset(b, 0, sizeof *b);
    b->N = N;
    b->f = (N + MAX_BINS - 1) / MAX_BINS;
    if (b->f < 1) b->f = 1;
    b->n = (N + b->f - 1) / b->f;
    size_t nn = b->n * b->n;
    b->sd = calloc(3 * nn, sizeof(double));
    b->cd = calloc(2 * nn, sizeof(uint32_t));
    b->gd = calloc(2 * N, sizeof(double));
    b->gdn = calloc(2 * N, sizeof(size_t));
    if (!b->sd || !b->cd || !b->gd || !b->gdn) {
        binned_free(b);
        return -1;
    }
    b->sf = b->sd + nn;
    b->sr = b->sd + 2 * nn;
    b->cf = b->cd + nn;
    b->gf = b->gd + N;
    b->gfn = b->gdn + N;
    return 0;
}

/* Stream angle a: data rows from the file, fit rows from g. */
static int stream_angle(const xpcs_report *r, const nlsq_xpcs_g2_rows *g, size_t a, binned *b,
                        char *err, size_t es)
{
    const size_t N = r->N;
    size_t B = xpcs_row_block(N, (size_t)1 << 19);
    double *data = malloc(sizeof(double) * B * N), *fit = malloc(sizeof(double) * N);
    if (!data || !fit) {
        free(data);
        free(fit);
        snprintf(err, es, "--plot: out of memory (N = %zu)", N);
        return -1;
    }
    const double sigma = r->cfg->sigma;
    for (size_t i0 = 0; i0 < N; i0 += B) {
        size_t nr = N - i0 < B ? N - i0 : B;
        if (xpcs_report_read_rows(r, a, i0, nr, data, "--plot", err, es) != 0) {
            free(data);
            free(fit);
            return -1;
        }
        for (size_t ii = 0; ii < nr; ii++) {
            size_t i = i0 + ii, bi = i / b->f;
            const double *d = data + ii * N;
            nlsq_xpcs_g2_rows_eval(g, a, i, 1, 0, N, fit);   /* in range by construction */
            for (size_t j = 0; j < N; j++) {
                size_t k = bi * b->n + j / b->f;
                b->sf[k] += fit[j];
                b->cf[k]++;
                if (isfinite(d[j])) {
                    b->sd[k] += d[j];
                    b->sr[k] += (d[j] - fit[j]) / sigma;
                    b->cd[k]++;
                }
                if (j >= i) {
                    size_t lag = j - i;
                    b->gf[lag] += fit[j];
                    b->gfn[lag]++;
                    if (isfinite(d[j])) {
                        b->gd[lag] += d[j];
                        b->gdn[lag]++;
                    }
                }
            }
        }
    }
    free(data);
    free(fit);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The three-panel figure                                                     */
/* ------------------------------------------------------------------------ */

#define TS 2          /* text scale: 10 x 14 pixel glyphs */
#define MARGIN 24
#define YLAB_W 110    /* room left of a panel for the t2 labels */
#define CBAR_GAP 10
#define CBAR_W 18
#define CLAB_W 110    /* room right of a colour bar for its labels */
#define PANEL_GAP 30

/* One panel: the binned values v (NAN where empty) drawn with colour map
 * cmap over [lo, hi], at (x, y), u pixels per bin, time labels and a colour
 * bar. */
static void draw_panel(canvas *c, int x, int y, const binned *b, const double *v, int u,
                       rgb (*cmap)(double), double lo, double hi, const char *title,
                       double tmin, double tmax)
{
    int n = (int)b->n, S = n * u;
    text_c(c, x + S / 2, y - text_height(TS) - 10, title, TS, BLACK);
    for (int py = 0; py < S; py++) {
        int bi = n - 1 - py / u;          /* t2 (row i) runs upwards */
        for (int px = 0; px < S; px++) {
            int bj = px / u;              /* t1 (column j) runs to the right */
            double val = v[(size_t)bi * b->n + (size_t)bj];
            rgb col = isfinite(val) ? cmap(hi > lo ? (val - lo) / (hi - lo) : 0.5) : NAN_RGB;
            put(c, x + px, y + py, col);
        }
    }
    rect_outline(c, x, y, S, S, BLACK);
    /* axes: ticks and labels at the ends */
    char b1[32], b2[32];
    fmt_num(b1, sizeof b1, tmin);
    fmt_num(b2, sizeof b2, tmax);
    for (int k = 0; k < 6; k++) {
        line(c, x - 1, y + S + 1 + k, x - 1, y + S + 1 + k, BLACK, 1);
        line(c, x + S, y + S + 1 + k, x + S, y + S + 1 + k, BLACK, 1);
        line(c, x - 2 - k, y + S, x - 2 - k, y + S, BLACK, 1);
        line(c, x - 2 - k, y - 1, x - 2 - k, y - 1, BLACK, 1);
    }
    int ty = y + S + 10;
    text(c, x - 4, ty, b1, TS, BLACK);
    text_r(c, x + S + 4, ty, b2, TS, BLACK);
    text_c(c, x + S / 2, ty + text_height(TS) + 8, "T1 [S]", TS, BLACK);
    text_r(c, x - 12, y + S - text_height(TS), b1, TS, BLACK);
    text_r(c, x - 12, y, b2, TS, BLACK);
    text_r(c, x - 12, y + S / 2 - text_height(TS) / 2, "T2 [S]", TS, BLACK);
    /* colour bar */
    int cx = x + S + CBAR_GAP;
    for (int py = 0; py < S; py++) {
        double t = S > 1 ? 1.0 - (double)py / (double)(S - 1) : 0.5;
        fill_rect(c, cx, y + py, CBAR_W, 1, cmap(t));
    }
    rect_outline(c, cx, y, CBAR_W, S, BLACK);
    fmt_num(b1, sizeof b1, hi);
    fmt_num(b2, sizeof b2, lo);
    text(c, cx + CBAR_W + 6, y, b1, TS, BLACK);
    text(c, cx + CBAR_W + 6, y + S - text_height(TS), b2, TS, BLACK);
}

static int angle_figure(const char *path, const xpcs_report *r, size_t a, const binned *b,
                        char *err, size_t es)
{
    size_t nn = b->n * b->n;
    double *vd = malloc(sizeof(double) * 3 * nn);
    if (!vd) {
        snprintf(err, es, "--plot: out of memory");
        return -1;
    }
    double *vf = vd + nn, *vr = vd + 2 * nn;
    double lo = INFINITY, hi = -INFINITY, ss = 0;
    size_t ns = 0;
    for (size_t bi = 0; bi < b->n; bi++)
        for (size_t bj = 0; bj < b->n; bj++) {
            size_t k = bi * b->n + bj;
            vd[k] = b->cd[k] ? b->sd[k] / b->cd[k] : NAN;
            vr[k] = b->cd[k] ? b->sr[k] / b->cd[k] : NAN;
            vf[k] = b->cf[k] ? b->sf[k] / b->cf[k] : NAN;
            /* colour limits from the off-diagonal bins (the diagonal of
             * measured c2 is an artifact); the fit everywhere */
            if (isfinite(vf[k])) {
                if (vf[k] < lo) lo = vf[k];
                if (vf[k] > hi) hi = vf[k];
            }
            if ((bi != bj || b->n == 1) && isfinite(vd[k])) {
                if (vd[k] < lo) lo = vd[k];
                if (vd[k] > hi) hi = vd[k];
                ss += vr[k] * vr[k];
                ns++;
            }
        }
    if (!(hi > lo)) { lo -= 0.5; hi += 0.5; }
    if (!isfinite(lo)) { lo = 0; hi = 1; }
    double rms = ns ? sqrt(ss / (double)ns) : 1.0;
    double R = 4.0 * rms;
    if (!(R > 0) || !isfinite(R)) R = 1.0;

    int u = 1;
    if (b->n < 360) u = (int)(360 / b->n);
    if (u < 1) u = 1;
    int S = (int)b->n * u;
    int pw = YLAB_W + S + CBAR_GAP + CBAR_W + CLAB_W;
    int W = 2 * MARGIN + 3 * pw + 2 * PANEL_GAP;
    int top = MARGIN + 2 * text_height(TS) + 16 + text_height(TS) + 14;
    int H = top + S + 2 * text_height(TS) + 24 + text_height(TS) + MARGIN;
    canvas c;
    if (canvas_init(&c, W, H) != 0) {
        free(vd);
        snprintf(err, es, "--plot: out of memory");
        return -1;
    }
    char title[256], sub[256];
    snprintf(title, sizeof title, "ANGLE %zu  PHI = %.4g DEG   Q = %.4g 1/A   FRAMES %zu-%zu", a,
             r->sel->phi[a], r->sel->q, r->sel->first_frame, r->sel->last_frame);
    if (b->f > 1)
        snprintf(sub, sizeof sub, "N = %zu, SHOWN IN %zu X %zu BLOCK MEANS   CHI2/DOF = %.4g", r->N,
                 b->f, b->f, r->reduced_chi2);
    else
        snprintf(sub, sizeof sub, "N = %zu   CONTRAST %.4g  OFFSET %.4g   CHI2/DOF = %.4g", r->N,
                 r->x[r->np + 2 * a], r->x[r->np + 2 * a + 1], r->reduced_chi2);
    text(&c, MARGIN, MARGIN, title, TS, BLACK);
    text(&c, MARGIN, MARGIN + text_height(TS) + 8, sub, TS, GREY);
    double tmin = (double)r->cfg->k0 * r->cfg->dt;
    double tmax = (double)(r->cfg->k0 + r->N - 1) * r->cfg->dt;
    int x0 = MARGIN + YLAB_W;
    draw_panel(&c, x0, top, b, vd, u, seq_color, lo, hi, "DATA C2", tmin, tmax);
    draw_panel(&c, x0 + pw + PANEL_GAP, top, b, vf, u, seq_color, lo, hi, "FIT C2", tmin, tmax);
    draw_panel(&c, x0 + 2 * (pw + PANEL_GAP), top, b, vr, u, div_color, -R, R,
               "(DATA - FIT) / SIGMA", tmin, tmax);
    free(vd);
    int rc = write_png(path, &c, err, es);
    canvas_free(&c);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* g2 versus lag                                                              */
/* ------------------------------------------------------------------------ */

static const rgb palette[10] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};

static double nice_step(double range, int target)
{
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return nf * mag;
}

/* The g2 plot's frame: a log10 lag axis xmin..xmax and a g2 axis lo..hi
 * mapped onto the PW x PH panel at (L, T). */
typedef struct g2_axes {
    int L, T, PW, PH;
    double xmin, xmax, lo, hi;
} g2_axes;

static int g2_xp(const g2_axes *ax, double lx)
{
    return ax->L + (int)lround((lx - ax->xmin) / (ax->xmax - ax->xmin) * (ax->PW - 1));
}

static int g2_yp(const g2_axes *ax, double v)
{
    return ax->T + ax->PH - 1 - (int)lround((v - ax->lo) / (ax->hi - ax->lo) * (ax->PH - 1));
}

/* The g2 range of the curves (lag 0 aside: it is not on a log axis), padded
 * by 5%; 0.9..1.1 when nothing is finite. */
static void g2_range(g2_axes *ax, size_t N, size_t n_curves, const double *mdata,
                     const double *mfit)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t k = 0; k < n_curves * N; k++) {
        if (k % N == 0) continue;
        double v[2] = {mdata[k], mfit[k]};
        for (int t = 0; t < 2; t++)
            if (isfinite(v[t])) {
                if (v[t] < lo) lo = v[t];
                if (v[t] > hi) hi = v[t];
            }
    }
    if (!isfinite(lo)) { lo = 0.9; hi = 1.1; }
    if (!(hi > lo)) { lo -= 0.05; hi += 0.05; }
    double pad = 0.05 * (hi - lo);
    ax->lo = lo - pad;
    ax->hi = hi + pad;
}

/* Grid, ticks and labels: x decades with minor ticks and the axis ends
 * (unless a decade label is close), y in nice steps. */
static void g2_draw_axes(canvas *c, const g2_axes *ax)
{
    const int L = ax->L, T = ax->T, PW = ax->PW, PH = ax->PH;
    const double xmin = ax->xmin, xmax = ax->xmax, lo = ax->lo, hi = ax->hi;
    char b1[64];
    for (int e = (int)floor(xmin); e <= (int)ceil(xmax); e++) {
        if (e < xmin - 1e-9 || e > xmax + 1e-9) continue;
        int px = g2_xp(ax, (double)e);
        line(c, px, T, px, T + PH - 1, LIGHT, 1);
        line(c, px, T + PH, px, T + PH + 6, BLACK, 1);
        snprintf(b1, sizeof b1, "1E%d", e);
        text_c(c, px, T + PH + 12, b1, TS, BLACK);
        for (int m = 2; m < 10; m++) {   /* minor ticks */
            double lx = e + log10((double)m);
            if (lx > xmax) break;
            if (lx >= xmin) line(c, g2_xp(ax, lx), T + PH, g2_xp(ax, lx), T + PH + 3, BLACK, 1);
        }
    }
    for (int end = 0; end < 2; end++) {
        double lx = end ? xmax : xmin;
        double near = end ? floor(xmax + 1e-9) : ceil(xmin - 1e-9);
        if (abs(g2_xp(ax, near) - g2_xp(ax, lx)) < 70 && near >= xmin - 1e-9 && near <= xmax + 1e-9)
            continue;
        line(c, g2_xp(ax, lx), T + PH, g2_xp(ax, lx), T + PH + 6, BLACK, 1);
        fmt_num(b1, sizeof b1, pow(10, lx));
        text_c(c, g2_xp(ax, lx), T + PH + 12, b1, TS, GREY);
    }
    double st = nice_step(hi - lo, 5);
    for (double v = ceil(lo / st) * st; v <= hi + 1e-12 * fabs(hi); v += st) {
        int py = g2_yp(ax, v);
        line(c, L, py, L + PW - 1, py, LIGHT, 1);
        line(c, L - 6, py, L - 1, py, BLACK, 1);
        fmt_num(b1, sizeof b1, fabs(v) < 1e-12 * st ? 0.0 : v);
        text_r(c, L - 10, py - text_height(TS) / 2, b1, TS, BLACK);
    }
    rect_outline(c, L, T, PW, PH, BLACK);
    text_c(c, L + PW / 2, T + PH + 44, "LAG [S]", TS, BLACK);
    text_r(c, L - 10, T - text_height(TS) - 12, "G2", TS, BLACK);
}

/* Curve s: the fit as a line, the data as boxes, and its legend entry. */
static void g2_draw_curve(canvas *c, const g2_axes *ax, const xpcs_report *r, size_t s,
                          size_t angle, const double *md, const double *mf)
{
    const size_t N = r->N;
    const double dt = r->cfg->dt;
    rgb col = palette[s % 10];
    int have = 0, px0 = 0, py0 = 0;
    for (size_t d = 1; d < N; d++) {
        if (!isfinite(mf[d])) continue;
        int px = g2_xp(ax, log10(dt * (double)d)), py = g2_yp(ax, mf[d]);
        if (have) line(c, px0, py0, px, py, col, 2);
        px0 = px;
        py0 = py;
        have = 1;
    }
    for (size_t d = 1; d < N; d++) {
        if (!isfinite(md[d])) continue;
        int px = g2_xp(ax, log10(dt * (double)d)), py = g2_yp(ax, md[d]);
        rect_outline(c, px - 1, py - 1, 3, 3, col);
    }
    int ly = ax->T + 10 + (int)s * (text_height(TS) + 10);
    if (ly > ax->T + ax->PH - 40) return;
    char b1[64];
    fill_rect(c, ax->L + ax->PW + 20, ly + 2, 24, 4, col);
    rect_outline(c, ax->L + ax->PW + 20 + 9, ly + 9, 5, 5, col);
    snprintf(b1, sizeof b1, "%zu: PHI %.4g", angle, r->sel->phi[angle]);
    text(c, ax->L + ax->PW + 52, ly, b1, TS, BLACK);
}

/* curves: n_angles x N means (data then fit), NAN where empty. */
static int g2_figure(const char *path, const xpcs_report *r, const size_t *angles,
                     size_t n_angles, const double *mdata, const double *mfit, char *err,
                     size_t es)
{
    const size_t N = r->N;
    const double dt = r->cfg->dt;
    const int W = 1000, H = 640;
    g2_axes ax = {.L = MARGIN + 120, .T = MARGIN + 50, .PW = 600};
    ax.PH = H - ax.T - 90;
    canvas c;
    if (canvas_init(&c, W, H) != 0) {
        snprintf(err, es, "--plot: out of memory");
        return -1;
    }
    ax.xmin = log10(dt);
    ax.xmax = log10(dt * (double)(N > 2 ? N - 1 : 10));
    if (!(ax.xmax > ax.xmin)) ax.xmax = ax.xmin + 1;
    g2_range(&ax, N, n_angles, mdata, mfit);
    char b1[64];
    snprintf(b1, sizeof b1, "G2 VERSUS LAG (MEAN ALONG DIAGONALS)   Q = %.4g 1/A", r->sel->q);
    text(&c, MARGIN, MARGIN, b1, TS, BLACK);
    g2_draw_axes(&c, &ax);
    for (size_t s = 0; s < n_angles; s++)
        g2_draw_curve(&c, &ax, r, s, angles[s], mdata + s * N, mfit + s * N);
    int ly = ax.T + ax.PH - 2 * text_height(TS) - 14;
    text(&c, ax.L + ax.PW + 20, ly, "BOXES: DATA", TS, GREY);
    text(&c, ax.L + ax.PW + 20, ly + text_height(TS) + 8, "LINES: FIT", TS, GREY);
    int rc = write_png(path, &c, err, es);
    canvas_free(&c);
    return rc;
}

/* ------------------------------------------------------------------------ */

int xpcs_plot(const char *prefix, const xpcs_report *r, const size_t *angles, size_t n_angles,
              char *err, size_t es)
{
    const size_t N = r->N;
    size_t plen = strlen(prefix) + 32;
    char *path = malloc(plen);
    double *mdata = malloc(sizeof(double) * N * (n_angles ? n_angles : 1));
    double *mfit = malloc(sizeof(double) * N * (n_angles ? n_angles : 1));
    nlsq_xpcs_g2_rows *g = NULL;
    int g_ok = nlsq_xpcs_g2_rows_create(r->cfg, N, r->P, r->sel->phi, r->x, &g) == 0;
    int rc = -1;
    if (!path || !mdata || !mfit || !g_ok) {
        snprintf(err, es, "--plot: out of memory");
        goto out;
    }
    for (size_t s = 0; s < n_angles; s++) {
        size_t a = angles[s];
        if (a >= r->P) {
            snprintf(err, es, "--plot-angles: angle %zu does not exist (0..%zu)", a, r->P - 1);
            goto out;
        }
        binned b;
        if (binned_init(&b, N) != 0) {
            snprintf(err, es, "--plot: out of memory");
            goto out;
        }
        if (stream_angle(r, g, a, &b, err, es) != 0) {
            binned_free(&b);
            goto out;
        }
        for (size_t d = 0; d < N; d++) {
            mdata[s * N + d] = b.gdn[d] ? b.gd[d] / (double)b.gdn[d] : NAN;
            mfit[s * N + d] = b.gfn[d] ? b.gf[d] / (double)b.gfn[d] : NAN;
        }
        xpcs_plot_file_name(path, plen, prefix, a);
        int e = angle_figure(path, r, a, &b, err, es);
        binned_free(&b);
        if (e) goto out;
    }
    xpcs_plot_file_name(path, plen, prefix, (size_t)-1);
    if (g2_figure(path, r, angles, n_angles, mdata, mfit, err, es) != 0) goto out;
    rc = 0;
out:
    nlsq_xpcs_g2_rows_free(g);
    free(path);
    free(mdata);
    free(mfit);
    return rc;
}

#endif /* FIT_XPCS_NO_PNG */
