/*
 * stream.c - row blocks of streamed XPCS data, read ahead by a reader thread
 * (see stream.h).
 *
 * Buffers are EMPTY, LOADING (one thread reads into it, the others wait),
 * READY or FAILED.  A worker that needs a block takes it if it is READY,
 * waits if it is LOADING, and otherwise reads it itself into the least
 * recently used buffer nobody holds.  Every acquire of block k wishes for
 * k + 1 and k + 2 (after the last block: the first ones, for the next pass);
 * the reader thread reads wished blocks into buffers that are free and were
 * used since they were read, so read-ahead never throws away a block read
 * ahead for another worker.  Reads are serialised (read_mu): the HDF5 library
 * is serial anyway, and the reader thread's reads overlap the workers'
 * evaluation, which is what pays.
 *
 * Wake-ups are what cost here: a pass gives back a block at the end of every
 * evaluated chunk (thousands per pass), and a broadcast to every waiter on
 * each made 12,000 context switches in a 23M fit on 2 cores.  So workers and
 * the reader thread wait on separate conditions: the reader's (cv_wish) is
 * signalled by a new wish or stop; the workers' (cv) is broadcast when a
 * block is read or a buffer given back, and only when a worker waits.
 *
 * What a block holds depends only on its number, never on which thread read
 * it or when: the model's results do not depend on the timing.
 */
#include "stream.h"
#include "nlsq.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { XS_EMPTY, XS_LOADING, XS_READY, XS_FAILED };
#define XS_WISHES 8
#define XS_AHEAD 2

typedef struct xs_buf {
    size_t key;
    int state, refs, rc, used;
    unsigned long stamp;
    void *data;
} xs_buf;

struct xs_stream {
    size_t P, n, rows, nblk, nkeys, nbuf;
    xs_buf *buf;
    char *mem;
    xs_read_fn read;
    void *ctx;
    pthread_mutex_t mu;          /* everything below and the buffers' states */
    pthread_cond_t cv;           /* for workers: a block was read, a buffer was released */
    pthread_cond_t cv_wish;      /* for the reader thread: a wish came, or stop */
    int n_wait;                  /* workers waiting on cv: no signal when none */
    pthread_mutex_t read_mu;     /* one read at a time */
    size_t wish[XS_WISHES], n_wish;
    unsigned long stamp;
    int stop, have_thread;
    pthread_t thread;
};

size_t nlsq__xs_block_rows(const xs_stream *s) { return s->rows; }

static int find(const xs_stream *s, size_t key)
{
    for (size_t b = 0; b < s->nbuf; b++)
        if (s->buf[b].state != XS_EMPTY && s->buf[b].key == key) return (int)b;
    return -1;
}

/* The least recently used buffer nobody holds or reads; for read-ahead
 * (ahead != 0) only one whose block was used since it was read.  -1: none. */
static int victim(const xs_stream *s, int ahead)
{
    int v = -1;
    for (size_t b = 0; b < s->nbuf; b++) {
        const xs_buf *B = &s->buf[b];
        if (B->refs || B->state == XS_LOADING) continue;
        if (ahead && B->state == XS_READY && !B->used) continue;
        if (B->state == XS_EMPTY) return (int)b;
        if (v < 0 || B->stamp < s->buf[v].stamp) v = (int)b;
    }
    return v;
}

/* Read block key into buffer b (marked LOADING by the caller, mu not held). */
static void load(xs_stream *s, int b, size_t key)
{
    size_t a = key / s->nblk, r0 = (key % s->nblk) * s->rows;
    size_t nr = s->n - r0 < s->rows ? s->n - r0 : s->rows;
    pthread_mutex_lock(&s->read_mu);
    int rc = s->read(s->ctx, a, r0, nr, s->buf[b].data);
    pthread_mutex_unlock(&s->read_mu);
    pthread_mutex_lock(&s->mu);
    s->buf[b].state = rc ? XS_FAILED : XS_READY;
    s->buf[b].rc = rc;
    s->buf[b].stamp = ++s->stamp;
    if (s->n_wait) pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void claim(xs_stream *s, int b, size_t key, int used)
{
    s->buf[b].key = key;
    s->buf[b].state = XS_LOADING;
    s->buf[b].refs = 0;
    s->buf[b].used = used;
}

/* mu held */
static void add_wish(xs_stream *s, size_t key)
{
    key %= s->nkeys;
    if (find(s, key) >= 0) return;
    for (size_t w = 0; w < s->n_wish; w++)
        if (s->wish[w] == key) return;
    if (s->n_wish == XS_WISHES) {   /* the oldest wish is the least useful */
        memmove(s->wish, s->wish + 1, sizeof(size_t) * (XS_WISHES - 1));
        s->n_wish--;
    }
    s->wish[s->n_wish++] = key;
    pthread_cond_signal(&s->cv_wish);
}

static void *reader_main(void *arg)
{
    xs_stream *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        if (s->n_wish == 0) {
            pthread_cond_wait(&s->cv_wish, &s->mu);
            continue;
        }
        size_t key = s->wish[0];
        memmove(s->wish, s->wish + 1, sizeof(size_t) * (s->n_wish - 1));
        s->n_wish--;
        int b;
        if (find(s, key) >= 0 || (b = victim(s, 1)) < 0) continue;
        claim(s, b, key, 0);
        pthread_mutex_unlock(&s->mu);
        load(s, b, key);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

const void *nlsq__xs_acquire(xs_stream *s, size_t a, size_t i, size_t *i0, int *rc)
{
    size_t key = a * s->nblk + i / s->rows;
    *i0 = (i / s->rows) * s->rows;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        int b = find(s, key);
        if (b >= 0 && s->buf[b].state == XS_READY) {
            xs_buf *B = &s->buf[b];
            B->refs++;
            B->used = 1;
            B->stamp = ++s->stamp;
            if (s->have_thread)
                for (size_t k = 1; k <= XS_AHEAD; k++) add_wish(s, key + k);
            pthread_mutex_unlock(&s->mu);
            return B->data;
        }
        if (b >= 0 && s->buf[b].state == XS_FAILED) {
            *rc = s->buf[b].rc;
            s->buf[b].state = XS_EMPTY;   /* the next acquire tries again */
            pthread_mutex_unlock(&s->mu);
            return NULL;
        }
        if (b < 0 && (b = victim(s, 0)) >= 0) {
            claim(s, b, key, 1);
            pthread_mutex_unlock(&s->mu);
            load(s, b, key);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        s->n_wait++;
        pthread_cond_wait(&s->cv, &s->mu);   /* being read, or every buffer held */
        s->n_wait--;
    }
}

void nlsq__xs_release(xs_stream *s, size_t a, size_t i)
{
    size_t key = a * s->nblk + i / s->rows;
    pthread_mutex_lock(&s->mu);
    int b = find(s, key);
    if (b >= 0 && s->buf[b].refs > 0 && --s->buf[b].refs == 0 && s->n_wait)
        pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int nlsq__xs_create(size_t n_angles, size_t n, size_t block_rows, size_t elem_size,
                    size_t n_buffers, int threaded, xs_read_fn read, void *ctx, xs_stream **out)
{
    *out = NULL;
    if (block_rows == 0 || block_rows > n) block_rows = n;
    if (n_buffers < 2) n_buffers = 2;
    xs_stream *s = calloc(1, sizeof *s);
    if (!s) return NLSQ_ENOMEM;
    s->P = n_angles;
    s->n = n;
    s->rows = block_rows;
    s->nblk = (n + block_rows - 1) / block_rows;
    s->nkeys = s->nblk * n_angles;
    s->nbuf = n_buffers;
    s->read = read;
    s->ctx = ctx;
    s->buf = calloc(n_buffers, sizeof *s->buf);
    const size_t bytes = elem_size * block_rows * n;   /* one buffer */
    s->mem = malloc(bytes * n_buffers);
    if (!s->buf || !s->mem) {
        free(s->buf);
        free(s->mem);
        free(s);
        return NLSQ_ENOMEM;
    }
    for (size_t b = 0; b < n_buffers; b++) s->buf[b].data = s->mem + b * bytes;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->read_mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->cv_wish, NULL);
    s->have_thread = threaded && pthread_create(&s->thread, NULL, reader_main, s) == 0;
    *out = s;
    return 0;
}

void nlsq__xs_free(xs_stream *s)
{
    if (!s) return;
    if (s->have_thread) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_signal(&s->cv_wish);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->read_mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->cv_wish);
    free(s->buf);
    free(s->mem);
    free(s);
}
