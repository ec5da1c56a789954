/*
 * cli.h - the ops command's private header, sectioned by file.
 */
#ifndef EPHEMERA_CLI_H
#define EPHEMERA_CLI_H

#include "../lib/ephemera.h"

/* ---- jobs.c: `ephemera jobs list|show|retry|cancel` -------------------- */

/* argv[0] is "jobs". Returns the exit status. */
int jobs_command(struct config *, int argc, char **argv);

/* ---- deliver.c: `ephemera deliver EVENT FILE` --------------------------- */

int cmd_deliver(struct config *, const char *event, const char *path);

#endif
