/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fdwatch.h - a GSource on one file descriptor whose events can change */
#pragma once

#include <glib.h>

typedef struct MoatFdWatch MoatFdWatch;

/* Called with the events that occurred; return value is ignored. */
typedef void (*MoatFdWatchFunc) (GIOCondition revents, gpointer user_data);

MoatFdWatch *moat_fd_watch_new (int fd, GIOCondition events,
                                MoatFdWatchFunc func, gpointer user_data);
void moat_fd_watch_set_events (MoatFdWatch *watch, GIOCondition events);
GIOCondition moat_fd_watch_get_events (const MoatFdWatch *watch);
void moat_fd_watch_free (MoatFdWatch *watch);
