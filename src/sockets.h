/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sockets.h - socket calls that differ between Linux and macOS: descriptor
 * flags set at creation on Linux, with fcntl() elsewhere
 */
#pragma once

#include <glib.h>
#include <sys/socket.h>

/* macOS has no MSG_NOSIGNAL; main() ignores SIGPIPE for the whole process,
 * so plain send() is safe there. */
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

int moat_socket_new (int domain, int type, int protocol, gboolean nonblocking);
int moat_socket_accept (int listen_fd);
gboolean moat_fd_set_flags (int fd, gboolean nonblocking);
