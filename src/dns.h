/* SPDX-License-Identifier: GPL-2.0-or-later */
/* dns.h - DNS message codec for the queries moat answers itself */
#pragma once

#include <glib.h>
#include <netinet/in.h>

#include "moat-limits.h"

#define MOAT_DNS_TYPE_A 1
#define MOAT_DNS_TYPE_PTR 12
#define MOAT_DNS_TYPE_AAAA 28
#define MOAT_DNS_CLASS_IN 1

#define MOAT_DNS_RCODE_NOERROR 0
#define MOAT_DNS_RCODE_FORMERR 1
#define MOAT_DNS_RCODE_SERVFAIL 2
#define MOAT_DNS_RCODE_NXDOMAIN 3
#define MOAT_DNS_RCODE_NOTIMP 4
#define MOAT_DNS_RCODE_REFUSED 5

/**
 * MoatDnsQuery:
 * @id: message ID, copied to the response
 * @flags: header flags of the query (RD is copied to the response)
 * @name: question name in presentation format, lowercase, without the
 *   trailing dot
 * @qtype: question type
 * @qclass: question class
 * @question: the question section as received, copied to the response
 * @question_length: length of @question in bytes
 */
typedef struct {
  guint16 id;
  guint16 flags;
  char name[MOAT_DNS_NAME_MAX + 1];
  guint16 qtype;
  guint16 qclass;
  const guint8 *question;
  gsize question_length;
} MoatDnsQuery;

gboolean moat_dns_parse_query (const guint8 *message, gsize length,
                               MoatDnsQuery *query, GError **error);
gsize moat_dns_build_response (const MoatDnsQuery *query, guint rcode,
                               const struct in_addr *address, guint32 ttl,
                               guint8 *out, gsize out_size);
