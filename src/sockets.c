/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sockets.c - socket calls that differ between Linux and macOS: descriptor
 * flags set at creation on Linux, with fcntl() elsewhere
 */
#define G_LOG_DOMAIN "moat-sockets"

#include "sockets.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/**
 * moat_fd_set_flags:
 * @fd: a descriptor
 * @nonblocking: also set O_NONBLOCK
 *
 * Sets FD_CLOEXEC, so that no descriptor leaks into a command that
 * `moat run` executes, and optionally O_NONBLOCK.
 *
 * Return: %TRUE on success, %FALSE with errno set.
 */
gboolean
moat_fd_set_flags (int fd, gboolean nonblocking)
{
  int flags;

  if (fcntl (fd, F_SETFD, FD_CLOEXEC) < 0)
    return FALSE;
  if (!nonblocking)
    return TRUE;
  flags = fcntl (fd, F_GETFL);
  return flags >= 0 && fcntl (fd, F_SETFL, flags | O_NONBLOCK) >= 0;
}

/**
 * moat_socket_new:
 * @domain: as for socket()
 * @type: as for socket(), without SOCK_NONBLOCK or SOCK_CLOEXEC
 * @protocol: as for socket()
 * @nonblocking: make the socket non-blocking
 *
 * Return: a close-on-exec socket, or -1 with errno set.
 */
int
moat_socket_new (int domain, int type, int protocol, gboolean nonblocking)
{
  int fd;

#if defined(SOCK_CLOEXEC) && defined(SOCK_NONBLOCK)
  fd = socket (domain, type | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0),
               protocol);
#else
  fd = socket (domain, type, protocol);
  if (fd >= 0 && !moat_fd_set_flags (fd, nonblocking))
    {
      int saved_errno = errno;

      close (fd);
      errno = saved_errno;
      return -1;
    }
#endif
  return fd;
}

/**
 * moat_socket_accept:
 * @listen_fd: a listening socket
 *
 * Return: a non-blocking, close-on-exec connection, or -1 with errno set
 *   (EAGAIN when none is pending).
 */
int
moat_socket_accept (int listen_fd)
{
  int fd;

#ifdef HAVE_ACCEPT4
  fd = accept4 (listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
  fd = accept (listen_fd, NULL, NULL);
  if (fd >= 0 && !moat_fd_set_flags (fd, TRUE))
    {
      int saved_errno = errno;

      close (fd);
      errno = saved_errno;
      return -1;
    }
#endif
  return fd;
}
