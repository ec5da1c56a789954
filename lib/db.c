/*
 * db.c - the MariaDB adapter: the only file that includes mysql.h.
 *
 * Every statement is a prepared statement (no SQL is ever built from data),
 * and every value crosses as text or a bound integer. MYSQL_STMT handles
 * are owned by the connection's statement cache (below) and never leave
 * this file: db_run() takes one from the cache (preparing it on a miss),
 * executes and fetches it, and frees its result before returning. Result
 * metadata (MYSQL_RES) is likewise freed before db_run() returns; the rows
 * it hands out are plain heap strings owned by struct db_rows.
 *
 * The cache: preparing costs a round trip to the server, as much as the
 * execution itself, and a webhook delivery runs the same handful of
 * statements every time, so each connection keeps its last DB_STMT_CACHE
 * prepared statements keyed by SQL text (least recently used goes).
 * Statements die with their connection: db_disconnect closes them all,
 * and a server asking for a re-prepare (1615, after DDL) gets one.
 */
#include <errno.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <errmsg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ephemera.h"

#define DB_STMT_CACHE 48

struct db_stmt {
	char *sql; /* NULL: free slot */
	MYSQL_STMT *st;
	uint64_t used; /* LRU clock */
};

struct db {
	MYSQL *conn;
	struct db_stmt cache[DB_STMT_CACHE];
	uint64_t clock;
	char *socket, *host, *user, *password, *name;
	char *tls_ca; /* NULL: no TLS (the socket, or a trusted link) */
	char last_message[256]; /* the client's words for the last failure */
	unsigned port, connect_timeout;
	unsigned last_errno;
	enum db_error last;
	uint64_t affected, insert_id;
	unsigned inject_code;
	int inject_n;
	bool read_committed; /* session isolation, kept across reconnects */
	bool in_tx; /* inside db_tx: a broken statement is not retried */
};

struct db_rows {
	size_t nrows, ncols, cap;
	char **names; /* ncols */
	char **cells; /* nrows * ncols, NULL for SQL NULL */
};

void
db_library_init(void)
{
	if (mysql_library_init(0, NULL, NULL) != 0)
		fatal("db_init", "what=mysql_library_init");
}

static struct db *
db_open_as(const struct config *cfg, const char *user, const char *password)
{
	struct db *db = xcalloc(1, sizeof(*db));

	if (cfg->db_host[0] == '\0') {
		db->socket = cfg->db_socket[0]
		                     ? xstrdup(cfg->db_socket)
		                     : config_var_path(cfg, "run/mysqld.sock");
	} else {
		db->host = xstrdup(cfg->db_host);
	}
	db->port = (unsigned)cfg->db_port;
	db->user = xstrdup(user);
	db->password = password ? xstrdup(password) : NULL;
	db->name = xstrdup(cfg->db_name);
	db->tls_ca =
	        cfg->db_tls_ca_file[0] ? xstrdup(cfg->db_tls_ca_file) : NULL;
	db->connect_timeout = (unsigned)cfg->db_connect_timeout;
	return db;
}

struct db *
db_open(const struct config *cfg)
{
	return db_open_as(cfg, cfg->db_user, cfg->db_password);
}

struct db *
db_open_migrate(const struct config *cfg)
{
	if (cfg->db_migrate_user[0] == '\0')
		return db_open(cfg);
	return db_open_as(cfg, cfg->db_migrate_user, cfg->db_migrate_password);
}

static enum db_error
db_classify(unsigned code)
{
	switch (code) {
	case 0:
		return DB_OK;
	case ER_LOCK_DEADLOCK:     /* 1213 */
	case ER_LOCK_WAIT_TIMEOUT: /* 1205 */
	case ER_CHECKREAD:         /* 1020: record changed since last read */
		return DB_RETRY;
	case ER_DUP_ENTRY: /* 1062 */
		return DB_DUPLICATE;
	case CR_SERVER_GONE_ERROR:    /* 2006 */
	case CR_SERVER_LOST:          /* 2013 */
	case CR_CONNECTION_ERROR:     /* 2002 */
	case CR_CONN_HOST_ERROR:      /* 2003 */
	case CR_SERVER_LOST_EXTENDED: /* 2055 */
	case ER_CONNECTION_KILLED:    /* 1927 */
	case ER_SERVER_SHUTDOWN:      /* 1053 */
	case 4031: /* idle client disconnected by the server */
		return DB_GONE;
	default:
		return DB_FAILED;
	}
}

static void
db_stmt_drop(struct db_stmt *c)
{
	if (c->st != NULL)
		mysql_stmt_close(c->st);
	free(c->sql);
	memset(c, 0, sizeof(*c));
}

static void
db_disconnect(struct db *db)
{
	size_t i;

	for (i = 0; i < DB_STMT_CACHE; i++)
		db_stmt_drop(&db->cache[i]);
	if (db->conn != NULL) {
		mysql_close(db->conn);
		db->conn = NULL;
	}
}

/* One connection attempt; quiet, the caller decides what to log. */
static int
db_connect_once(struct db *db)
{
	unsigned timeout = db->connect_timeout;
	unsigned rw_timeout = 120;
	my_bool off = 0;

	db_disconnect(db);
	db->conn = mysql_init(NULL);
	if (db->conn == NULL)
		fatal("out_of_memory", "what=mysql_init");
	mysql_options(db->conn, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	/* Bound every read and write so a frozen server cannot hang us. */
	mysql_options(db->conn, MYSQL_OPT_READ_TIMEOUT, &rw_timeout);
	mysql_options(db->conn, MYSQL_OPT_WRITE_TIMEOUT, &rw_timeout);
	mysql_options(db->conn, MYSQL_OPT_RECONNECT, &off);
	mysql_options(db->conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	if (db->tls_ca) {
		/* TLS or no connection, and the server's certificate checked
		 * against the CA and the host name: a worker host reaches
		 * the database across a network it does not own. */
		my_bool on = 1;

		mysql_options(db->conn, MYSQL_OPT_SSL_CA, db->tls_ca);
		mysql_options(db->conn, MYSQL_OPT_SSL_ENFORCE, &on);
		mysql_options(db->conn, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on);
	}
	/*
	 * CLIENT_FOUND_ROWS: affected rows count matched rows, so a fenced
	 * UPDATE that changes nothing still says "the lease was ours".
	 * CLIENT_MULTI_RESULTS: a CALL answers with its result sets and a
	 * final status.
	 */
	if (mysql_real_connect(db->conn, db->host, db->user, db->password,
	                       db->name, db->port, db->socket,
	                       CLIENT_FOUND_ROWS | CLIENT_MULTI_RESULTS) ==
	    NULL) {
		db->last_errno = mysql_errno(db->conn);
		snprintf(db->last_message, sizeof(db->last_message), "%s",
		         mysql_error(db->conn));
		db->last = DB_GONE;
		db_disconnect(db);
		return -1;
	}
	if (mysql_query(db->conn,
	                db->read_committed
	                        ? "SET time_zone = '+00:00', sql_mode = "
	                          "'STRICT_ALL_TABLES,NO_ZERO_DATE,"
	                          "ERROR_FOR_DIVISION_BY_ZERO', tx_isolation = "
	                          "'READ-COMMITTED'"
	                        : "SET time_zone = '+00:00', sql_mode = "
	                          "'STRICT_ALL_TABLES,NO_ZERO_DATE,"
	                          "ERROR_FOR_DIVISION_BY_ZERO'") != 0) {
		db->last_errno = mysql_errno(db->conn);
		db->last = db_classify(db->last_errno);
		db_disconnect(db);
		return -1;
	}
	db->last = DB_OK;
	db->last_errno = 0;
	return 0;
}

int
db_connect(struct db *db, double wait_seconds)
{
	double deadline = now_mono() + wait_seconds, delay = 0.05;
	int tries = 0;

	for (;;) {
		tries++;
		if (db_connect_once(db) == 0) {
			if (tries > 1)
				log_info("db_connect", "tries=%d", tries);
			return 0;
		}
		if (now_mono() + delay > deadline)
			break;
		usleep((useconds_t)(delay * 1e6));
		if (delay < 1.0)
			delay *= 2;
	}
	log_error("db_connect",
	          "tries=%d errno=%u socket=%s host=%s tls=%s "
	          "message=%s",
	          tries, db->last_errno, log_q(db->socket), log_q(db->host),
	          db->tls_ca ? "on" : "off", log_q(db->last_message));
	return -1;
}

void
db_close(struct db *db)
{
	if (db == NULL)
		return;
	db_disconnect(db);
	free(db->socket);
	free(db->host);
	free(db->user);
	if (db->password) {
		explicit_bzero(db->password, strlen(db->password));
		free(db->password);
	}
	free(db->name);
	free(db->tls_ca);
	free(db);
}

/* Reconnects once, without waiting, if the last connection broke. */
static int
db_ensure(struct db *db)
{
	if (db->conn != NULL)
		return 0;
	if (db_connect_once(db) == -1) {
		log_warn("db_unavailable", "errno=%u", db->last_errno);
		return -1;
	}
	return 0;
}

bool
db_ping(struct db *db)
{
	if (db_ensure(db) == -1)
		return false;
	if (mysql_ping(db->conn) == 0)
		return true;
	db_disconnect(db);
	return db_ensure(db) == 0 && mysql_ping(db->conn) == 0;
}

enum db_error
db_error(const struct db *db)
{
	return db->last;
}

unsigned
db_errno(const struct db *db)
{
	return db->last_errno;
}

uint64_t
db_affected(const struct db *db)
{
	return db->affected;
}

uint64_t
db_insert_id(const struct db *db)
{
	return db->insert_id;
}

/* Takes effect on the next (re)connection, and for every later one. */
void
db_read_committed(struct db *db)
{
	db->read_committed = true;
}

void
db_inject_error(struct db *db, unsigned code, int n)
{
	db->inject_code = code;
	db->inject_n = n;
}

static void
db_fail(struct db *db, unsigned code, const char *msg, const char *sql)
{
	enum log_level lvl = LOG_ERROR;

	db->last_errno = code;
	db->last = db_classify(code);
	if (db->last == DB_RETRY || db->last == DB_DUPLICATE)
		lvl = LOG_DEBUG;
	log_msg(lvl, "db_error", "errno=%u error=%s sql=%s", code, log_q(msg),
	        log_qn(sql, strlen(sql) > 120 ? 120 : strlen(sql)));
	if (db->last == DB_GONE)
		db_disconnect(db);
}

static void
rows_add(struct db_rows *r, char **cells)
{
	if (r->nrows == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->cells =
		        xrealloc(r->cells, r->cap * r->ncols * sizeof(char *));
	}
	memcpy(r->cells + r->nrows * r->ncols, cells,
	       r->ncols * sizeof(char *));
	r->nrows++;
}

/*
 * Fetches every row as text: each column is bound with no buffer, so fetch
 * reports its length, then fetched into an exact-size allocation.
 */
#define DB_SMALL_VALUE 64

static int
db_fetch_all(struct db *db, MYSQL_STMT *st, MYSQL_RES *meta,
             struct db_rows **out, const char *sql)
{
	unsigned ncols = mysql_num_fields(meta), i;
	MYSQL_FIELD *fields = mysql_fetch_fields(meta);
	MYSQL_BIND *bind = xcalloc(ncols, sizeof(*bind));
	unsigned long *lens = xcalloc(ncols, sizeof(*lens));
	my_bool *nulls = xcalloc(ncols, sizeof(*nulls));
	char **row = xcalloc(ncols, sizeof(*row));
	/*
	 * Every column is fetched as text into a small buffer first. Short
	 * values (most) are taken from it; longer ones come whole through
	 * mysql_stmt_fetch_column. Binary DOUBLE and FLOAT values are only
	 * turned into text when a buffer is bound at fetch time: with none,
	 * they would read back empty.
	 */
	char(*small)[DB_SMALL_VALUE] = xcalloc(ncols, DB_SMALL_VALUE);
	struct db_rows *r = xcalloc(1, sizeof(*r));
	int rc = -1, f;

	r->ncols = ncols;
	r->names = xcalloc(ncols, sizeof(char *));
	for (i = 0; i < ncols; i++) {
		r->names[i] = xstrdup(fields[i].name);
		bind[i].buffer_type = MYSQL_TYPE_STRING;
		bind[i].buffer = small[i];
		bind[i].buffer_length = DB_SMALL_VALUE;
		bind[i].length = &lens[i];
		bind[i].is_null = &nulls[i];
	}
	if (mysql_stmt_bind_result(st, bind) != 0 ||
	    mysql_stmt_store_result(st) != 0) {
		db_fail(db, mysql_stmt_errno(st), mysql_stmt_error(st), sql);
		goto out;
	}
	while ((f = mysql_stmt_fetch(st)) == 0 || f == MYSQL_DATA_TRUNCATED) {
		for (i = 0; i < ncols; i++) {
			MYSQL_BIND one;

			row[i] = NULL;
			if (nulls[i])
				continue;
			row[i] = xmalloc(lens[i] + 1);
			if (lens[i] < DB_SMALL_VALUE) {
				memcpy(row[i], small[i], lens[i]);
				row[i][lens[i]] = '\0';
				continue;
			}
			memset(&one, 0, sizeof(one));
			one.buffer_type = MYSQL_TYPE_STRING;
			one.buffer = row[i];
			one.buffer_length = lens[i] + 1;
			if (mysql_stmt_fetch_column(st, &one, i, 0) != 0) {
				db_fail(db, mysql_stmt_errno(st),
				        mysql_stmt_error(st), sql);
				for (;; i--) {
					free(row[i]);
					if (i == 0)
						break;
				}
				goto out;
			}
			row[i][lens[i]] = '\0';
		}
		rows_add(r, row);
	}
	if (f != MYSQL_NO_DATA) {
		db_fail(db, mysql_stmt_errno(st), mysql_stmt_error(st), sql);
		goto out;
	}
	*out = r;
	r = NULL;
	rc = 0;
out:
	db_rows_free(r);
	free(bind);
	free(lens);
	free(nulls);
	free(row);
	free(small);
	return rc;
}

/*
 * The cached prepared statement for `sql`, preparing it on a miss (and
 * evicting the least recently used). NULL after logging on failure.
 */
static struct db_stmt *
db_stmt_get(struct db *db, const char *sql)
{
	struct db_stmt *c, *victim = &db->cache[0];
	size_t i;

	for (i = 0; i < DB_STMT_CACHE; i++) {
		c = &db->cache[i];
		if (c->sql != NULL && strcmp(c->sql, sql) == 0) {
			c->used = ++db->clock;
			return c;
		}
		if (c->sql == NULL ||
		    (victim->sql != NULL && c->used < victim->used))
			victim = c;
	}
	db_stmt_drop(victim);
	victim->st = mysql_stmt_init(db->conn);
	if (victim->st == NULL)
		fatal("out_of_memory", "what=mysql_stmt_init");
	if (mysql_stmt_prepare(victim->st, sql, strlen(sql)) != 0) {
		db_fail(db, mysql_stmt_errno(victim->st),
		        mysql_stmt_error(victim->st), sql);
		/* db_fail may have disconnected, which dropped the slot. */
		db_stmt_drop(victim);
		return NULL;
	}
	victim->sql = xstrdup(sql);
	victim->used = ++db->clock;
	return victim;
}

/*
 * A CALL sends its procedure's result sets and then a status; until all
 * are read the connection accepts no other command. Only the first result
 * set is handed out (db_fetch_all); an error in a later statement of the
 * procedure surfaces here.
 */
static int
db_results_drain(struct db *db, MYSQL_STMT *st, const char *sql)
{
	MYSQL_RES *meta;
	int rc;

	while (mysql_stmt_more_results(st)) {
		mysql_stmt_free_result(st);
		rc = mysql_stmt_next_result(st);
		if (rc > 0) {
			db_fail(db, mysql_stmt_errno(st), mysql_stmt_error(st),
			        sql);
			return -1;
		}
		if (rc < 0)
			break;
		meta = mysql_stmt_result_metadata(st);
		if (meta != NULL) {
			mysql_free_result(meta);
			if (mysql_stmt_store_result(st) != 0) {
				db_fail(db, mysql_stmt_errno(st),
				        mysql_stmt_error(st), sql);
				return -1;
			}
		}
	}
	return 0;
}

static int
db_run(struct db *db, struct db_rows **rows, const char *sql, const char *fmt,
       va_list ap)
{
	size_t n = strlen(fmt), i;
	MYSQL_STMT *st = NULL;
	MYSQL_RES *meta = NULL;
	MYSQL_BIND *bind = NULL;
	union {
		long long i;
		double d;
	} *vals = NULL;
	unsigned long *lens = NULL;
	struct db_stmt *slot = NULL;
	int rc = -1;

	if (rows)
		*rows = NULL;
	db->affected = 0;
	if (db_ensure(db) == -1)
		return -1;
	if (db->inject_n > 0) {
		db->inject_n--;
		db_fail(db, db->inject_code, "injected by a test", sql);
		return -1;
	}
	slot = db_stmt_get(db, sql);
	if (slot == NULL)
		goto out;
	st = slot->st;
	if (mysql_stmt_param_count(st) != n)
		fatal("db_bug", "sql=%s params=%lu fmt=%s", log_q(sql),
		      mysql_stmt_param_count(st), fmt);
	bind = xcalloc(n, sizeof(*bind));
	vals = xcalloc(n, sizeof(*vals));
	lens = xcalloc(n, sizeof(*lens));
	for (i = 0; i < n; i++) {
		switch (fmt[i]) {
		case 's': {
			const char *s = va_arg(ap, const char *);

			if (s == NULL) {
				bind[i].buffer_type = MYSQL_TYPE_NULL;
				break;
			}
			bind[i].buffer_type = MYSQL_TYPE_STRING;
			bind[i].buffer = (void *)s;
			lens[i] = strlen(s);
			bind[i].buffer_length = lens[i];
			bind[i].length = &lens[i];
			break;
		}
		case 'b': {
			const struct slice *sl =
			        va_arg(ap, const struct slice *);

			if (sl == NULL || sl->ptr == NULL) {
				bind[i].buffer_type = MYSQL_TYPE_NULL;
				break;
			}
			bind[i].buffer_type = MYSQL_TYPE_STRING;
			bind[i].buffer = (void *)sl->ptr;
			lens[i] = sl->len;
			bind[i].buffer_length = sl->len;
			bind[i].length = &lens[i];
			break;
		}
		case 'i':
			vals[i].i = va_arg(ap, int64_t);
			bind[i].buffer_type = MYSQL_TYPE_LONGLONG;
			bind[i].buffer = &vals[i].i;
			break;
		case 'u':
			vals[i].i = (long long)va_arg(ap, uint64_t);
			bind[i].buffer_type = MYSQL_TYPE_LONGLONG;
			bind[i].buffer = &vals[i].i;
			bind[i].is_unsigned = 1;
			break;
		case 'd':
			vals[i].d = va_arg(ap, double);
			bind[i].buffer_type = MYSQL_TYPE_DOUBLE;
			bind[i].buffer = &vals[i].d;
			break;
		default:
			fatal("db_bug", "fmt=%s", fmt);
		}
	}
	if (n > 0 && mysql_stmt_bind_param(st, bind) != 0) {
		db_fail(db, mysql_stmt_errno(st), mysql_stmt_error(st), sql);
		goto out;
	}
	if (mysql_stmt_execute(st) != 0 &&
	    mysql_stmt_errno(st) == ER_NEED_REPREPARE) {
		/* The table changed under the cached statement: once more. */
		db_stmt_drop(slot);
		slot = db_stmt_get(db, sql);
		if (slot == NULL)
			goto out;
		st = slot->st;
		if ((n > 0 && mysql_stmt_bind_param(st, bind) != 0) ||
		    mysql_stmt_execute(st) != 0) {
			db_fail(db, mysql_stmt_errno(st), mysql_stmt_error(st),
			        sql);
			goto out;
		}
	} else if (mysql_stmt_errno(st) != 0) {
		db_fail(db, mysql_stmt_errno(st), mysql_stmt_error(st), sql);
		goto out;
	}
	db->affected = mysql_stmt_affected_rows(st);
	db->insert_id = mysql_stmt_insert_id(st);
	meta = mysql_stmt_result_metadata(st);
	if (meta != NULL && rows != NULL &&
	    db_fetch_all(db, st, meta, rows, sql) == -1)
		goto out;
	/* Unwanted rows are still read, so the statement can run again. */
	if (meta != NULL && rows == NULL && mysql_stmt_store_result(st) != 0) {
		db_fail(db, mysql_stmt_errno(st), mysql_stmt_error(st), sql);
		goto out;
	}
	/* A CALL: the first result set is the answer; read the rest. */
	if (db_results_drain(db, st, sql) == -1)
		goto out;
	db->last = DB_OK;
	db->last_errno = 0;
	rc = 0;
out:
	if (meta)
		mysql_free_result(meta);
	/* Ready for the next execution; a broken connection dropped it. */
	if (slot != NULL && slot->st != NULL && db->conn != NULL)
		mysql_stmt_free_result(slot->st);
	free(bind);
	free(vals);
	free(lens);
	return rc;
}

/* Whether the server says a transaction is open on this connection. */
static bool
db_in_transaction(struct db *db)
{
	unsigned status = 0;

	if (db->conn == NULL ||
	    mariadb_get_infov(db->conn, MARIADB_CONNECTION_SERVER_STATUS,
	                      &status) != 0)
		return false;
	return (status & SERVER_STATUS_IN_TRANS) != 0;
}

/*
 * A read outside a transaction that finds the connection gone (MariaDB
 * restarted, or closed it after wait_timeout) runs once more on a new one.
 * The fcgi-app keeps a connection per thread, and most sit idle: without
 * this, each would fail its first status-page read after an outage. Only
 * reads: a write that broke off may have happened.
 *
 * A statement on its own (autocommit, no transaction open before it) that
 * lost a lock conflict (deadlock, lock wait timeout) did nothing: the server
 * rolled it back whole. It runs again, up to DB_LONE_TRIES times, so that an
 * enqueue racing the workers' claims on the jobs table's unique key is not
 * an error. Inside a transaction the conflict rolled back the statements
 * before it too, so only the caller (db_tx) can run it again. Nor a CALL:
 * each statement of a procedure run under autocommit commits by itself.
 */
#define DB_LONE_TRIES 4

static int
db_run_again(struct db *db, struct db_rows **rows, const char *sql,
             const char *fmt, va_list ap)
{
	bool lone = !db->in_tx && !db_in_transaction(db) &&
	            strncasecmp(sql, "CALL", 4) != 0;
	bool gone_retried = false;
	int rc, attempt;

	for (attempt = 1;; attempt++) {
		va_list again;

		va_copy(again, ap);
		rc = db_run(db, rows, sql, fmt, again);
		va_end(again);
		if (rc == 0)
			return 0;
		if (db->last == DB_GONE && !gone_retried && !db->in_tx &&
		    strncasecmp(sql, "SELECT", 6) == 0) {
			gone_retried = true;
			log_info("db_retry", "reason=connection_gone");
			continue;
		}
		if (db->last != DB_RETRY || !lone || attempt >= DB_LONE_TRIES)
			return rc;
		log_debug("db_retry",
		          "reason=lock_conflict errno=%u attempt=%d",
		          db->last_errno, attempt);
		/* A small randomised pause, so the rivals interleave. */
		usleep((useconds_t)(1000 * attempt +
		                    (unsigned)random() % 2000));
	}
}

int
db_exec(struct db *db, const char *sql, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = db_run_again(db, NULL, sql, fmt, ap);
	va_end(ap);
	return rc;
}

int
db_query(struct db *db, struct db_rows **rows, const char *sql, const char *fmt,
         ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = db_run_again(db, rows, sql, fmt, ap);
	va_end(ap);
	return rc;
}

/* For statements the prepared protocol does not take (some DDL, XA). */
int
db_raw(struct db *db, const char *sql)
{
	MYSQL_RES *res;

	if (db_ensure(db) == -1)
		return -1;
	if (db->inject_n > 0) {
		db->inject_n--;
		db_fail(db, db->inject_code, "injected by a test", sql);
		return -1;
	}
	if (mysql_query(db->conn, sql) != 0) {
		db_fail(db, mysql_errno(db->conn), mysql_error(db->conn), sql);
		return -1;
	}
	res = mysql_store_result(db->conn);
	if (res)
		mysql_free_result(res);
	db->affected = mysql_affected_rows(db->conn);
	db->last = DB_OK;
	return 0;
}

size_t
db_rows_columns(const struct db_rows *r)
{
	return r ? r->ncols : 0;
}

size_t
db_rows_count(const struct db_rows *r)
{
	return r ? r->nrows : 0;
}

const char *
db_rows_get(const struct db_rows *r, size_t row, size_t col)
{
	if (r == NULL || row >= r->nrows || col >= r->ncols)
		return NULL;
	return r->cells[row * r->ncols + col];
}

const char *
db_rows_name(const struct db_rows *r, size_t col)
{
	return r && col < r->ncols ? r->names[col] : NULL;
}

void
db_rows_free(struct db_rows *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nrows * r->ncols; i++)
		free(r->cells[i]);
	for (i = 0; i < r->ncols; i++)
		free(r->names[i]);
	free(r->cells);
	free(r->names);
	free(r);
}

/*
 * Retries the whole transaction on deadlock, lock timeout, "record changed"
 * and a broken connection (the server rolled it back, so running it again
 * is safe). A failure of COMMIT itself on a broken connection is reported,
 * not retried: the commit may have happened, and only the caller knows
 * whether running again is harmless (deliveries are deduplicated).
 *
 * `self`: fn opens the transaction with its first statement (a procedure
 * that starts with START TRANSACTION) and may commit it with its last;
 * what is still open when fn returns 0 is committed here. That saves the
 * two round trips of BEGIN and COMMIT on the webhook's hot path.
 */
static int
db_tx_tries(struct db *db, db_tx_fn fn, void *arg, int tries, bool self)
{
	int attempt, rc;
	enum db_error why;

	for (attempt = 1; attempt <= tries; attempt++) {
		db->last = DB_OK;
		if (!self && db_raw(db, "START TRANSACTION") == -1) {
			why = db->last;
			goto retry;
		}
		rc = fn(db, arg);
		if (rc == 0) {
			if ((self && !db_in_transaction(db)) ||
			    db_raw(db, "COMMIT") == 0)
				return 0;
			why = db->last;
			if (why != DB_RETRY)
				return -1;
			goto retry;
		}
		why = db->last;
		/*
		 * A rollback that fails (a call that broke off inside a
		 * result set leaves the connection out of sync) would leave
		 * the transaction's row locks held until this connection's
		 * next statement, which may never come: close it instead,
		 * and the server rolls back.
		 */
		if (db->conn != NULL && mysql_rollback(db->conn) != 0) {
			log_warn("db_rollback_failed", "errno=%u",
			         mysql_errno(db->conn));
			db_disconnect(db);
		}
		if (why != DB_RETRY && why != DB_GONE)
			return -1;
	retry:
		if (why != DB_RETRY && why != DB_GONE)
			return -1;
		if (attempt < tries) {
			log_debug("db_tx_retry", "attempt=%d errno=%u", attempt,
			          db->last_errno);
			/* Small randomised pause so the rivals interleave. */
			usleep((useconds_t)(1000 * attempt +
			                    (unsigned)random() % 2000));
		}
	}
	log_warn("db_tx_gave_up", "tries=%d errno=%u", tries, db->last_errno);
	return -1;
}

/* in_tx: db_run_again never runs a statement of the transaction again. */
static int
db_tx_run(struct db *db, db_tx_fn fn, void *arg, int tries, bool self)
{
	int rc;

	db->in_tx = true;
	rc = db_tx_tries(db, fn, arg, tries, self);
	db->in_tx = false;
	return rc;
}

int
db_tx(struct db *db, db_tx_fn fn, void *arg, int tries)
{
	return db_tx_run(db, fn, arg, tries, false);
}

int
db_tx_self(struct db *db, db_tx_fn fn, void *arg, int tries)
{
	return db_tx_run(db, fn, arg, tries, true);
}
