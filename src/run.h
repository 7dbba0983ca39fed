/* SPDX-License-Identifier: GPL-2.0-or-later */
/* run.h - moat run: one command in a network namespace behind moat */
#pragma once

#include <glib.h>

/* Exit status of moat run when moat itself fails, as with env(1) and
 * timeout(1); COMMAND's own status passes through otherwise. */
#define MOAT_RUN_EXIT_FAILURE 125
/* COMMAND was found but could not be executed. */
#define MOAT_RUN_EXIT_CANNOT_EXECUTE 126
/* COMMAND was not found. */
#define MOAT_RUN_EXIT_NOT_FOUND 127

int moat_run_main (int argc, char **argv);
void moat_log_init (gboolean verbose, gboolean hide_messages);
