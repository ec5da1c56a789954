/*
 * cli.h - the ops command's private header, sectioned by file.
 */
#ifndef EPHEMERA_CLI_H
#define EPHEMERA_CLI_H

#include "../lib/ephemera.h"

/* ---- jobs.c: `ephemera jobs list|show|retry|cancel` -------------------- */

/* argv[0] is "jobs". Returns the exit status. */
int jobs_command(struct config *, int argc, char **argv);

/* ---- cloudflare_token.c: `ephemera cloudflare service-token ...` ------- */

/* argv[0] is "cloudflare". Returns the exit status. */
int cloudflare_command(struct config *, int argc, char **argv);

/* ---- report.c: `ephemera report [NAME [--since DATE] [--csv]]` -------- */

/* argv[0] is "report". Returns the exit status. */
int report_command(struct config *, int argc, char **argv);

/* ---- deliver.c: `ephemera deliver EVENT FILE` --------------------------- */

int cmd_deliver(struct config *, const char *event, const char *path);

/* ---- manifest.c: the App manifest flow's pure parts -------------------- */

struct manifest_opts {
	const char *name;         /* the App's name, as GitHub shows it */
	const char *url;          /* its homepage */
	const char *webhook_url;  /* https://<control plane>/webhook */
	const char *redirect_url; /* our local /redirect */
};

/* What POST /app-manifests/{code}/conversions gives, once. */
struct app_credentials {
	int64_t id;
	char *slug, *html_url;
	char *pem, *webhook_secret; /* secrets: wiped by _free */
};

/* The manifest JSON: the README's permissions and events, nothing more. */
void manifest_render(const struct manifest_opts *, struct buf *out);
/* The page whose one button posts `manifest` to `action`. */
void manifest_page(const char *action, const char *manifest, struct buf *out);
/* The URL-decoded value of `key` in a query string; -1 when absent. */
int manifest_query_get(const char *query, const char *key, struct buf *out);
/* GitHub's temporary code: [A-Za-z0-9_-], at most 128 characters. */
bool manifest_code_valid(const char *code);
int manifest_conversion_parse(const char *json, size_t len,
                              struct app_credentials *, struct buf *err);
void app_credentials_free(struct app_credentials *);

/* ---- github_app.c: `ephemera github-app create` ------------------------- */

/* Runs before the configuration is loaded (it writes part of it). */
int github_app_command(const char *config_path, int argc, char **argv);

#endif
