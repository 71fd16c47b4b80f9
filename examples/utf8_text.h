/*
 * utf8_text.h - fit_xpcs writes only valid UTF-8 (JSON on stdout, string
 * attributes declared UTF-8 in the result file), whatever bytes a file name
 * holds.
 *
 * The choice: a byte that does not start a valid UTF-8 sequence (overlong
 * forms, surrogates and code points above U+10FFFF are invalid too) stands
 * for the character U+00XX of the same value (its Latin-1 reading): in JSON
 * it is written "\u00XX", in the result file as the UTF-8 encoding of U+00XX.
 * The original byte is therefore recoverable (every such character below
 * U+0100 that was not valid UTF-8 input), and Latin-1 names read right.
 */
#ifndef UTF8_TEXT_H
#define UTF8_TEXT_H

#include <stddef.h>

/* Length (1..4) of the valid UTF-8 sequence at s, or 0 when the byte at s
 * does not start one (s is NUL-terminated; *s != 0). */
size_t utf8_sequence_length(const unsigned char *s);

/* A malloc'ed copy of s with every invalid byte replaced by the UTF-8 form
 * of U+00XX (above); NULL when out of memory. */
char *utf8_repaired(const char *s);

#endif /* UTF8_TEXT_H */
