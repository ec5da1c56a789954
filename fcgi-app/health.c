/*
 * health.c - GET /healthz: 200 when the database answers, 503 when it does
 * not. The check reconnects if the last connection broke, so the answer
 * turns back to 200 by itself once MariaDB is back.
 */
#include "app.h"

void
health_get(struct app *app, const struct request *req, struct response *res)
{
	(void)req;
	buf_puts(&res->headers, "Cache-Control: no-store\r\n");
	if (db_ping(app->db))
		response_text(res, 200, "ok");
	else
		response_text(res, 503, "database unavailable");
}
