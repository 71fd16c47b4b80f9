/* fit_xpcs_embed.c - libnlsq_fit_xpcs: the fit_xpcs command in-process.
 *
 * nlsq_fit_xpcs_json runs fit_xpcs_main (fit_xpcs.c) with the caller's arguments plus
 * --json, into memory streams, and hands back the JSON object the command
 * would print and its one-line messages.  The Python package calls it
 * (nlsqc.fit_xpcs), so both give the same keys from the same code.  Each
 * call has its own streams and the serial backend (fit_xpcs.h): calls from
 * several threads may run at once.  The process-wide setup
 * (fit_xpcs_process_init) runs once, at the first call.
 */
#define _POSIX_C_SOURCE 200809L
#include "fit_xpcs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EMBED_API __attribute__((visibility("default")))

EMBED_API int nlsq_fit_xpcs_json(int argc, const char *const *argv, char **json, char **messages);
EMBED_API void nlsq_fit_xpcs_free(char *p);

/* argv: argc arguments after the program name.  *json and *messages: NUL-
 * terminated, malloc'ed (free with nlsq_fit_xpcs_free), never NULL when the
 * return is 0..2.  Returns fit_xpcs's exit code (0 converged, 1 not
 * converged, 2 bad usage or input), or -1 when memory for the streams or the
 * argument list could not be had (*json, *messages NULL). */
int nlsq_fit_xpcs_json(int argc, const char *const *argv, char **json, char **messages)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    *json = *messages = NULL;
    if (argc < 0 || pthread_once(&once, fit_xpcs_process_init) != 0) return -1;
    char **args = calloc((size_t)argc + 3, sizeof *args);
    char *ob = NULL, *mb = NULL;
    size_t on = 0, mn = 0;
    FILE *out = open_memstream(&ob, &on);
    FILE *msgs = open_memstream(&mb, &mn);
    if (!args || !out || !msgs) {
        if (out) fclose(out);
        if (msgs) fclose(msgs);
        free(ob);
        free(mb);
        free(args);
        return -1;
    }
    char prog[] = "fit_xpcs", flag[] = "--json";
    args[0] = prog;
    for (int i = 0; i < argc; i++) args[i + 1] = (char *)argv[i];
    args[argc + 1] = flag;
    int rc = fit_xpcs_main(argc + 2, args, out, msgs, NULL);   /* the serial backend */
    int bad = fclose(out) != 0;
    bad |= fclose(msgs) != 0;
    free(args);
    if (bad || !ob || !mb) {
        free(ob);
        free(mb);
        return -1;
    }
    *json = ob;
    *messages = mb;
    return rc;
}

void nlsq_fit_xpcs_free(char *p)
{
    free(p);
}
