/* json_close A.json B.json - 0 when two fit_xpcs --json outputs agree:
 * the same keys, strings and integers in the same order, and numbers equal to
 * 1e-9 relative, except values under a key whose path contains "errors" or
 * "sigmas" (from the covariance: 1e-4) and "seconds" (ignored).  Prints the worst
 * differences.  A tiny scanner, enough for fit_xpcs's flat JSON. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tok {
    int kind;            /* 's' string, 'n' number, 'l' null */
    char key[160];       /* path of keys: "errors/D0", "contrast_errors", ... */
    char text[256];
    double v;
} tok;

static int scan(const char *path, tok **out, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    static char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    size_t cap = 256, k = 0;
    tok *t = malloc(cap * sizeof *t);
    char key[64] = "", kpath[160] = "", full[160];
    size_t stack[16], depth = 0;   /* length of path at each '{' */
    for (const char *p = buf; *p;) {
        if (*p == '{' || *p == '}') {
            if (*p == '{' && depth < 16) {
                stack[depth++] = strlen(kpath);
                if (key[0]) snprintf(kpath + strlen(kpath), sizeof kpath - strlen(kpath), "%.63s/", key);
            } else if (*p == '}' && depth > 0) {
                kpath[stack[--depth]] = 0;
            }
            key[0] = 0;
            p++;
            continue;
        }
        snprintf(full, sizeof full, "%.90s%.63s", kpath, key);
        if (k == cap) t = realloc(t, (cap *= 2) * sizeof *t);
        if (*p == '"') {
            const char *e = p + 1;
            while (*e && *e != '"') e += *e == '\\' && e[1] ? 2 : 1;
            size_t l = (size_t)(e - p - 1);
            char s[256];
            snprintf(s, sizeof s, "%.*s", (int)(l < 255 ? l : 255), p + 1);
            p = *e ? e + 1 : e;
            while (*p == ' ') p++;
            if (*p == ':') { snprintf(key, sizeof key, "%.63s", s); p++; continue; }
            t[k].kind = 's';
            snprintf(t[k].key, sizeof t[k].key, "%s", full);
            snprintf(t[k].text, sizeof t[k].text, "%s", s);
            k++;
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            char *e;
            t[k].v = strtod(p, &e);
            t[k].kind = 'n';
            snprintf(t[k].key, sizeof t[k].key, "%s", full);
            snprintf(t[k].text, sizeof t[k].text, "%.*s", (int)(e - p), p);
            k++;
            p = e;
        } else if (!strncmp(p, "null", 4)) {
            t[k].kind = 'l';
            snprintf(t[k].key, sizeof t[k].key, "%s", full);
            k++;
            p += 4;
        } else {
            p++;
        }
    }
    *out = t;
    *n = k;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: json_close A.json B.json\n"); return 2; }
    tok *a, *b;
    size_t na, nb;
    if (scan(argv[1], &a, &na) || scan(argv[2], &b, &nb)) { fprintf(stderr, "cannot read\n"); return 2; }
    if (na != nb || na == 0) { fprintf(stderr, "different structure (%zu vs %zu values)\n", na, nb); return 1; }
    int bad = 0;
    double worst = 0, worst_err = 0;
    for (size_t i = 0; i < na; i++) {
        if (a[i].kind != b[i].kind || strcmp(a[i].key, b[i].key)) {
            fprintf(stderr, "value %zu: %s vs %s\n", i, a[i].key, b[i].key);
            bad = 1;
            continue;
        }
        if (strstr(a[i].key, "seconds")) continue;
        /* error bars and deviations in sigmas come from the covariance */
        int from_cov = strstr(a[i].key, "errors") || strstr(a[i].key, "sigmas");
        if (a[i].kind == 's' && strcmp(a[i].text, b[i].text)) {
            fprintf(stderr, "%s: \"%s\" vs \"%s\"\n", a[i].key, a[i].text, b[i].text);
            bad = 1;
        }
        if (a[i].kind != 'n') continue;
        int integer = !strpbrk(a[i].text, ".eE") && !strpbrk(b[i].text, ".eE");
        double d = a[i].v == b[i].v ? 0 : fabs(a[i].v - b[i].v) / fmax(fabs(a[i].v), fabs(b[i].v));
        double tol = integer ? 0 : from_cov ? 1e-4 : 1e-9;
        if (from_cov) { if (d > worst_err) worst_err = d; }
        else if (d > worst) worst = d;
        if (d > tol) {
            fprintf(stderr, "%s: %s vs %s (rel %.3g > %.0e)\n", a[i].key, a[i].text, b[i].text, d, tol);
            bad = 1;
        }
    }
    printf("json_close: %zu values, worst relative difference %.3g (error bars %.3g): %s\n", na,
           worst, worst_err, bad ? "DIFFERENT" : "close");
    free(a);
    free(b);
    return bad;
}
