/*
 * utf8_text.c - valid UTF-8 out of arbitrary bytes (see utf8_text.h).
 */
#include "utf8_text.h"

#include <stdlib.h>
#include <string.h>

/* Is c a continuation byte 10xxxxxx? */
static int cont(unsigned char c) { return (c & 0xC0) == 0x80; }

size_t utf8_sequence_length(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return cont(s[1]) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        /* E0: no overlong (second byte >= A0); ED: no surrogates (< A0) */
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return s[1] >= lo && s[1] <= hi && cont(s[2]) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        /* F0: no overlong (>= 90); F4: not above U+10FFFF (<= 8F) */
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return s[1] >= lo && s[1] <= hi && cont(s[2]) && cont(s[3]) ? 4 : 0;
    }
    return 0;   /* 80..C1, F5..FF */
}

char *utf8_repaired(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 1);   /* each byte grows to at most 2 */
    if (!out) return NULL;
    const unsigned char *c = (const unsigned char *)s;
    size_t o = 0;
    while (*c) {
        size_t k = utf8_sequence_length(c);
        if (k) {
            memcpy(out + o, c, k);
            o += k;
            c += k;
        } else {   /* U+00XX, XX >= 0x80: two bytes 110000xx 10xxxxxx */
            out[o++] = (char)(0xC0 | (*c >> 6));
            out[o++] = (char)(0x80 | (*c & 0x3F));
            c++;
        }
    }
    out[o] = '\0';
    return out;
}
