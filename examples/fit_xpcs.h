/* fit_xpcs.h - the fit_xpcs command as a function.
 *
 * fit_xpcs_main runs the command with its arguments (argv[0] is the program
 * name): results (table or --json) go to out, the one-line error and
 * progress messages to msgs.  Returns the command's exit code (0 converged,
 * 1 not converged, 2 bad usage or input).  The command's main() calls it
 * with stdout and stderr (stdout is then closed and checked, safe_io.c); an
 * in-process caller (fit_xpcs_embed.c) passes its own streams, which are
 * flushed, not closed.  Not reentrant: one call at a time per process (the
 * message stream is a file-level variable). */
#ifndef FIT_XPCS_H
#define FIT_XPCS_H

#include <stdio.h>

int fit_xpcs_main(int argc, char **argv, FILE *out, FILE *msgs);

#endif
