/*
 * nlsq_mpi.c - nlsq_options.dist over an MPI communicator (nlsq_mpi.h).
 *
 * Reduce number k on every rank, for each piece of at most SEG doubles:
 *   1. copy the piece into the context's staging buffer and MPI_Igather it to
 *      rank 0 (the root's receive space, size * SEG doubles, and the staging
 *      buffer are allocated once at attach: nothing here can fail on one rank
 *      only);
 *   2. rank 0 adds the pieces in rank order 0, 1, ..., size-1;
 *   3. MPI_Ibcast of the sum from rank 0 into the staging buffer, copied back.
 * MPI never sees the caller's buffer: a request abandoned by a broken
 * context may still write into its buffers later, so those belong to the
 * context and are not freed when it is broken.
 * Each request is completed by polling MPI_Test (spin, then yield, then short
 * sleeps: kind to oversubscribed nodes), and while polling the rank also
 * checks for "leave" messages.
 *
 * Leaving.  A rank that stops taking part in the reduces of a context - it
 * detaches, or it becomes broken (an MPI call failed, the timeout passed, a
 * fault was injected, or another rank left) - sends every other rank a
 * point-to-point message {context id, number of reduces it completed}.  A
 * rank waiting in reduce k that learns that rank r left after completing
 * c <= k reduces knows that reduce k can never complete: it becomes broken
 * too (and sends its own leave messages).  A rank that left after c > k
 * reduces took part in reduce k, so the wait goes on (its data is on the
 * way).
 *
 * The leave messages do not use the context's own communicator: a message
 * nobody received on a communicator that is then freed is delivered by Open
 * MPI's matching layer to the next communicator that reuses its id, with a
 * stale sequence number that blocks that communicator for good.  So each
 * parent communicator gets one "leave channel" (a duplicate made at its first
 * attach, cached on it as an attribute, never freed), each attach on it gets
 * its own tag (attaches are collective, so every rank counts the same), and
 * every message carries the context id chosen by rank 0 at attach; a context
 * skips messages of other contexts.  For the same reason the context's
 * communicator is not freed when the context is broken (abandoned collectives
 * may still deliver fragments): it is left to MPI_Finalize.
 */
#define _GNU_SOURCE   /* nanosleep, sched_yield */
#include "nlsq_mpi.h"
#ifdef NLSQ_MPI_TESTING
#include "nlsq_mpi_testing.h"
#endif

#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SEG        ((size_t)1 << 16)     /* doubles per gathered piece */
#define TAG_SPAN   32000                  /* leave tags 1 .. TAG_SPAN (MPI_TAG_UB >= 32767) */
#define NOT_LEFT   UINT64_MAX

typedef struct leave_channel {
    MPI_Comm comm;            /* duplicate of the parent, MPI_ERRORS_RETURN */
    unsigned long attaches;   /* attaches on the parent so far */
} leave_channel;

/* The attribute key under which a parent communicator keeps its leave
 * channel.  This is the one static of the library, and it is not state:
 * a keyval is MPI's process-wide handle for caching per-communicator data
 * (MPI "Caching": a library creates one key and stores its per-communicator
 * data as attributes under it), and MPI offers no way to find a key again
 * but to keep its handle.  The channels themselves live on their
 * communicators.  The key is created by the first attach of the process
 * (MPI is initialised by then and, in the world model, cannot be
 * initialised again after MPI_Finalize), then only read; threads that
 * attach at the same time on different communicators (MPI_THREAD_MULTIPLE)
 * agree on one key through the compare-and-swap in leave_key, the loser
 * freeing its own. */
static _Atomic int leave_keyval = MPI_KEYVAL_INVALID;

struct nlsq_mpi_ctx {
    MPI_Comm comm;               /* our duplicate, MPI_ERRORS_RETURN */
    int rank, size;
    size_t n_rows, row_begin, row_end;
    uint64_t id;                 /* context id (rank 0's choice) */
    double *gbuf;                /* rank 0: size * SEG doubles */
    double *stage;               /* SEG doubles: what MPI sends from and receives into */
    uint64_t n_done;             /* reduces completed */
    uint64_t *left;              /* size: reduces completed by a rank that left, or NOT_LEFT */
    uint64_t leave_in[2];        /* receive buffer of the leave messages */
    uint64_t leave_out[2];       /* our leave message */
    MPI_Comm lcomm;              /* the parent's leave channel (not ours to free) */
    int ltag;                    /* this context's tag on it */
    MPI_Request leave_req;       /* the posted receive, or MPI_REQUEST_NULL */
    MPI_Request *send_req;       /* size: our leave messages */
    int leave_sent;
    int broken;                  /* 0 or NLSQ_EDISTRIBUTED */
    double timeout;
    int abort_on_error;
#ifdef NLSQ_MPI_TESTING
    int fault_kind;              /* nlsq_mpi_inject_fault (test builds) */
    uint64_t fault_at;
    double fault_arg;
#endif
    nlsq_mpi_stats stats;
    char msg[256];
};

/* ------------------------------------------------------------------ utils */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_s(double s)
{
    if (s <= 0) return;
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0) {}
}

/* Poll count -> pause: spin (MPI_Test drives progress), then yield, then
 * sleep 50 us (a rank waiting for a long pass elsewhere costs ~nothing). */
static void backoff(unsigned long it)
{
    if (it < 64) return;
    if (it < 1024) { sched_yield(); return; }
    sleep_s(50e-6);
}

static void mpi_errstr(int rc, char *out, size_t size)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", rc);
    size_t n = strlen(s);
    if (n >= size) n = size - 1;
    memcpy(out, s, n);
    out[n] = 0;
}

static void send_leave(nlsq_mpi_ctx *c)
{
    if (c->leave_sent) return;
    c->leave_sent = 1;
    c->leave_out[0] = c->id;
    c->leave_out[1] = c->n_done;
    for (int r = 0; r < c->size; r++) {
        c->send_req[r] = MPI_REQUEST_NULL;
        if (r == c->rank) continue;
        if (MPI_Isend(c->leave_out, 2, MPI_UINT64_T, r, c->ltag, c->lcomm, &c->send_req[r]) !=
            MPI_SUCCESS)
            c->send_req[r] = MPI_REQUEST_NULL;   /* best effort */
    }
}

static int set_broken(nlsq_mpi_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int set_broken(nlsq_mpi_ctx *c, const char *fmt, ...)
{
    if (c->broken) return c->broken;
    c->broken = NLSQ_EDISTRIBUTED;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    send_leave(c);
    if (c->abort_on_error) MPI_Abort(c->comm, -NLSQ_EDISTRIBUTED);
    return c->broken;
}

/* Receive the leave messages that arrived; become broken when a rank left
 * before completing the reduce in progress (number c->n_done). */
static int poll_leave(nlsq_mpi_ctx *c)
{
    while (c->leave_req != MPI_REQUEST_NULL) {
        int flag = 0;
        MPI_Status st;
        int rc = MPI_Test(&c->leave_req, &flag, &st);
        if (rc != MPI_SUCCESS) {
            char e[160];
            mpi_errstr(rc, e, sizeof e);
            c->leave_req = MPI_REQUEST_NULL;
            return set_broken(c, "rank %d: testing for leave messages failed: %s", c->rank, e);
        }
        if (!flag) break;
        if (c->leave_in[0] == c->id && st.MPI_SOURCE >= 0 && st.MPI_SOURCE < c->size)
            c->left[st.MPI_SOURCE] = c->leave_in[1];
        if (MPI_Irecv(c->leave_in, 2, MPI_UINT64_T, MPI_ANY_SOURCE, c->ltag, c->lcomm,
                      &c->leave_req) != MPI_SUCCESS) {
            c->leave_req = MPI_REQUEST_NULL;
            return set_broken(c, "rank %d: posting the leave receive failed", c->rank);
        }
    }
    for (int r = 0; r < c->size; r++)
        if (c->left[r] != NOT_LEFT && c->left[r] <= c->n_done)
            return set_broken(c, "rank %d left after %llu reduces; rank %d gave up on reduce %llu",
                              r, (unsigned long long)c->left[r], c->rank,
                              (unsigned long long)c->n_done);
    return 0;
}

static int wait_req(nlsq_mpi_ctx *c, MPI_Request *rq, const char *what)
{
    double t0 = c->timeout > 0 ? now_s() : 0.0;
    for (unsigned long it = 0;; it++) {
        int flag = 0;
        int rc = MPI_Test(rq, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            char e[160];
            mpi_errstr(rc, e, sizeof e);
            return set_broken(c, "rank %d: %s of reduce %llu failed: %s", c->rank, what,
                              (unsigned long long)c->n_done, e);
        }
        if (flag) return 0;
        if (poll_leave(c)) return c->broken;
        if (c->timeout > 0 && (it & 31) == 0 && now_s() - t0 > c->timeout)
            return set_broken(c, "rank %d: %s of reduce %llu timed out after %g s", c->rank, what,
                              (unsigned long long)c->n_done, c->timeout);
        backoff(it);
    }
}

/* ----------------------------------------------------------------- reduce */

int nlsq_mpi_reduce(void *vctx, double *buf, size_t n)
{
    nlsq_mpi_ctx *c = vctx;
    if (!c || (!buf && n)) return NLSQ_EINVAL;
    if (c->broken) return c->broken;
    double t0 = now_s();
#ifdef NLSQ_MPI_TESTING
    if (c->fault_kind && c->n_done == c->fault_at) {
        int kind = c->fault_kind;
        c->fault_kind = 0;
        if (kind == 1) return set_broken(c, "rank %d: injected MPI failure in reduce %llu", c->rank,
                                         (unsigned long long)c->n_done);
        if (kind == 2) sleep_s(c->fault_arg);
    }
#endif
    if (c->size > 1) {
        if (poll_leave(c)) return c->broken;
        for (size_t off = 0; off < n; off += SEG) {
            size_t len = n - off < SEG ? n - off : SEG;
            memcpy(c->stage, buf + off, len * sizeof(double));
            MPI_Request rq;
            int rc = MPI_Igather(c->stage, (int)len, MPI_DOUBLE, c->gbuf, (int)len, MPI_DOUBLE, 0,
                                 c->comm, &rq);
            if (rc != MPI_SUCCESS) {
                char e[160];
                mpi_errstr(rc, e, sizeof e);
                return set_broken(c, "rank %d: MPI_Igather failed: %s", c->rank, e);
            }
            if (wait_req(c, &rq, "gather")) return c->broken;
            if (c->rank == 0) {
                /* g_0 + g_1 + ... + g_{size-1}, in this order, element-wise */
                double *dst = c->stage;
                memcpy(dst, c->gbuf, len * sizeof(double));
                for (int r = 1; r < c->size; r++) {
                    const double *g = c->gbuf + (size_t)r * len;
                    for (size_t i = 0; i < len; i++) dst[i] += g[i];
                }
            }
            rc = MPI_Ibcast(c->stage, (int)len, MPI_DOUBLE, 0, c->comm, &rq);
            if (rc != MPI_SUCCESS) {
                char e[160];
                mpi_errstr(rc, e, sizeof e);
                return set_broken(c, "rank %d: MPI_Ibcast failed: %s", c->rank, e);
            }
            if (wait_req(c, &rq, "broadcast")) return c->broken;
            memcpy(buf + off, c->stage, len * sizeof(double));
        }
    }
    c->n_done++;
    c->stats.n_reduce++;
    c->stats.n_doubles += n;
    c->stats.wait_s += now_s() - t0;
    return 0;
}

/* ----------------------------------------------------------------- attach */

void nlsq_mpi_partition(size_t n_rows, size_t block_rows, int size, int rank,
                        size_t *row_begin, size_t *row_end)
{
    size_t b = 0, e = 0;
    if (size > 0 && rank >= 0 && rank < size) {
        if (block_rows == 0) block_rows = 1;
        size_t nb = n_rows / block_rows + (n_rows % block_rows != 0);
        size_t b0 = (size_t)(((unsigned __int128)nb * (unsigned)rank) / (unsigned)size);
        size_t b1 = (size_t)(((unsigned __int128)nb * (unsigned)(rank + 1)) / (unsigned)size);
        unsigned __int128 rb = (unsigned __int128)b0 * block_rows;
        unsigned __int128 re = (unsigned __int128)b1 * block_rows;
        b = rb < n_rows ? (size_t)rb : n_rows;
        e = re < n_rows ? (size_t)re : n_rows;
    }
    if (row_begin) *row_begin = b;
    if (row_end) *row_end = e;
}

static void ctx_free(nlsq_mpi_ctx *c)
{
    if (!c) return;
    free(c->gbuf);
    free(c->stage);
    free(c->left);
    free(c->send_req);
    free(c);
}

static int cmp_range(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

/* Fields each rank contributes at attach. */
enum { A_NROWS, A_BEGIN, A_END, A_STATUS, A_ID, A_N };

/* The attribute's delete callback: MPI calls it when the parent goes
 * (MPI_Comm_free, or MPI_Finalize for MPI_COMM_WORLD and MPI_COMM_SELF), so
 * a channel lives exactly as long as its parent communicator. */
static int leave_channel_delete(MPI_Comm parent, int key, void *val, void *extra)
{
    (void)parent;
    (void)key;
    (void)extra;
    leave_channel *ch = val;
    if (ch->comm != MPI_COMM_NULL) MPI_Comm_free(&ch->comm);
    free(ch);
    return MPI_SUCCESS;
}

/* The leave channels' key (see leave_keyval): 0 or NLSQ_EDISTRIBUTED. */
static int leave_key(int *key)
{
    int k = atomic_load(&leave_keyval);
    if (k == MPI_KEYVAL_INVALID) {
        int mine = MPI_KEYVAL_INVALID;
        if (MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, leave_channel_delete, &mine, NULL) !=
            MPI_SUCCESS)
            return NLSQ_EDISTRIBUTED;
        if (atomic_compare_exchange_strong(&leave_keyval, &k, mine)) k = mine;
        else MPI_Comm_free_keyval(&mine);   /* another thread's key won: k holds it */
    }
    *key = k;
    return 0;
}

/* The parent's leave channel: made at its first attach (on every rank,
 * since attach is collective), then reused.  Two attaches on one parent
 * must not run at the same time (as for any two collectives on it). */
static int leave_channel_of(MPI_Comm comm, leave_channel **out)
{
    int key;
    if (leave_key(&key) != 0) return NLSQ_EDISTRIBUTED;
    leave_channel *ch = NULL;
    int have = 0;
    if (MPI_Comm_get_attr(comm, key, &ch, &have) != MPI_SUCCESS) return NLSQ_EDISTRIBUTED;
    if (!have) {
        MPI_Comm lc;
        if (MPI_Comm_dup(comm, &lc) != MPI_SUCCESS) return NLSQ_EDISTRIBUTED;
        MPI_Comm_set_errhandler(lc, MPI_ERRORS_RETURN);
        ch = malloc(sizeof *ch);   /* lives as long as the parent (leave_channel_delete) */
        if (!ch) {
            MPI_Comm_free(&lc);
            return NLSQ_ENOMEM;   /* the others go on: MPI-level failure, see header */
        }
        ch->comm = lc;
        ch->attaches = 0;
        if (MPI_Comm_set_attr(comm, key, ch) != MPI_SUCCESS) {
            MPI_Comm_free(&ch->comm);
            free(ch);
            return NLSQ_EDISTRIBUTED;
        }
    }
    *out = ch;
    return 0;
}

/* A context on dup with its buffers (rank 0 gathers size * SEG doubles), or
 * NULL when an allocation failed. */
static nlsq_mpi_ctx *ctx_new(MPI_Comm dup, int rank, int size, size_t n_rows, size_t row_begin,
                             size_t row_end, MPI_Comm lcomm, int ltag)
{
    nlsq_mpi_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    *c = (nlsq_mpi_ctx){.comm = dup, .rank = rank, .size = size, .n_rows = n_rows,
                        .row_begin = row_begin, .row_end = row_end,
                        .leave_req = MPI_REQUEST_NULL, .lcomm = lcomm, .ltag = ltag};
    c->left = malloc(sizeof(uint64_t) * (size_t)size);
    c->send_req = malloc(sizeof(MPI_Request) * (size_t)size);
    if (rank == 0 && size > 1) c->gbuf = malloc(sizeof(double) * SEG * (size_t)size);
    if (size > 1) c->stage = malloc(sizeof(double) * SEG);
    if (!c->left || !c->send_req || (rank == 0 && size > 1 && !c->gbuf) ||
        (size > 1 && !c->stage)) {
        ctx_free(c);
        return NULL;
    }
    return c;
}

/* The verdict of an attach, the same on every rank: 1. local checks (local:
 * NLSQ_ENOMEM when the context could not be made; this rank's range); 2.
 * agree on them (MPI_MAX of an int: exact, order-independent); 3. exchange
 * the rows; 4. every rank checks the same table (same n_rows; ranges
 * disjoint, covering [0, n_rows)).  *id: rank 0's context id. */
static int agree_on_rows(MPI_Comm dup, int size, int local, size_t n_rows, size_t row_begin,
                         size_t row_end, uint64_t *id)
{
    uint64_t *all = malloc(sizeof(uint64_t) * A_N * (size_t)size);
    uint64_t *rg = malloc(sizeof(uint64_t) * 2 * (size_t)size);
    if (!all || !rg) local = NLSQ_ENOMEM;
    else if (!local && !(row_begin <= row_end && row_end <= n_rows)) local = NLSQ_EINVAL;
    int agreed = -local;
    int rc = MPI_Allreduce(MPI_IN_PLACE, &agreed, 1, MPI_INT, MPI_MAX, dup);
    int verdict = rc != MPI_SUCCESS ? NLSQ_EDISTRIBUTED : -agreed;
    if (!verdict) {
        uint64_t mine[A_N];
        mine[A_NROWS] = n_rows;
        mine[A_BEGIN] = row_begin;
        mine[A_END] = row_end;
        mine[A_STATUS] = 0;
        mine[A_ID] = ((uint64_t)getpid() << 32) ^ (uint64_t)(now_s() * 1e6);
        if (MPI_Allgather(mine, A_N, MPI_UINT64_T, all, A_N, MPI_UINT64_T, dup) != MPI_SUCCESS)
            verdict = NLSQ_EDISTRIBUTED;
    }
    if (!verdict) {
        for (int r = 0; r < size; r++) {
            if (all[A_N * r + A_NROWS] != n_rows) verdict = NLSQ_EINVAL;
            rg[2 * r] = all[A_N * r + A_BEGIN];
            rg[2 * r + 1] = all[A_N * r + A_END];
        }
        qsort(rg, (size_t)size, 2 * sizeof(uint64_t), cmp_range);
        uint64_t at = 0;
        for (int r = 0; r < size && !verdict; r++) {
            if (rg[2 * r] == rg[2 * r + 1]) continue;   /* empty */
            if (rg[2 * r] != at) verdict = NLSQ_EINVAL;
            at = rg[2 * r + 1];
        }
        if (at != n_rows) verdict = NLSQ_EINVAL;
    }
    *id = verdict ? 0 : all[A_ID];   /* rank 0's */
    free(all);
    free(rg);
    return verdict;
}

int nlsq_mpi_attach_range(nlsq_options *opt, MPI_Comm comm, size_t n_rows, size_t row_begin,
                          size_t row_end, nlsq_mpi_ctx **out)
{
    if (out) *out = NULL;
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (!opt || !out || !inited || finalized || comm == MPI_COMM_NULL) return NLSQ_EINVAL;
    leave_channel *ch = NULL;
    int rc = leave_channel_of(comm, &ch);
    if (rc != 0) return rc;
    int ltag = 1 + (int)(ch->attaches++ % TAG_SPAN);

    MPI_Comm dup;
    if (MPI_Comm_dup(comm, &dup) != MPI_SUCCESS) return NLSQ_EDISTRIBUTED;
    MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
    int rank = 0, size = 1;
    MPI_Comm_rank(dup, &rank);
    MPI_Comm_size(dup, &size);
    nlsq_mpi_ctx *c = ctx_new(dup, rank, size, n_rows, row_begin, row_end, ch->comm, ltag);
    uint64_t id = 0;
    int verdict = agree_on_rows(dup, size, c ? 0 : NLSQ_ENOMEM, n_rows, row_begin, row_end, &id);
    if (verdict) {
        ctx_free(c);
        MPI_Comm_free(&dup);
        return verdict;
    }
    c->id = id;
    for (int r = 0; r < size; r++) {
        c->left[r] = NOT_LEFT;
        c->send_req[r] = MPI_REQUEST_NULL;
    }
    if (size > 1 &&
        MPI_Irecv(c->leave_in, 2, MPI_UINT64_T, MPI_ANY_SOURCE, ltag, c->lcomm, &c->leave_req) !=
            MPI_SUCCESS) {
        c->leave_req = MPI_REQUEST_NULL;
        set_broken(c, "rank %d: posting the leave receive failed", rank);
    }
    nlsq_mpi_options(c, opt);
    *out = c;
    return 0;
}

int nlsq_mpi_attach(nlsq_options *opt, MPI_Comm comm, size_t n_rows, size_t block_rows,
                    nlsq_mpi_ctx **out)
{
    if (out) *out = NULL;
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (!opt || !out || !inited || finalized || comm == MPI_COMM_NULL) return NLSQ_EINVAL;
    int rank = 0, size = 1;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &size) != MPI_SUCCESS)
        return NLSQ_EINVAL;
    size_t b, e;
    nlsq_mpi_partition(n_rows, block_rows, size, rank, &b, &e);
    return nlsq_mpi_attach_range(opt, comm, n_rows, b, e, out);
}

void nlsq_mpi_options(nlsq_mpi_ctx *c, nlsq_options *opt)
{
    if (!opt) return;
    memset(&opt->dist, 0, sizeof opt->dist);
    if (!c) return;
    opt->dist.reduce = nlsq_mpi_reduce;
    opt->dist.ctx = c;
    opt->dist.row_begin = c->row_begin;
    opt->dist.row_end = c->row_end;
    opt->dist.is_root = c->rank == 0;
}

/* Complete a request by polling for at most `limit` seconds; 1 if done. */
static int finish_within(MPI_Request *rq, double limit)
{
    double t0 = now_s();
    for (unsigned long it = 0; *rq != MPI_REQUEST_NULL; it++) {
        int flag = 0;
        if (MPI_Test(rq, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS) return 0;
        if (flag) return 1;
        if (now_s() - t0 > limit) return 0;
        backoff(it);
    }
    return 1;
}

void nlsq_mpi_detach(nlsq_mpi_ctx *c, nlsq_options *opt)
{
    if (!c) return;
    if (opt && opt->dist.ctx == c) memset(&opt->dist, 0, sizeof opt->dist);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) { ctx_free(c); return; }
    int safe = 1;   /* no request still refers to c's memory */
    if (c->size > 1) {
        send_leave(c);
        for (int r = 0; r < c->size; r++)
            if (!finish_within(&c->send_req[r], 2.0)) safe = 0;   /* eager: immediate */
        if (c->leave_req != MPI_REQUEST_NULL) {
            MPI_Cancel(&c->leave_req);
            if (!finish_within(&c->leave_req, 2.0)) safe = 0;
        }
    }
    /* Every collective on c->comm completed unless c is broken; a broken
     * context's communicator is left alone (see the top of this file). */
    if (!c->broken) {
        MPI_Comm_free(&c->comm);
    } else {
        c->gbuf = NULL;    /* abandoned requests may still write there: leak them */
        c->stage = NULL;
    }
    if (safe) ctx_free(c);
    /* else: leak c (a few bytes) rather than free memory MPI may still write */
}

/* -------------------------------------------------------------- accessors */

int nlsq_mpi_rank(const nlsq_mpi_ctx *c) { return c ? c->rank : 0; }
int nlsq_mpi_size(const nlsq_mpi_ctx *c) { return c ? c->size : 1; }
MPI_Comm nlsq_mpi_comm(const nlsq_mpi_ctx *c) { return c ? c->comm : MPI_COMM_NULL; }

void nlsq_mpi_rows(const nlsq_mpi_ctx *c, size_t *row_begin, size_t *row_end)
{
    if (row_begin) *row_begin = c ? c->row_begin : 0;
    if (row_end) *row_end = c ? c->row_end : 0;
}

void nlsq_mpi_set_timeout(nlsq_mpi_ctx *c, double seconds)
{
    if (c) c->timeout = isfinite(seconds) && seconds > 0 ? seconds : 0.0;
}

void nlsq_mpi_set_abort_on_error(nlsq_mpi_ctx *c, int on)
{
    if (c) c->abort_on_error = on != 0;
}

int nlsq_mpi_broken(const nlsq_mpi_ctx *c) { return c ? c->broken : NLSQ_EINVAL; }
const char *nlsq_mpi_message(const nlsq_mpi_ctx *c) { return c ? c->msg : ""; }

void nlsq_mpi_get_stats(const nlsq_mpi_ctx *c, nlsq_mpi_stats *st)
{
    if (!st) return;
    if (c) *st = c->stats;
    else memset(st, 0, sizeof *st);
}

#ifdef NLSQ_MPI_TESTING
/* Test builds only (nlsq_mpi_testing.h): the library proper has no fault
 * hook. */
void nlsq_mpi_inject_fault(nlsq_mpi_ctx *c, int kind, uint64_t at_reduce, double arg)
{
    if (!c) return;
    c->fault_kind = kind;
    c->fault_at = at_reduce;
    c->fault_arg = arg;
}
#endif
