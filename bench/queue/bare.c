/*
 * bare.c - the baseline of bench/queue: the same claim and ack on the
 * same schema as the workers, written as plainly as possible (text
 * protocol, no library, no dispatch, no lease bookkeeping), plus the same
 * noop_runs record per job, so the ratio shows what the worker pool costs
 * on top of the SQL it cannot avoid. Also the enqueuer of the latency
 * run (insert, COMMIT, then the same datagram the fcgi-app sends).
 *
 *   bare SOCKET loop        claim + record + ack until the queue is idle
 *   bare SOCKET enqueue N WAKE_SOCKET   N jobs, 5-30 ms apart, nudging
 *
 * SOCKET may be tcp:HOST:PORT (bench/cluster's worker hosts): then TLS
 * with the CA in $BARE_TLS_CA, as $BARE_USER with the password in the
 * file $BARE_PASSWORD_FILE, as the workers connect.
 */
#define _GNU_SOURCE
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static MYSQL *db;

static void
q(const char *sql)
{
	MYSQL_RES *r;

	if (mysql_query(db, sql) != 0) {
		fprintf(stderr, "bare: %s: %s\n", sql, mysql_error(db));
		exit(1);
	}
	r = mysql_store_result(db);
	if (r)
		mysql_free_result(r);
}

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int
run_loop(void)
{
	char sql[512], token[33];
	double idle = now();
	unsigned long n = 0;

	for (;;) {
		MYSQL_RES *r;
		MYSQL_ROW row;
		unsigned long long id;

		q("START TRANSACTION");
		if (mysql_query(db,
		                "SELECT id FROM jobs WHERE state = 'queued' "
		                "AND run_at <= NOW(6) ORDER BY run_at, id "
		                "LIMIT 1 FOR UPDATE SKIP LOCKED") != 0) {
			/* A deadlock: roll back and go again, like db_tx. */
			q("ROLLBACK");
			continue;
		}
		r = mysql_store_result(db);
		row = r ? mysql_fetch_row(r) : NULL;
		if (row == NULL) {
			if (r)
				mysql_free_result(r);
			q("COMMIT");
			if (now() - idle > 1.0)
				break;
			usleep(1000);
			continue;
		}
		id = strtoull(row[0], NULL, 10);
		mysql_free_result(r);
		snprintf(token, sizeof(token), "%08lx%08lx%016llx",
		         (unsigned long)random(), (unsigned long)getpid(), id);
		snprintf(
		        sql, sizeof(sql),
		        "UPDATE jobs SET state = 'running', lease_token = '%s', "
		        "lease_until = NOW(6) + INTERVAL 60 SECOND, attempts = "
		        "attempts + 1, worker = 'bare:%d', started_at = NOW(6) "
		        "WHERE id = %llu",
		        token, getpid(), id);
		q(sql);
		q("COMMIT");
		/* The record commits with the ack, as noop's does (in_settle). */
		q("START TRANSACTION");
		snprintf(sql, sizeof(sql),
		         "INSERT IGNORE INTO noop_runs (job_id, lease_token, "
		         "worker, attempt, started_at) VALUES (%llu, '%s', "
		         "'bare:%d', 1, NOW(6))",
		         id, token, getpid());
		q(sql);
		snprintf(
		        sql, sizeof(sql),
		        "UPDATE jobs SET state = 'done', lease_until = NULL, "
		        "finished_at = NOW(6) WHERE id = %llu AND lease_token = "
		        "'%s' AND state = 'running'",
		        id, token);
		q(sql);
		n++;
		idle = now();
	}
	printf("%lu\n", n);
	return 0;
}

static int
run_enqueue(long n, const char *wake)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	long i;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", wake);
	for (i = 0; i < n; i++) {
		q("INSERT INTO jobs (kind, payload) VALUES ('noop', "
		  "'{\"record\":false}')");
		/* Autocommit: the row is committed when the INSERT returns. */
		sendto(fd, "w", 1, 0, (struct sockaddr *)&sa, sizeof(sa));
		usleep(5000 + (unsigned)(random() % 25000));
	}
	return 0;
}

/* tcp:HOST:PORT with TLS, or a unix socket path. */
static MYSQL *
connect_to(const char *where)
{
	char host[256], pw[256] = "";
	const char *ca = getenv("BARE_TLS_CA"),
	           *pwf = getenv("BARE_PASSWORD_FILE");
	const char *user = getenv("BARE_USER");
	unsigned port = 0;
	my_bool verify = 1;
	FILE *f;

	if (strncmp(where, "tcp:", 4) != 0)
		return mysql_real_connect(db, NULL, "root", NULL, "ephemera", 0,
		                          where, CLIENT_FOUND_ROWS);
	if (sscanf(where + 4, "%255[^:]:%u", host, &port) != 2 || !ca ||
	    !user || !pwf || (f = fopen(pwf, "r")) == NULL)
		return NULL;
	if (fgets(pw, sizeof(pw), f) != NULL)
		pw[strcspn(pw, "\r\n")] = '\0';
	fclose(f);
	mysql_options(db, MYSQL_OPT_SSL_CA, ca);
	mysql_options(db, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
	return mysql_real_connect(db, host, user, pw, "ephemera", port, NULL,
	                          CLIENT_FOUND_ROWS);
}

int
main(int argc, char **argv)
{
	unsigned rw_timeout = 120;

	if (argc < 3)
		return 2;
	srandom((unsigned)getpid());
	db = mysql_init(NULL);
	/*
	 * The same socket options as lib/db.c: with read/write timeouts the
	 * connector reads non-blocking and polls (three syscalls a round trip
	 * instead of one), which costs the same whoever runs the SQL; the
	 * ratio is meant to show what the queue's logic costs.
	 */
	mysql_options(db, MYSQL_OPT_READ_TIMEOUT, &rw_timeout);
	mysql_options(db, MYSQL_OPT_WRITE_TIMEOUT, &rw_timeout);
	if (connect_to(argv[1]) == NULL) {
		fprintf(stderr, "bare: connect: %s\n", mysql_error(db));
		return 1;
	}
	q("SET time_zone = '+00:00'");
	if (strcmp(argv[2], "loop") == 0)
		return run_loop();
	if (strcmp(argv[2], "enqueue") == 0 && argc == 5)
		return run_enqueue(strtol(argv[3], NULL, 10), argv[4]);
	return 2;
}
