/*
 * safe_io.c - fit_xpcs's rules for touching files (see safe_io.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "safe_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The umask, read once at start (umask() can only be read by setting it). */
static mode_t g_umask = 022;

void safe_io_init(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
        int nfd = open("/dev/null", O_RDONLY);
        if (nfd >= 0 && nfd != fd) {
            dup2(nfd, fd);
            close(nfd);
        }
    }
    g_umask = umask(022);
    umask(g_umask);
}

/* "a directory", "a FIFO", ... for a file that is not regular. */
static const char *kind_of(mode_t m)
{
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

int safe_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (!a || !b || stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int safe_temp_create(const char *path, char *tmp, size_t ts)
{
    int n = snprintf(tmp, ts, "%s.tmp.XXXXXX", path);
    if (n < 0 || (size_t)n >= ts) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) return -1;
    if (fchmod(fd, 0666 & ~g_umask) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        return -1;
    }
    return fd;
}

int safe_check_output(const char *flag, const char *path, const safe_input *inputs,
                      size_t n_inputs, char *err, size_t es)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            snprintf(err, es, "%s %s: is %s; refusing to replace it (give a file name)", flag,
                     path, kind_of(st.st_mode));
            return -1;
        }
        for (size_t k = 0; k < n_inputs; k++)
            if (safe_same_file(path, inputs[k].path)) {
                snprintf(err, es, "%s %s: is the same file as the %s %s; refusing to overwrite "
                         "an input", flag, path, inputs[k].flag, inputs[k].path);
                return -1;
            }
    }
    /* the folder takes a new file (a temporary, removed at once) */
    size_t ts = strlen(path) + 16;
    char *tmp = malloc(ts);
    if (!tmp) {
        snprintf(err, es, "%s %s: out of memory", flag, path);
        return -1;
    }
    int fd = safe_temp_create(path, tmp, ts);
    int e = errno;
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    free(tmp);
    if (fd < 0) {
        snprintf(err, es, "%s %s: cannot create files there (%s)", flag, path, strerror(e));
        return -1;
    }
    return 0;
}

int safe_commit(const char *flag, const char *tmp, const char *path, char *err, size_t es)
{
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        snprintf(err, es, "%s %s: cannot sync '%s': %s", flag, path, tmp, strerror(errno));
        if (fd >= 0) close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {   /* appeared during the fit */
        snprintf(err, es, "%s %s: is %s; refusing to replace it", flag, path,
                 kind_of(st.st_mode));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, es, "%s %s: cannot rename '%s' to it: %s", flag, path, tmp,
                 strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

FILE *safe_open_input(const char *flag, const char *path, char *err, size_t es)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, es, "%s %s: cannot open: %s", flag, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, es, "%s %s: cannot stat: %s", flag, path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, es, "%s %s: is %s, not a file this program reads", flag, path,
                 kind_of(st.st_mode));
        close(fd);
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        snprintf(err, es, "%s %s: cannot open: %s", flag, path, strerror(errno));
        close(fd);
    }
    return fp;
}

int safe_close_stdout(char *err, size_t es)
{
    errno = 0;
    int bad = fflush(stdout) != 0 || ferror(stdout);
    int e = errno;
    if (fclose(stdout) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        snprintf(err, es, "cannot write the results to standard output: %s",
                 e ? strerror(e) : "write error");
        return -1;
    }
    return 0;
}
