/*
 * batch.c - group commit for webhook deliveries across one process's
 * threads. Each thread parses its own request; then, instead of a
 * transaction each, the deliveries that arrive together share one
 * (delivery_batch.c): on two cores, MariaDB spends more on a round trip
 * and a COMMIT than on a delivery's rows.
 *
 * No timer and no extra thread: a thread queues its delivery, and if no
 * batch is running it becomes the leader, takes everything queued, and
 * records it on the batch's own connection while the others wait.
 * Deliveries arriving meanwhile queue for the next batch, so
 * a batch is as large as the load makes it and a lone delivery goes
 * straight through. Every delivery is answered only after the COMMIT
 * that holds it (or after its own, when the batch left it direct).
 */
#include <pthread.h>
#include <stdlib.h>

#include "app.h"

/* Enough to share a commit widely; small enough for one packet. */
#define BATCH_MAX 32

/* A thread waiting for its delivery, on its own condition: a batch wakes
 * only the threads it answers, and the next leader; on this machine a
 * wake-up costs more than a delivery's rows, so no broadcast. */
struct waiter {
	pthread_cond_t wake;
	struct delivery *d;
	bool done;
	struct waiter *next;
};

struct batch {
	pthread_mutex_t mu;
	struct waiter *head, **tail; /* FIFO of waiting deliveries */
	bool busy;                   /* a leader is recording a batch */
	struct db *db;               /* the leader's, one at a time */
};

struct batch *
batch_new(const struct config *cfg)
{
	struct batch *b = xcalloc(1, sizeof(*b));

	pthread_mutex_init(&b->mu, NULL);
	b->tail = &b->head;
	b->db = db_open(cfg);
	db_read_committed(b->db); /* see delivery.c */
	return b;
}

void
batch_free(struct batch *b)
{
	if (b == NULL)
		return;
	db_close(b->db);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

/* Called with b->mu held and no batch running; returns with it held. */
static void
batch_lead(struct batch *b, struct waiter *self)
{
	struct waiter *ws[BATCH_MAX];
	struct delivery *ds[BATCH_MAX];
	size_t n = 0, i;

	while (b->head != NULL && n < BATCH_MAX) {
		ws[n] = b->head;
		ds[n] = b->head->d;
		n++;
		b->head = b->head->next;
	}
	if (b->head == NULL)
		b->tail = &b->head;
	b->busy = true;
	pthread_mutex_unlock(&b->mu);
	delivery_batch_record(b->db, ds, n);
	pthread_mutex_lock(&b->mu);
	/* The results were written above; the mutex publishes them. */
	for (i = 0; i < n; i++) {
		ws[i]->done = true;
		if (ws[i] != self)
			pthread_cond_signal(&ws[i]->wake);
	}
	b->busy = false;
	/* What queued meanwhile: its first thread leads the next batch. */
	if (b->head != NULL)
		pthread_cond_signal(&b->head->wake);
}

enum delivery_outcome
batch_record(struct batch *b, struct db *own, struct delivery *d)
{
	struct waiter w = {.d = d};

	pthread_cond_init(&w.wake, NULL);
	d->direct = false;
	pthread_mutex_lock(&b->mu);
	*b->tail = &w;
	b->tail = &w.next;
	while (!w.done) {
		if (b->busy)
			pthread_cond_wait(&w.wake, &b->mu);
		else
			batch_lead(b, &w);
	}
	pthread_mutex_unlock(&b->mu);
	pthread_cond_destroy(&w.wake);
	if (d->direct)
		return delivery_record(own, d);
	return DELIVERY_DONE;
}
