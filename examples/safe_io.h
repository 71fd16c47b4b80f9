/*
 * safe_io.h - fit_xpcs's rules for touching files (docs/reliability.md,
 * "Files"):
 *
 *   - an output path (--output, --checkpoint, each --plot file) is checked
 *     before any work: it must not be the same file as an input (same device
 *     and inode, so symbolic and hard links count), must be a regular file
 *     when it exists (a directory, FIFO, device or socket is never replaced),
 *     and its folder must take a new file;
 *   - every output is written to a temporary "<path>.tmp.XXXXXX" made by
 *     mkstemp (unique per process), fsync'ed, and renamed over the path; the
 *     temporary is removed on every failure path;
 *   - standard output is flushed and closed with its errors checked, and the
 *     standard descriptors 0-2 are never left closed (so that no file the
 *     program opens can become "stdout").
 *
 * Program-side code (fit_xpcs): errors are one line (no newline) in err.
 */
#ifndef SAFE_IO_H
#define SAFE_IO_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A file the program reads: the flag that names it ("input", "--resume")
 * and its path.  Paths that do not exist are ignored by the checks. */
typedef struct safe_input {
    const char *flag;
    const char *path;
} safe_input;

/* Call first in main: reopen any of the descriptors 0, 1, 2 that is closed
 * on /dev/null, read-only (so that writing to a closed stdout fails, and is
 * reported, instead of landing in a file opened later), and remember the
 * umask for the mode of new files. */
void safe_io_init(void);

/* Check an output path before the work starts (rules above).  flag names
 * the option in the message.  0, or -1 with one line in err. */
int safe_check_output(const char *flag, const char *path, const safe_input *inputs,
                      size_t n_inputs, char *err, size_t es);

/* Are two paths the same existing file (device and inode)?  0 when either
 * does not exist. */
int safe_same_file(const char *a, const char *b);

/* Create the temporary for path: "<path>.tmp.XXXXXX" (mkstemp), mode 0666
 * less the umask.  Writes its name into tmp (size ts) and returns an open
 * descriptor, or -1 with errno set. */
int safe_temp_create(const char *path, char *tmp, size_t ts);

/* Finish a temporary written (and closed) by the caller: fsync it, check
 * that path is still not a non-regular file, rename it over path.  On any
 * failure the temporary is removed.  0, or -1 with one line in err
 * (prefixed with flag). */
int safe_commit(const char *flag, const char *tmp, const char *path, char *err, size_t es);

/* Open a file to read without blocking (a FIFO or device would): regular
 * files only.  Returns the stream, or NULL with one line in err ("FLAG
 * PATH: is a FIFO; ..." or the open error). */
FILE *safe_open_input(const char *flag, const char *path, char *err, size_t es);

/* Flush and close stdout, checking every error.  0, or -1 with one line in
 * err ("cannot write the results to standard output: ..."). */
int safe_close_stdout(char *err, size_t es);

#ifdef __cplusplus
}
#endif
#endif /* SAFE_IO_H */
