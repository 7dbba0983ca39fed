/* SPDX-License-Identifier: GPL-2.0-or-later */
/* error.h - the GError domain shared by all moat modules */
#pragma once

#include <glib.h>

#define MOAT_ERROR (moat_error_quark ())

/**
 * MoatError:
 * @MOAT_ERROR_CONFIG: invalid configuration file or command line
 * @MOAT_ERROR_IO: a system call on a socket or file failed
 * @MOAT_ERROR_TLS: TLS handshake, certificate or key failure
 * @MOAT_ERROR_PROTOCOL: malformed input from the guest or an upstream
 * @MOAT_ERROR_LIMIT: input exceeded a limit from limits.h
 * @MOAT_ERROR_UPSTREAM: the upstream could not be reached or failed (502)
 * @MOAT_ERROR_TIMEOUT: an operation timed out (504 for upstreams)
 * @MOAT_ERROR_POLICY: the policy denied the operation
 */
typedef enum {
  MOAT_ERROR_CONFIG,
  MOAT_ERROR_IO,
  MOAT_ERROR_TLS,
  MOAT_ERROR_PROTOCOL,
  MOAT_ERROR_LIMIT,
  MOAT_ERROR_UPSTREAM,
  MOAT_ERROR_TIMEOUT,
  MOAT_ERROR_POLICY,
} MoatError;

GQuark moat_error_quark (void);
