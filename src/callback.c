/* callback.c - the calls into the user's problem (the "Callbacks" contract
 * of nlsq.h): prepare once per point, eval with each worker's scratch and
 * message buffer, and the first failure kept for the result.
 *
 *   prepare   nlsq__calls_prepare runs pb->prepare at a pass's point unless
 *             the last successful prepare of this solve was at the same x
 *             (compared bit for bit), so a point is prepared once however
 *             many passes (Adam's batches, LM's retried steps) it sees.
 *   eval      nlsq__calls_eval fills an nlsq_eval_env for worker w: the
 *             prepared state when x is the prepared point, the worker's
 *             scratch (scratch_bytes, rounded up to whole doubles), its
 *             message buffer emptied, the rows' observation count (nrows
 *             unless the callback stores another) where the caller wants it.
 *   failures  a failing call records (status, row, message) in its worker's
 *             record; after the pass nlsq__calls_settle keeps the one of the
 *             lowest row (prepare's, row 0, when it failed), so what is
 *             reported depends on the rows only, not on thread timing.
 *
 * Everything is allocated once per solve (nlsq__calls_init) from the
 * solver's allocator, zeroed.
 */
#include "nlsq_internal.h"

#include <stdio.h>
#include <string.h>

struct nlsq__call_rec {
    int    status;                       /* the callback's nonzero return, 0: none */
    size_t row;                          /* first row of the failing call */
    char   msg[NLSQ_CALLBACK_MSG_SIZE];
};

int nlsq__calls_init(nlsq__calls *c, const nlsq_problem *pb, const nlsq_allocator *al,
                     size_t n_workers)
{
    memset(c, 0, sizeof *c);
    c->pb = pb;
    c->al = al;
    c->n_workers = n_workers;
    size_t words = pb->scratch_bytes / sizeof(double) + (pb->scratch_bytes % sizeof(double) != 0);
    c->stride = words;
    c->recs = nlsq__calloc(al, n_workers, sizeof *c->recs);
    if (!c->recs) return NLSQ_ENOMEM;
    if (words) {
        size_t total;
        if (nlsq__mul_size(words, n_workers, &total) != 0) return NLSQ_ENOMEM;
        c->scratch = nlsq__calloc(al, total, sizeof(double));
        if (!c->scratch) return NLSQ_ENOMEM;
    }
    if (pb->prepare) {
        c->x_prepared = nlsq__calloc(al, pb->n_params ? pb->n_params : 1, sizeof(double));
        if (!c->x_prepared) return NLSQ_ENOMEM;
        if (pb->prepare_bytes) {
            size_t w = pb->prepare_bytes / sizeof(double) + (pb->prepare_bytes % sizeof(double) != 0);
            c->state = nlsq__calloc(al, w, sizeof(double));
            if (!c->state) return NLSQ_ENOMEM;
        }
    }
    return 0;
}

void nlsq__calls_free(nlsq__calls *c)
{
    if (!c || !c->al) return;
    nlsq__free(c->al, c->recs);
    nlsq__free(c->al, c->scratch);
    nlsq__free(c->al, c->x_prepared);
    nlsq__free(c->al, c->state);
    c->recs = NULL;
    c->scratch = c->x_prepared = NULL;
    c->state = NULL;
}

static int engine_code(int cb) { return cb == NLSQ_ENOMEM ? NLSQ_ENOMEM : NLSQ_ECALLBACK; }

void nlsq__calls_begin(nlsq__calls *c)
{
    for (size_t w = 0; w < c->n_workers; w++) c->recs[w].status = 0;
}

int nlsq__calls_prepare(nlsq__calls *c, const double *x)
{
    const nlsq_problem *pb = c->pb;
    if (!pb->prepare) return 0;
    const size_t bytes = pb->n_params * sizeof(double);
    if (c->have_prepared && memcmp(c->x_prepared, x, bytes) == 0) return 0;
    c->have_prepared = 0;
    nlsq__call_rec *rec = &c->recs[0];
    rec->msg[0] = '\0';
    int cb = pb->prepare(pb->ctx, x, c->state, rec->msg, sizeof rec->msg);
    if (cb != 0) {
        rec->status = cb;
        rec->row = 0;
        rec->msg[sizeof rec->msg - 1] = '\0';
        return engine_code(cb);
    }
    memcpy(c->x_prepared, x, bytes);
    c->have_prepared = 1;
    return 0;
}

/* The env of worker's call (rec's message buffer emptied). */
static nlsq_eval_env call_env(nlsq__calls *c, size_t worker, int at_prepared, size_t *n_obs)
{
    nlsq__call_rec *rec = &c->recs[worker];
    const int prepared = at_prepared && c->have_prepared;
    rec->msg[0] = '\0';
    return (nlsq_eval_env){
        .at_prepared = prepared,
        .state = prepared ? c->state : NULL,
        .scratch = c->stride ? (void *)(c->scratch + worker * c->stride) : NULL,
        .scratch_bytes = c->pb->scratch_bytes,
        .worker = worker,
        .msg = rec->msg,
        .msg_size = sizeof rec->msg,
        .n_obs = n_obs};
}

/* A callback's return cb of the call starting at row0: 0, or recorded. */
static int call_done(nlsq__calls *c, size_t worker, int cb, size_t row0)
{
    if (cb == 0) return 0;
    nlsq__call_rec *rec = &c->recs[worker];
    rec->status = cb;
    rec->row = row0;
    rec->msg[sizeof rec->msg - 1] = '\0';
    return engine_code(cb);
}

int nlsq__calls_eval(nlsq__calls *c, size_t worker, int at_prepared, const double *x,
                     size_t row0, size_t n, double *r, double *J, size_t *n_obs)
{
    const nlsq_problem *pb = c->pb;
    if (n_obs) *n_obs = n;   /* one observation a row unless the callback says otherwise */
    const nlsq_eval_env env = call_env(c, worker, at_prepared, n_obs);
    return call_done(c, worker, pb->eval(pb->ctx, x, row0, n, r, J, &env), row0);
}

int nlsq__calls_normal(nlsq__calls *c, size_t worker, const double *x, size_t u0, size_t nu,
                       nlsq_normal_sums *out)
{
    const nlsq_problem *pb = c->pb;
    const nlsq_eval_env env = call_env(c, worker, 1, NULL);
    return call_done(c, worker, pb->normal(pb->ctx, x, u0, nu, out, &env), u0);
}

void nlsq__calls_settle(nlsq__calls *c)
{
    const nlsq__call_rec *best = NULL;
    for (size_t w = 0; w < c->n_workers; w++) {
        const nlsq__call_rec *q = &c->recs[w];
        if (q->status != 0 && (!best || q->row < best->row)) best = q;
    }
    if (!best) return;
    c->status = best->status;
    c->row = best->row;
    snprintf(c->msg, sizeof c->msg, "%s", best->msg);
}

void nlsq__calls_report(const nlsq__calls *c, nlsq_result *res)
{
    if (!res || !c || c->status == 0) return;
    res->callback_status = c->status;
    if (!c->msg[0]) return;
    /* "<callback's message> - <the solver's message>", cut to fit */
    char out[sizeof res->message];
    size_t cap = sizeof out - 1, len = strlen(c->msg);
    if (len > cap) len = cap;
    memcpy(out, c->msg, len);
    size_t tl = strlen(res->message);
    if (tl && len + 3 < cap) {
        memcpy(out + len, " - ", 3);
        len += 3;
        if (tl > cap - len) tl = cap - len;
        memcpy(out + len, res->message, tl);
        len += tl;
    }
    out[len] = '\0';
    memcpy(res->message, out, len + 1);
}
