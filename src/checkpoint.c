/*
 * checkpoint.c - atomic save / load of solver state, and nlsq_resume.
 *
 * Writing: the file is assembled in memory, written to a temporary
 * "<path>.tmp.XXXXXX" of its own (mkstemp, mode 0600), flushed with fsync,
 * renamed over <path>, and the directory is fsync'ed, so <path> is always
 * either the previous complete checkpoint or the new one, and two solves
 * that share a path never write into each other's temporary.  A <path> that
 * is not a regular file (FIFO, device, folder) is never replaced (NLSQ_EIO).
 * Reading opens without blocking and reads regular files only.
 *
 * Format, version 3 (integers and doubles in host byte order, IEEE-754
 * doubles as stored in memory; the endian tag rejects a foreign byte order):
 *
 *   off  size  field
 *     0     8  magic "NLSQCKP\0"
 *     8     4  version (3)
 *    12     4  endian tag 0x01020304
 *    16     4  solver, the public solver that wrote it (nlsq_solver_kind):
 *              1 LM, 2 Adam, 3 hybrid (both phases of nlsq_hybrid write 3)
 *    20     4  phase: NLSQ_PHASE_ADAM (2) or NLSQ_PHASE_LM (1)
 *    24     8  p
 *    32     8  m
 *    40     8  bounds hash: FNV-1a 64 over lower[0..p) then upper[0..p) as
 *              doubles (NULL bounds = -inf / +inf, -0.0 read as +0.0)
 *    48     8  payload size in bytes (N)
 *    56     8  tag size T (at most NLSQ_CHECKPOINT_TAG_MAX; 0: no tag)
 *    64     T  tag bytes (opt->checkpoint_tag: the caller's fingerprint of its
 *              data and settings)
 *  64+T     N  payload (below)
 * 64+T+N    8  checksum: FNV-1a 64 over bytes [0, 64 + T + N)
 *
 * Older versions, still read: version 1 (no tag) has no tag-size field, its
 * payload at 56; version 2 is version 3's layout with T > 0.  Neither has
 * the scale_exp fields below (read as 0: a resumed run of a problem whose
 * residuals needed a power-of-two scale restarts its damping state in the
 * wrong units: a correct result, possibly by another path).  Any other
 * version is refused with NLSQ_ECHECKPOINT.
 *
 * Payload, by (solver, phase):
 *   LM,     LM:   [lm]
 *   Adam,   Adam: [adam]
 *   hybrid, Adam: [adam]
 *   hybrid, LM:   [hybrid][lm]
 * [lm]     chunk_rows u64, iteration u64, lambda f64, nu f64, delta f64, n_eval u64,
 *          n_jac u64, has_d2 u64, initial_cost f64, x[p], d2[p], scale_exp i64
 * [adam]   chunk_rows u64, seed u64, block_rows u64, batch_blocks u64,
 *          epoch u64, step u64, rng[4] u64, lr_factor f64, bad_epochs u64,
 *          best_est f64, ref_est f64, initial_cost f64, initial_gnorm f64, grad_rows u64,
 *          cost_rows u64, n_nonfinite u64, x[p], x0[p], m1[p], v[p], best_x[p],
 *          scale_exp i64
 * scale_exp: the power of two 2^k the engine multiplied residuals and
 * Jacobian by (nlsq__engine_autoscale); the state's costs, gradients, D^2
 * and moments are in those units, and the resumed run starts at that scale.
 * [hybrid] initial_cost f64, lm0_cost f64, phase-1 stats (iterations u64,
 *          n_eval u64, n_jac u64, cost f64, seconds f64), phase-1 non-finite
 *          batches u64, x0[p], x_lm0[p], scale_exp i64 (the units of its costs)
 *
 * Loading checks, in order: the file opens and reads (else NLSQ_EIO); magic,
 * version, endian tag, size = 64 + T + N + 8, checksum, p, m and the bounds
 * hash of the problem, the tag, payload layout and value sanity (else
 * NLSQ_ECHECKPOINT).  nlsq_checkpoint_info reads the same way without a
 * problem.
 *
 * The LM state saved is exactly what nlsq__lm_run needs to continue (its
 * J^T J at x is recomputed by the first pass of the resumed run, which is
 * deterministic), so a resumed solve ends bitwise where an uninterrupted one
 * does with the same options and thread count.  The resumed run's n_jac
 * counts that extra pass.
 */
#define _POSIX_C_SOURCE 200809L
#include "nlsq_internal.h"
#include "nlsq_fnv1a.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CK_MAGIC "NLSQCKP"          /* 8 bytes with the NUL */
#define CK_VERSION 3u               /* written */
#define CK_VERSION_OLDEST 1u        /* read: 1 (no tag field), 2 (tag), 3 (+ scale_exp) */
#define CK_ENDIAN 0x01020304u
#define CK_HEADER 56u

/* ------------------------------------------------------------------ hashing */


static uint64_t bounds_hash(const nlsq_problem *pb)
{
    uint64_t h = NLSQ__FNV_OFFSET;
    for (int side = 0; side < 2; side++) {
        const double *b = side == 0 ? pb->lower : pb->upper;
        for (size_t j = 0; j < pb->n_params; j++) {
            double v = b ? b[j] + 0.0 : (side == 0 ? -INFINITY : INFINITY);
            h = nlsq__fnv1a(h, &v, sizeof v);
        }
    }
    return h;
}

/* ------------------------------------------------------------------ writer */

typedef struct wbuf {
    unsigned char *p;        /* NULL: only count */
    size_t n;
} wbuf;

static void put(wbuf *w, const void *src, size_t n)
{
    if (w->p) memcpy(w->p + w->n, src, n);
    w->n += n;
}
static void put_u32(wbuf *w, uint32_t v) { put(w, &v, sizeof v); }
static void put_u64(wbuf *w, uint64_t v) { put(w, &v, sizeof v); }
static void put_vec(wbuf *w, const double *v, size_t p) { put(w, v, p * sizeof(double)); }

/* ------------------------------------------------------------------ sections */

/* The payload sections ([lm], [adam], [hybrid] in the format above) as data:
 * each field's kind and its place in the section's struct, in file order.
 * One table drives both the writer and the reader, so that the two cannot
 * disagree.  Every scalar takes 8 bytes; a vector p doubles. */
typedef enum {
    CK_SIZE,    /* size_t member, as u64 */
    CK_U64,     /* uint64_t member */
    CK_F64,     /* double member */
    CK_FLAG,    /* int member, 0 or 1, as u64 (another value read is refused) */
    CK_SCALE,   /* int member, the engine scale exponent, as i64 (absent before version 3) */
    CK_VEC,     /* double * member: p doubles */
    CK_X        /* the vector beside the struct (the LM point): p doubles */
} ck_kind;

typedef struct ck_field {
    ck_kind kind;
    size_t off;
} ck_field;

#define CKF(T, kind, member) {kind, offsetof(T, member)}
#define LMF(kind, member) CKF(nlsq__lm_state, kind, member)
#define ADF(kind, member) CKF(nlsq__adam_state, kind, member)
#define HYF(kind, member) CKF(nlsq__hybrid_ctx, kind, member)
#define N_FIELDS(t) (sizeof(t) / sizeof(t)[0])

/* [lm] and [adam] start with the engine's chunk_rows (u64), written apart. */
static const ck_field lm_fields[] = {
    LMF(CK_SIZE, iteration), LMF(CK_F64, lambda), LMF(CK_F64, nu), LMF(CK_F64, delta),
    LMF(CK_SIZE, n_eval), LMF(CK_SIZE, n_jac), LMF(CK_FLAG, has_d2),
    LMF(CK_F64, initial_cost), {CK_X, 0}, LMF(CK_VEC, d2), LMF(CK_SCALE, scale_exp)};

static const ck_field adam_fields[] = {
    ADF(CK_U64, seed), ADF(CK_SIZE, block_rows), ADF(CK_SIZE, batch_blocks),
    ADF(CK_SIZE, epoch), ADF(CK_U64, step), ADF(CK_U64, rng[0]), ADF(CK_U64, rng[1]),
    ADF(CK_U64, rng[2]), ADF(CK_U64, rng[3]), ADF(CK_F64, lr_factor),
    ADF(CK_SIZE, bad_epochs), ADF(CK_F64, best_est), ADF(CK_F64, ref_est),
    ADF(CK_F64, initial_cost), ADF(CK_F64, initial_gnorm), ADF(CK_U64, grad_rows),
    ADF(CK_U64, cost_rows), ADF(CK_SIZE, n_nonfinite), ADF(CK_VEC, x), ADF(CK_VEC, x0),
    ADF(CK_VEC, m1), ADF(CK_VEC, v), ADF(CK_VEC, best_x), ADF(CK_SCALE, scale_exp)};

static const ck_field hybrid_fields[] = {
    HYF(CK_F64, initial_cost), HYF(CK_F64, lm0_cost), HYF(CK_SIZE, phase1.iterations),
    HYF(CK_SIZE, phase1.n_eval), HYF(CK_SIZE, phase1.n_jac), HYF(CK_F64, phase1.cost),
    HYF(CK_F64, phase1.seconds), HYF(CK_SIZE, phase1_nonfinite), HYF(CK_VEC, x0),
    HYF(CK_VEC, x_lm0), HYF(CK_SCALE, scale_exp)};

/* Section fields f[0..n) of the struct at base (x: the CK_X vector). */
static void put_fields(wbuf *w, const ck_field *f, size_t n, const void *base, size_t p,
                       const double *x)
{
    for (size_t k = 0; k < n; k++) {
        const unsigned char *at = (const unsigned char *)base + f[k].off;
        size_t z;
        int i;
        const double *v;
        switch (f[k].kind) {
        case CK_SIZE: memcpy(&z, at, sizeof z); put_u64(w, z); break;
        case CK_U64:
        case CK_F64: put(w, at, 8); break;
        case CK_FLAG:
        case CK_SCALE: memcpy(&i, at, sizeof i); put_u64(w, (uint64_t)(int64_t)i); break;
        case CK_VEC: memcpy(&v, at, sizeof v); put_vec(w, v, p); break;
        case CK_X: if (x) put_vec(w, x, p); break;
        }
    }
}

typedef struct ck_src {
    int solver, phase;
    size_t chunk;
    const double *x;                 /* LM point */
    const nlsq__lm_state *lm;
    const nlsq__adam_state *adam;
    const nlsq__hybrid_ctx *hy;
    const void *tag;                 /* opt->checkpoint_tag, or NULL */
    size_t tag_size;
} ck_src;

static void serialize(wbuf *w, const nlsq_problem *pb, const ck_src *s)
{
    const size_t p = pb->n_params;
    size_t start = w->n;
    put(w, CK_MAGIC, 8);
    put_u32(w, CK_VERSION);
    put_u32(w, CK_ENDIAN);
    put_u32(w, (uint32_t)s->solver);
    put_u32(w, (uint32_t)s->phase);
    put_u64(w, p);
    put_u64(w, pb->n_rows);
    put_u64(w, bounds_hash(pb));
    size_t at_len = w->n;
    put_u64(w, 0);                   /* payload size, patched below */
    put_u64(w, s->tag ? s->tag_size : 0);
    if (s->tag) put(w, s->tag, s->tag_size);
    size_t at_payload = w->n;
    if (s->hy) put_fields(w, hybrid_fields, N_FIELDS(hybrid_fields), s->hy, p, NULL);
    if (s->lm || s->adam) put_u64(w, s->chunk);
    if (s->lm) put_fields(w, lm_fields, N_FIELDS(lm_fields), s->lm, p, s->x);
    if (s->adam) put_fields(w, adam_fields, N_FIELDS(adam_fields), s->adam, p, NULL);
    if (w->p) {
        uint64_t n = w->n - at_payload;
        memcpy(w->p + at_len, &n, sizeof n);
        uint64_t h = nlsq__fnv1a(NLSQ__FNV_OFFSET, w->p + start, w->n - start);
        put_u64(w, h);
    } else {
        put_u64(w, 0);
    }
}

static int write_all(int fd, const unsigned char *buf, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, buf, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Atomic replace of path with buf[0..n): a temporary "<path>.tmp.XXXXXX"
 * (mkstemp: unique, so two processes never write to each other's; mode
 * 0600), written, fsync'ed, renamed over path, then the folder fsync'ed.
 * A path that exists and is not a regular file (a FIFO, a device, a folder)
 * is never replaced.  On failure the temporary is removed and *why names
 * the reason (an errno value, or 0: not a regular file). */
static int write_atomic(const nlsq_allocator *al, const char *path, const unsigned char *buf,
                        size_t n, int *why)
{
    struct stat sb;
    *why = 0;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) return NLSQ_EIO;
    size_t len = strlen(path);
    char *tmp = nlsq__malloc(al, len + 12);
    char *dir = nlsq__malloc(al, len + 2);
    if (!tmp || !dir) {
        nlsq__free(al, tmp);
        nlsq__free(al, dir);
        *why = ENOMEM;
        return NLSQ_ENOMEM;
    }
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp.XXXXXX", 12);
    const char *slash = strrchr(path, '/');
    if (!slash) memcpy(dir, ".", 2);
    else if (slash == path) memcpy(dir, "/", 2);
    else { memcpy(dir, path, (size_t)(slash - path)); dir[slash - path] = '\0'; }

    int rc = NLSQ_EIO;
    int fd = mkstemp(tmp);
    if (fd < 0) { *why = errno; goto out; }
    if (write_all(fd, buf, n) != 0 || fsync(fd) != 0) {
        *why = errno;
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) { *why = errno; unlink(tmp); goto out; }
    fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) { *why = errno; goto out; }
    if (fsync(fd) != 0 && errno != EINVAL && errno != EBADF && errno != EROFS) {
        *why = errno;
        close(fd);
        goto out;
    }
    close(fd);
    rc = 0;
out:
    nlsq__free(al, tmp);
    nlsq__free(al, dir);
    return rc;
}

static int save(const nlsq__engine *e, const nlsq_options *opt, const ck_src *s, nlsq_result *res)
{
    /* Several processes: one writes, all resume from the same file. */
    if (opt->dist.reduce && !opt->dist.is_root) return 0;
    ck_src st = *s;
    st.tag = opt->checkpoint_tag_size ? opt->checkpoint_tag : NULL;
    st.tag_size = opt->checkpoint_tag_size;
    s = &st;
    wbuf w = {NULL, 0};
    serialize(&w, e->pb, s);
    size_t n = w.n;
    w.p = nlsq__malloc(e->al, n);
    int why = ENOMEM;
    int rc = w.p ? 0 : NLSQ_ENOMEM;
    if (w.p) {
        w.n = 0;
        serialize(&w, e->pb, s);
        rc = write_atomic(e->al, opt->checkpoint_path, w.p, w.n, &why);
        nlsq__free(e->al, w.p);
    }
    if (rc == 0) nlsq__log(opt, 1, "checkpoint written to %s (%zu bytes)", opt->checkpoint_path, n);
    else if (why == 0)
        nlsq__finish(res, rc, "checkpoint '%.80s' exists and is not a regular file; not replacing it",
                     opt->checkpoint_path);
    else nlsq__finish(res, rc, "cannot write checkpoint '%.80s': %s", opt->checkpoint_path,
                      strerror(why));
    return rc;
}

int nlsq__checkpoint_save_lm(const nlsq__engine *e, const nlsq_options *opt,
                             const double *x, const nlsq__lm_state *st, nlsq_result *res)
{
    const nlsq__hybrid_ctx *hy = st->hybrid;   /* phase 2 of nlsq_hybrid, or NULL */
    ck_src s = {hy ? NLSQ__SOLVER_HYBRID : NLSQ__SOLVER_LM, NLSQ_PHASE_LM, e->chunk_rows,
                x, st, NULL, hy, NULL, 0};
    return save(e, opt, &s, res);
}

int nlsq__checkpoint_save_adam(const nlsq__engine *e, const nlsq_options *opt,
                               int solver, const nlsq__adam_state *st, nlsq_result *res)
{
    ck_src s = {solver, NLSQ_PHASE_ADAM, e->chunk_rows, NULL, NULL, st, NULL, NULL, 0};
    return save(e, opt, &s, res);
}

/* ------------------------------------------------------------------ reader */

typedef struct rbuf {
    const unsigned char *p;
    size_t n, pos;
    int bad;
} rbuf;

static void get(rbuf *r, void *dst, size_t n)
{
    if (r->bad || r->n - r->pos < n) {
        r->bad = 1;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
}
static uint64_t get_u64(rbuf *r) { uint64_t v; get(r, &v, sizeof v); return v; }
static uint32_t get_u32(rbuf *r) { uint32_t v; get(r, &v, sizeof v); return v; }
/* The engine scale of a state: 0 before version 3; NULL or why not. */
static const char *get_scale(rbuf *r, uint32_t version, int *k)
{
    int64_t v = version >= 3 ? (int64_t)get_u64(r) : 0;
    *k = (int)v;
    return v < -NLSQ__SCALE_EXP_MAX || v > NLSQ__SCALE_EXP_MAX ? "engine scale out of range" : NULL;
}
static void get_vec(rbuf *r, double *v, size_t p) { get(r, v, p * sizeof(double)); }

static int all_finite(const double *v, size_t p)
{
    for (size_t j = 0; j < p; j++) if (!isfinite(v[j])) return 0;
    return 1;
}

static void ckpt_free(const nlsq_allocator *al, nlsq__ckpt *ck)
{
    nlsq__adam_state_free(al, &ck->adam);
    nlsq__free(al, ck->block);
    memset(ck, 0, sizeof *ck);
}

static int fail(nlsq_result *res, int code, const char *file, const char *why)
{
    return nlsq__finish(res, code, "checkpoint '%.80s': %s", file, why);
}

/* A checkpoint file read whole, its envelope checked. */
typedef struct ck_file {
    unsigned char *buf;
    size_t size;
    uint32_t version;
    size_t tag_at, tag_size;       /* the tag bytes (version >= 2); else 0, 0 */
} ck_file;

/* Read the whole file (NLSQ_EIO; a regular file only, opened without
 * blocking) and check its envelope: magic, sizes, version, byte order,
 * checksum (NLSQ_ECHECKPOINT).  On success the caller frees cf->buf. */
static int read_checkpoint(const nlsq_allocator *al, const char *file, ck_file *cf,
                           nlsq_result *res)
{
    memset(cf, 0, sizeof *cf);
    /* O_NONBLOCK: a FIFO or a device would block the open; only a regular
     * file is read (where O_NONBLOCK changes nothing) */
    int fd = open(file, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return fail(res, NLSQ_EIO, file, strerror(errno));
    struct stat sb;
    const char *why = NULL;
    int rc = NLSQ_ECHECKPOINT;
    unsigned char head[CK_HEADER + 8];
    if (fstat(fd, &sb) != 0) { rc = NLSQ_EIO; why = "cannot stat"; goto bad; }
    if (!S_ISREG(sb.st_mode)) { rc = NLSQ_EIO; why = "not a regular file"; goto bad; }
    if (sb.st_size < (off_t)(CK_HEADER + 8)) { why = "truncated (shorter than the header)"; goto bad; }
    size_t size = (size_t)sb.st_size;
    if (pread(fd, head, CK_HEADER + 8, 0) != (ssize_t)(CK_HEADER + 8)) {
        rc = NLSQ_EIO;
        why = "read error";
        goto bad;
    }
    if (memcmp(head, CK_MAGIC, 8) != 0) { why = "not an nlsq checkpoint (bad magic)"; goto bad; }
    uint32_t version, endian;
    uint64_t payload, tag_size = 0;
    memcpy(&version, head + 8, 4);
    memcpy(&endian, head + 12, 4);
    memcpy(&payload, head + 48, 8);
    if (endian != CK_ENDIAN) { why = "written on a machine of another byte order"; goto bad; }
    if (version < CK_VERSION_OLDEST || version > CK_VERSION) {
        why = "unsupported format version (this library reads versions 1 to 3)";
        goto bad;
    }
    if (version >= 2) memcpy(&tag_size, head + CK_HEADER, 8);
    size_t fixed = CK_HEADER + 8 + (version >= 2 ? 8 : 0);
    if (tag_size > NLSQ_CHECKPOINT_TAG_MAX || payload > size || payload + tag_size + fixed != size) {
        why = "size does not match the header (truncated?)";
        goto bad;
    }
    cf->buf = nlsq__malloc(al, size);
    if (!cf->buf) { rc = NLSQ_ENOMEM; why = "out of memory"; goto bad; }
    size_t off = 0;
    while (off < size) {
        ssize_t got = pread(fd, cf->buf + off, size - off, (off_t)off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        off += (size_t)got;
    }
    close(fd);
    fd = -1;
    uint64_t sum;
    memcpy(&sum, cf->buf + size - 8, 8);
    if (off != size) { rc = NLSQ_EIO; why = "read error"; }
    else if (nlsq__fnv1a(NLSQ__FNV_OFFSET, cf->buf, size - 8) != sum) why = "checksum mismatch (corrupted)";
    if (why) goto bad;
    cf->size = size;
    cf->version = version;
    cf->tag_at = version >= 2 ? CK_HEADER + 8 : 0;
    cf->tag_size = (size_t)tag_size;
    return 0;
bad:
    if (fd >= 0) close(fd);
    nlsq__free(al, cf->buf);
    cf->buf = NULL;
    return fail(res, rc, file, why);
}

int nlsq_checkpoint_tag(const char *checkpoint_file, void *buf, size_t buf_size,
                        size_t *tag_size, nlsq_result *res)
{
    nlsq_allocator al;
    memset(&al, 0, sizeof al);
    if (tag_size) *tag_size = 0;
    if (!checkpoint_file || (!buf && buf_size))
        return nlsq__finish(res, NLSQ_EINVAL, "nlsq_checkpoint_tag: NULL file or buffer");
    ck_file cf;
    int rc = read_checkpoint(&al, checkpoint_file, &cf, res);
    if (rc) return rc;
    size_t n = cf.tag_size < buf_size ? cf.tag_size : buf_size;
    if (n) memcpy(buf, cf.buf + cf.tag_at, n);
    if (tag_size) *tag_size = cf.tag_size;
    nlsq__free(&al, cf.buf);
    return nlsq__finish(res, 0, NULL);
}

/* The header fields after the envelope. */
typedef struct ck_header {
    uint32_t solver, phase;
    uint64_t p, m, bounds_hash;
} ck_header;

/* Read the header into h; r then stands at the payload.  NULL, or why the
 * header cannot be (an unknown solver or phase). */
static const char *get_header(rbuf *r, const ck_file *cf, ck_header *h)
{
    char magic[8];
    get(r, magic, 8);
    (void)get_u32(r);
    (void)get_u32(r);
    h->solver = get_u32(r);
    h->phase = get_u32(r);
    h->p = get_u64(r);
    h->m = get_u64(r);
    h->bounds_hash = get_u64(r);
    (void)get_u64(r);
    if (cf->tag_at) r->pos = cf->tag_at + cf->tag_size;   /* the payload follows the tag */
    int ok_kind = (h->solver == NLSQ__SOLVER_LM && h->phase == NLSQ_PHASE_LM) ||
                  (h->solver == NLSQ__SOLVER_ADAM && h->phase == NLSQ_PHASE_ADAM) ||
                  (h->solver == NLSQ__SOLVER_HYBRID &&
                   (h->phase == NLSQ_PHASE_ADAM || h->phase == NLSQ_PHASE_LM));
    return ok_kind ? NULL : "unknown solver or phase";
}

/* The header against pb and opt (its tag): NULL, or why the file does not
 * belong to this solve. */
static const char *check_header(const ck_header *h, const ck_file *cf, const nlsq_problem *pb,
                                const nlsq_options *opt)
{
    if (h->p != pb->n_params) return "written for a problem with another number of parameters";
    if (h->m != pb->n_rows) return "written for a problem with another number of rows";
    if (h->bounds_hash != bounds_hash(pb)) return "written for a problem with other bounds";
    if (cf->tag_size != opt->checkpoint_tag_size ||
        (cf->tag_size && memcmp(cf->buf + cf->tag_at, opt->checkpoint_tag, cf->tag_size) != 0))
        return !cf->tag_size ? "written without a checkpoint tag (this solve has one)"
               : !opt->checkpoint_tag_size ? "written with a checkpoint tag (this solve has none)"
               : "written for other data or settings (its checkpoint tag differs)";
    return NULL;
}

/* What get_fields found wrong (bits). */
enum { CK_BAD_SCALE = 1, CK_BAD_FLAG = 2 };

/* Section fields f[0..n) into the struct at base (its vectors allocated; x:
 * the CK_X vector): 0, or CK_BAD_* bits. */
static int get_fields(rbuf *r, uint32_t version, const ck_field *f, size_t n, void *base,
                      size_t p, double *x)
{
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned char *at = (unsigned char *)base + f[k].off;
        size_t z;
        uint64_t u;
        int i;
        double *v;
        switch (f[k].kind) {
        case CK_SIZE: z = (size_t)get_u64(r); memcpy(at, &z, sizeof z); break;
        case CK_U64:
        case CK_F64: get(r, at, 8); break;
        case CK_FLAG:
            u = get_u64(r);
            i = (int)u;
            memcpy(at, &i, sizeof i);
            if (u > 1) bad |= CK_BAD_FLAG;
            break;
        case CK_SCALE:
            if (get_scale(r, version, &i)) bad |= CK_BAD_SCALE;
            memcpy(at, &i, sizeof i);
            break;
        case CK_VEC: memcpy(&v, at, sizeof v); get_vec(r, v, p); break;
        case CK_X: if (x) get_vec(r, x, p); break;
        }
    }
    return bad;
}

/* [hybrid] into h, its vectors into hx0 and hxl (p each).  NULL or why not. */
static const char *get_hybrid(rbuf *r, uint32_t version, size_t p, nlsq__hybrid_ctx *h,
                              double *hx0, double *hxl)
{
    h->phase1.phase = NLSQ_PHASE_ADAM;
    h->x0 = hx0;
    h->x_lm0 = hxl;
    if (get_fields(r, version, hybrid_fields, N_FIELDS(hybrid_fields), h, p, NULL))
        return "invalid engine scale in the hybrid section";
    if (!r->bad && (!all_finite(hx0, p) || !all_finite(hxl, p) ||
                    !isfinite(h->initial_cost) || !isfinite(h->lm0_cost)))
        return "invalid values in the hybrid section";
    return NULL;
}

/* [lm] into ck (x, lm; the vectors already allocated).  NULL or why not. */
static const char *get_lm(rbuf *r, uint32_t version, size_t p, nlsq__ckpt *ck)
{
    nlsq__lm_state *lm = &ck->lm;
    ck->chunk_rows = get_u64(r);
    int bad = get_fields(r, version, lm_fields, N_FIELDS(lm_fields), lm, p, ck->x);
    if (bad & CK_BAD_SCALE) return "invalid engine scale in the LM state";
    if (!r->bad && ((bad & CK_BAD_FLAG) || !(lm->lambda > 0) || !isfinite(lm->lambda) ||
                    !(lm->nu > 0) || !isfinite(lm->nu) || isnan(lm->delta) ||
                    !all_finite(ck->x, p) || !all_finite(lm->d2, p)))
        return "invalid values in the LM state";
    return NULL;
}

/* [adam] into ck (the state already allocated).  NULL or why not. */
static const char *get_adam(rbuf *r, uint32_t version, size_t p, nlsq__ckpt *ck)
{
    nlsq__adam_state *a = &ck->adam;
    ck->chunk_rows = get_u64(r);
    if (get_fields(r, version, adam_fields, N_FIELDS(adam_fields), a, p, NULL))
        return "invalid engine scale in the Adam state";
    a->started = 1;
    if (!r->bad && (!(a->lr_factor > 0) || !isfinite(a->initial_cost) || isnan(a->best_est) ||
                    isnan(a->ref_est) || !all_finite(a->x, p) || !all_finite(a->x0, p) ||
                    !all_finite(a->best_x, p) || (a->rng[0] | a->rng[1] | a->rng[2] | a->rng[3]) == 0 ||
                    a->block_rows == 0 || a->batch_blocks == 0))
        return "invalid values in the Adam state";
    return NULL;
}

/* The payload of a (solver, phase) checkpoint into ck, allocating its
 * vectors.  NULL, or why not with *rc set (NLSQ_ENOMEM, else unchanged). */
static const char *get_payload(rbuf *r, uint32_t version, const nlsq_allocator *al, size_t p,
                               nlsq__ckpt *ck, int *rc)
{
    const char *why;
    if (ck->phase == NLSQ_PHASE_LM) {
        /* one allocation for x, d2, x0, x_lm0 */
        ck->block = nlsq__calloc(al, 4 * p, sizeof(double));
        if (!ck->block) { *rc = NLSQ_ENOMEM; return "out of memory"; }
        ck->x = ck->block;
        ck->lm.d2 = ck->x + p;
        why = ck->solver == NLSQ__SOLVER_HYBRID
              ? get_hybrid(r, version, p, &ck->hy, ck->lm.d2 + p, ck->lm.d2 + 2 * p) : NULL;
        if (!why) why = get_lm(r, version, p, ck);
    } else {
        if (nlsq__adam_state_init(al, p, &ck->adam) != 0) { *rc = NLSQ_ENOMEM; return "out of memory"; }
        why = get_adam(r, version, p, ck);
    }
    if (!why && (r->bad || r->pos != r->n)) why = "payload layout does not match its header";
    return why;
}

/* Read the file and check it against pb and opt (its tag); fill ck. */
static int load(const nlsq_problem *pb, const nlsq_options *opt, const char *file,
                nlsq__ckpt *ck, nlsq_result *res)
{
    const nlsq_allocator *al = &opt->allocator;
    memset(ck, 0, sizeof *ck);
    ck_file cf;
    int rc = read_checkpoint(al, file, &cf, res);
    if (rc) return rc;
    rbuf r = {cf.buf, cf.size - 8, 0, 0};
    ck_header h;
    rc = NLSQ_ECHECKPOINT;
    const char *why = get_header(&r, &cf, &h);
    if (!why) why = check_header(&h, &cf, pb, opt);
    if (!why) {
        ck->solver = (int)h.solver;
        ck->phase = (int)h.phase;
        ck->p = pb->n_params;
        why = get_payload(&r, cf.version, al, pb->n_params, ck, &rc);
    }
    nlsq__free(al, cf.buf);
    if (why) {
        ckpt_free(al, ck);
        return fail(res, rc, file, why);
    }
    return 0;
}

int nlsq_checkpoint_info(const char *checkpoint_file, nlsq_checkpoint_summary *info,
                         nlsq_result *res)
{
    nlsq_allocator al;
    memset(&al, 0, sizeof al);
    if (info) memset(info, 0, sizeof *info);
    if (!checkpoint_file || !info)
        return nlsq__finish(res, NLSQ_EINVAL, "nlsq_checkpoint_info: NULL file or info");
    ck_file cf;
    int rc = read_checkpoint(&al, checkpoint_file, &cf, res);
    if (rc) return rc;
    rbuf r = {cf.buf, cf.size - 8, 0, 0};
    ck_header h;
    nlsq__ckpt ck;
    memset(&ck, 0, sizeof ck);
    rc = NLSQ_ECHECKPOINT;
    const char *why = get_header(&r, &cf, &h);
    /* p vectors of doubles must fit in the file before they are allocated */
    if (!why && (h.p == 0 || h.p > cf.size / sizeof(double)))
        why = "payload layout does not match its header";
    if (!why) {
        ck.solver = (int)h.solver;
        ck.phase = (int)h.phase;
        ck.p = (size_t)h.p;
        why = get_payload(&r, cf.version, &al, ck.p, &ck, &rc);
    }
    if (!why) {
        *info = (nlsq_checkpoint_summary){ck.solver, ck.phase, cf.version, ck.p, (size_t)h.m,
                                          ck.phase == NLSQ_PHASE_LM ? ck.lm.iteration
                                                                    : ck.adam.epoch,
                                          cf.tag_size,
                                          ck.phase == NLSQ_PHASE_LM ? ck.lm.scale_exp
                                                                    : ck.adam.scale_exp};
    }
    ckpt_free(&al, &ck);
    nlsq__free(&al, cf.buf);
    if (why) return fail(res, rc, checkpoint_file, why);
    return nlsq__finish(res, 0, NULL);
}

/* ------------------------------------------------------------------ resume */

static int resume_lm(const nlsq_problem *pb, const nlsq_options *opt, double *x,
                     nlsq_result *res, nlsq__ckpt *ck, double t0)
{
    nlsq__engine e;
    int rc = nlsq__engine_init(&e, pb, opt);
    if (rc) return nlsq__finish(res, rc, "cannot allocate chunk buffers");
    if (e.chunk_rows != ck->chunk_rows)
        nlsq__log(opt, 0, "resume: chunk size %zu differs from the checkpoint's %zu; the result "
                  "may differ in the last bits from an uninterrupted run", e.chunk_rows,
                  ck->chunk_rows);
    memcpy(x, ck->x, pb->n_params * sizeof(double));
    int status = nlsq__lm_run(&e, opt, x, res, &ck->lm, t0);
    nlsq__engine_report(&e, res);
    nlsq__engine_free(&e);
    nlsq__single_phase(res, NLSQ_PHASE_LM, t0);
    return status;
}

int nlsq_resume(const nlsq_problem *pb, const nlsq_options *opt_in,
                const char *checkpoint_file, double *x, nlsq_result *res)
{
    double t0 = nlsq__now();
    nlsq_options defaults;
    const nlsq_options *opt;
    int rc0 = nlsq__begin(pb, opt_in, &defaults, &opt, x && checkpoint_file,
                          "x or checkpoint_file", NULL, res);
    if (rc0) return rc0;

    const nlsq_allocator *al = &opt->allocator;
    nlsq__ckpt ck;
    int rc = load(pb, opt, checkpoint_file, &ck, res);
    if (rc) return rc;
    nlsq__log(opt, 0, "resuming %s from '%s' (phase %s)",
              ck.solver == NLSQ__SOLVER_LM ? "LM" : ck.solver == NLSQ__SOLVER_ADAM ? "Adam" : "hybrid",
              checkpoint_file, ck.phase == NLSQ_PHASE_LM ? "LM" : "Adam");
    int status;
    if (ck.solver == NLSQ__SOLVER_LM) status = resume_lm(pb, opt, x, res, &ck, t0);
    else if (ck.solver == NLSQ__SOLVER_ADAM) status = nlsq__adam_solve(pb, opt, x, res, &ck.adam);
    else status = nlsq__hybrid_solve(pb, opt, x, res, &ck);
    ckpt_free(al, &ck);
    return status;
}
