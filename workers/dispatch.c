/*
 * dispatch.c - which handler runs which job kind. A new kind is one row.
 */
#include <string.h>

#include "workers.h"

static const struct job_kind kinds[] = {
        {"reconcile", reconcile_run, true},
        {"noop", noop_run, true},
        {"prune", prune_run, false},
        {"sweep", sweep_run, false},
        /* GitHub: a failed notification or command is not a failed env. */
        {"notify", github_notify_job, false},
        {"command", github_command_job, false},
};

const struct job_kind *
dispatch_find(const char *kind)
{
	size_t i;

	for (i = 0; i < NELEM(kinds); i++)
		if (strcmp(kinds[i].kind, kind) == 0)
			return &kinds[i];
	return NULL;
}

void
dispatch_run(struct worker *w, const struct job *job, struct job_result *res)
{
	const struct job_kind *k = dispatch_find(job->kind);

	if (k == NULL) {
		res->outcome = JOB_FAIL;
		buf_printf(&res->error,
		           "unknown job kind \"%s\": no handler in this worker",
		           job->kind);
		return;
	}
	k->handler(w, job, res);
}
