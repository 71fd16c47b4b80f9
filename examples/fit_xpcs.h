/* fit_xpcs.h - the fit_xpcs command as a function.
 *
 * fit_xpcs_main runs the command with its arguments (argv[0] is the program
 * name): results (table or --json) go to out, the one-line error messages to
 * msgs (progress lines and warnings to stderr).  be: the process backend
 * (fit_xpcs_backend.h); NULL: the serial one.  Returns the command's exit
 * code (0 converged, 1 not converged, 2 bad usage or input).  The commands'
 * main() (fit_xpcs_main.c) calls it with stdout and stderr (stdout is then
 * closed and checked, safe_io.c); an in-process caller (fit_xpcs_embed.c)
 * passes its own streams, which are flushed, not closed.  The call keeps no
 * global state: its streams and backend travel with it, so calls in several
 * threads may run at once (HDF5 built thread-safe).
 *
 * fit_xpcs_process_init: once per process, before the first call (main()
 * does; fit_xpcs_embed.c once under pthread_once): the process-wide setup,
 * i.e. the standard descriptors and the umask (safe_io.h), and HDF5 not
 * closing files at exit. */
#ifndef FIT_XPCS_H
#define FIT_XPCS_H

#include <stdio.h>

struct fit_xpcs_backend;

void fit_xpcs_process_init(void);
int fit_xpcs_main(int argc, char **argv, FILE *out, FILE *msgs,
                  const struct fit_xpcs_backend *be);

#endif
