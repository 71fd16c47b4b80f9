/* pool.c - the engine's persistent worker threads.
 *
 * A solve makes tens to hundreds of passes; starting and joining threads for
 * each one costs a few hundred microseconds per pass, which is all of a small
 * problem's pass.  The pool starts its threads once (nlsq__pool_create, at
 * engine init) and keeps them blocked on a condition variable between
 * passes; nlsq__pool_run hands them one job and returns when every task is
 * done.  Task t of a run always goes to the same thread (t = 0 to the
 * caller), which is all the engine needs: the partition of the rows into
 * slots, and the order of the sums, never depend on the threads.
 *
 * A thread that cannot be started just makes the pool smaller
 * (nlsq__pool_size); the caller does the tasks no thread takes.
 */
#include "nlsq_internal.h"

#include <pthread.h>

typedef struct pool_start {
    struct nlsq__pool *pool;
    size_t task;             /* 1..n_threads: the caller is task 0 */
} pool_start;

struct nlsq__pool {
    const nlsq_allocator *al;
    pthread_mutex_t mu;
    pthread_cond_t go;           /* a new run, or stop */
    pthread_cond_t done;         /* the last task of a run finished */
    pthread_t *threads;
    size_t n_threads;            /* started */
    unsigned long generation;    /* runs so far */
    size_t n_tasks, pending;
    void (*fn)(void *, size_t);
    void *arg;
    int stop;
    pool_start *starts;          /* each thread's record, alive as long as the pool */
};

static void *pool_main(void *vp)
{
    pool_start *st = vp;
    nlsq__pool *pl = st->pool;
    size_t task = st->task;
    unsigned long seen = 0;
    pthread_mutex_lock(&pl->mu);
    for (;;) {
        while (!pl->stop && pl->generation == seen) pthread_cond_wait(&pl->go, &pl->mu);
        if (pl->stop) break;
        seen = pl->generation;
        if (task >= pl->n_tasks) continue;
        void (*fn)(void *, size_t) = pl->fn;
        void *arg = pl->arg;
        pthread_mutex_unlock(&pl->mu);
        fn(arg, task);
        pthread_mutex_lock(&pl->mu);
        if (--pl->pending == 0) pthread_cond_signal(&pl->done);
    }
    pthread_mutex_unlock(&pl->mu);
    return NULL;
}

int nlsq__pool_create(const nlsq_allocator *al, size_t n_threads, nlsq__pool **out)
{
    *out = NULL;
    nlsq__pool *pl = nlsq__calloc(al, 1, sizeof *pl);
    pool_start *st = nlsq__calloc(al, n_threads ? n_threads : 1, sizeof *st);
    if (pl) pl->threads = nlsq__calloc(al, n_threads ? n_threads : 1, sizeof(pthread_t));
    if (!pl || !st || !pl->threads) {
        if (pl) nlsq__free(al, pl->threads);
        nlsq__free(al, pl);
        nlsq__free(al, st);
        return NLSQ_ENOMEM;
    }
    pl->al = al;
    pl->starts = st;
    pthread_mutex_init(&pl->mu, NULL);
    pthread_cond_init(&pl->go, NULL);
    pthread_cond_init(&pl->done, NULL);
    for (size_t t = 0; t < n_threads; t++) {
        st[t].pool = pl;
        st[t].task = t + 1;
        if (pthread_create(&pl->threads[t], NULL, pool_main, &st[t]) != 0) break;
        pl->n_threads = t + 1;
    }
    *out = pl;
    return 0;
}

size_t nlsq__pool_size(const nlsq__pool *pl) { return pl ? pl->n_threads : 0; }

void nlsq__pool_run(nlsq__pool *pl, size_t n_tasks, void (*fn)(void *, size_t), void *arg)
{
    if (n_tasks == 0) return;
    size_t helpers = pl ? (n_tasks - 1 < pl->n_threads ? n_tasks - 1 : pl->n_threads) : 0;
    if (helpers > 0) {
        pthread_mutex_lock(&pl->mu);
        pl->fn = fn;
        pl->arg = arg;
        pl->n_tasks = helpers + 1;
        pl->pending = helpers;
        pl->generation++;
        pthread_cond_broadcast(&pl->go);
        pthread_mutex_unlock(&pl->mu);
    }
    fn(arg, 0);
    for (size_t t = helpers + 1; t < n_tasks; t++) fn(arg, t);   /* tasks no thread takes */
    if (helpers > 0) {
        pthread_mutex_lock(&pl->mu);
        while (pl->pending > 0) pthread_cond_wait(&pl->done, &pl->mu);
        pthread_mutex_unlock(&pl->mu);
    }
}

void nlsq__pool_free(nlsq__pool *pl)
{
    if (!pl) return;
    pthread_mutex_lock(&pl->mu);
    pl->stop = 1;
    pthread_cond_broadcast(&pl->go);
    pthread_mutex_unlock(&pl->mu);
    for (size_t t = 0; t < pl->n_threads; t++) pthread_join(pl->threads[t], NULL);
    pthread_cond_destroy(&pl->go);
    pthread_cond_destroy(&pl->done);
    pthread_mutex_destroy(&pl->mu);
    nlsq__free(pl->al, pl->threads);
    nlsq__free(pl->al, pl->starts);
    nlsq__free(pl->al, pl);
}
