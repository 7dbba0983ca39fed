/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fdwatch.c - a GSource on one file descriptor whose events can change
 *
 * g_unix_fd_add() fixes the events at creation, and
 * g_source_modify_unix_fd() wakes the main context on every change (GLib
 * 2.74), which makes the next poll() return at once. A flow changes its
 * events on almost every pass, so both would keep the loop spinning. This
 * source owns one GPollFD and changes its events in place: GLib copies
 * GPollFD.events into its poll set anew on every iteration, and every
 * change happens on the loop's own thread, between iterations.
 */
#define G_LOG_DOMAIN "moat-fdwatch"

#include "fdwatch.h"

struct MoatFdWatch {
  GSource source;
  GPollFD pollfd;
  GIOCondition events;
  MoatFdWatchFunc func;
  gpointer user_data;
};

static gboolean
fd_watch_check (GSource *source)
{
  MoatFdWatch *watch = (MoatFdWatch *) source;

  return (watch->pollfd.revents & watch->pollfd.events) != 0;
}

static gboolean
fd_watch_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  MoatFdWatch *watch = (MoatFdWatch *) source;
  GIOCondition revents = watch->pollfd.revents & watch->pollfd.events;

  watch->pollfd.revents = 0;
  if (revents != 0)
    watch->func (revents, watch->user_data);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs fd_watch_funcs = {
  .check = fd_watch_check,
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
  watch->pollfd.fd = fd;
  watch->pollfd.events = events | G_IO_ERR | G_IO_HUP;
  g_source_add_poll (source, &watch->pollfd);
  /* GLib removes the poll records of a source that cannot recurse while
   * dispatching it and adds them back afterwards, and each of the two
   * changes wakes the loop once more. moat runs no nested main loop. */
  g_source_set_can_recurse (source, TRUE);
  g_source_attach (source, NULL);
  return watch;
}

/* Changes the events; must be called from the thread that runs the
 * default main context. */
void
moat_fd_watch_set_events (MoatFdWatch *watch, GIOCondition events)
{
  watch->events = events;
  watch->pollfd.events = events | G_IO_ERR | G_IO_HUP;
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
