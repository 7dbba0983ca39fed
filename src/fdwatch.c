/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fdwatch.c - a GSource on one file descriptor whose events can change
 *
 * g_unix_fd_add() fixes the events at creation, so changing between "read"
 * and "read and write" would destroy and recreate a source on every
 * buffer state change. This source keeps one poll record and updates it
 * with g_source_modify_unix_fd().
 */
#define G_LOG_DOMAIN "moat-fdwatch"

#include "fdwatch.h"

struct MoatFdWatch {
  GSource source;
  gpointer tag;
  GIOCondition events;
  MoatFdWatchFunc func;
  gpointer user_data;
};

static gboolean
fd_watch_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  MoatFdWatch *watch = (MoatFdWatch *) source;
  GIOCondition revents = g_source_query_unix_fd (source, watch->tag);

  if (revents != 0)
    watch->func (revents, watch->user_data);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs fd_watch_funcs = {
  .dispatch = fd_watch_dispatch,
};

/**
 * moat_fd_watch_new:
 * @fd: the descriptor, owned by the caller
 * @events: initial events (G_IO_IN, G_IO_OUT); errors are always reported
 * @func: called from the default main context when events occur
 * @user_data: passed to @func
 *
 * Return: the watch, attached to the default main context.
 */
MoatFdWatch *
moat_fd_watch_new (int fd, GIOCondition events, MoatFdWatchFunc func,
                   gpointer user_data)
{
  GSource *source = g_source_new (&fd_watch_funcs, sizeof (MoatFdWatch));
  MoatFdWatch *watch = (MoatFdWatch *) source;

  watch->events = events;
  watch->func = func;
  watch->user_data = user_data;
  watch->tag = g_source_add_unix_fd (source, fd,
                                     events | G_IO_ERR | G_IO_HUP);
  g_source_attach (source, NULL);
  return watch;
}

void
moat_fd_watch_set_events (MoatFdWatch *watch, GIOCondition events)
{
  if (watch->events == events)
    return;
  watch->events = events;
  g_source_modify_unix_fd ((GSource *) watch, watch->tag,
                           events | G_IO_ERR | G_IO_HUP);
}

GIOCondition
moat_fd_watch_get_events (const MoatFdWatch *watch)
{
  return watch->events;
}

/* Destroys the watch; safe to call from inside its own callback. */
void
moat_fd_watch_free (MoatFdWatch *watch)
{
  if (watch == NULL)
    return;
  g_source_destroy ((GSource *) watch);
  g_source_unref ((GSource *) watch);
}
