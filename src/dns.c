/* SPDX-License-Identifier: GPL-2.0-or-later */
/* dns.c - DNS message codec for the queries moat answers itself */
#define G_LOG_DOMAIN "moat-dns"

#include "dns.h"

#include <string.h>

#include "error.h"

/* RFC 1035 section 4.1.1: header layout and flag bits. */
#define DNS_HEADER_LEN 12
#define DNS_FLAG_QR 0x8000
#define DNS_FLAG_AA 0x0400
#define DNS_FLAG_RD 0x0100
#define DNS_OPCODE_SHIFT 11
#define DNS_OPCODE_MASK 0xf
#define DNS_RCODE_MASK 0xf

/* RFC 1035 section 4.1.4: the top two bits of a length byte. */
#define DNS_LABEL_TYPE_MASK 0xc0
#define DNS_LABEL_POINTER 0xc0
#define DNS_LABEL_MAX 63

/* RFC 6891 section 6.1.2: the EDNS pseudo-record type. */
#define DNS_TYPE_OPT 41

/* Fixed part of a resource record after its name: type, class, TTL, RDLENGTH. */
#define DNS_RR_FIXED_LEN 10
/* The answer's name: a pointer to offset 12, where the question name starts. */
#define DNS_POINTER_TO_QUESTION 0xc00c
#define DNS_A_RDATA_LEN 4

static guint16
read_u16 (const guint8 *p)
{
  return (guint16) ((p[0] << 8) | p[1]);
}

static void
write_u16 (guint8 *p, guint16 value)
{
  p[0] = value >> 8;
  p[1] = value & 0xff;
}

static void
write_u32 (guint8 *p, guint32 value)
{
  p[0] = value >> 24;
  p[1] = (value >> 16) & 0xff;
  p[2] = (value >> 8) & 0xff;
  p[3] = value & 0xff;
}

/*
 * Printable ASCII except '.', which would change the label boundaries when
 * the name is read back in presentation form. Space is rejected too, because
 * it has no place in a host name and would split the name in logs.
 */
static gboolean
is_label_byte (guint8 c)
{
  return c > 0x20 && c < 0x7f && c != '.';
}

/**
 * parse_question_name:
 * @message: the whole message
 * @length: length of @message in bytes
 * @offset: (inout): offset of the name's first length byte, then of the byte
 *   after the terminating zero length byte
 * @name: (out caller-allocates): lowercase presentation form, without the
 *   trailing dot, of at most %MOAT_DNS_NAME_MAX characters
 * @error: return location for a MOAT_ERROR_PROTOCOL error
 *
 * Decodes an uncompressed name (RFC 1035 section 3.1).
 *
 * Return: %TRUE if a valid name was read.
 */
static gboolean
parse_question_name (const guint8 *message, gsize length, gsize *offset,
                     char name[MOAT_DNS_NAME_MAX + 1], GError **error)
{
  gsize pos = *offset;
  gsize name_length = 0;

  for (;;)
    {
      guint8 label_length;

      if (pos >= length)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                       "DNS query truncated: the question name has no "
                       "terminating zero length at offset %" G_GSIZE_FORMAT,
                       pos);
          return FALSE;
        }

      label_length = message[pos];
      if (label_length == 0)
        break;

      if ((label_length & DNS_LABEL_TYPE_MASK) == DNS_LABEL_POINTER)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                       "invalid DNS query: compression pointer 0x%02x%02x at "
                       "offset %" G_GSIZE_FORMAT " in the question, which has "
                       "no earlier name to point to",
                       label_length, pos + 1 < length ? message[pos + 1] : 0,
                       pos);
          return FALSE;
        }
      if (label_length > DNS_LABEL_MAX)
        {
          /* Also rejects the length bytes 0x40-0xbf, whose top bits 01 and
           * 10 are reserved label types (RFC 1035 section 4.1.4). */
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                       "invalid DNS query: label length %u at offset %"
                       G_GSIZE_FORMAT " exceeds the maximum of %d bytes",
                       label_length, pos, DNS_LABEL_MAX);
          return FALSE;
        }

      /* A dot separates this label from the previous one. */
      if (name_length + (name_length > 0) + label_length > MOAT_DNS_NAME_MAX)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                       "invalid DNS query: the question name exceeds %d "
                       "characters at the label at offset %" G_GSIZE_FORMAT,
                       MOAT_DNS_NAME_MAX, pos);
          return FALSE;
        }
      if (label_length > length - pos - 1)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                       "DNS query truncated: the label at offset %"
                       G_GSIZE_FORMAT " has %u bytes but the message ends "
                       "after %" G_GSIZE_FORMAT,
                       pos, label_length, length - pos - 1);
          return FALSE;
        }
      pos++;

      if (name_length > 0)
        name[name_length++] = '.';
      for (guint i = 0; i < label_length; i++, pos++)
        {
          guint8 c = message[pos];

          if (!is_label_byte (c))
            {
              g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                           "invalid DNS query: byte 0x%02x at offset %"
                           G_GSIZE_FORMAT " is not allowed in a name, which "
                           "takes printable ASCII other than '.' and space",
                           c, pos);
              return FALSE;
            }
          name[name_length++] = g_ascii_tolower (c);
        }
    }

  name[name_length] = '\0';
  *offset = pos + 1;
  return TRUE;
}

/**
 * parse_opt_record:
 * @message: the whole message
 * @length: length of @message in bytes
 * @offset: offset of the additional record
 * @error: return location for a MOAT_ERROR_PROTOCOL error
 *
 * Checks that the one additional record of a query is an EDNS OPT record
 * (RFC 6891 section 6.1.2) that ends exactly at the end of the message. Its
 * content (UDP payload size, options) is ignored: moat answers in at most
 * %MOAT_DNS_UDP_MAX bytes, which every client accepts.
 *
 * Return: %TRUE if the record is a well-formed OPT record.
 */
static gboolean
parse_opt_record (const guint8 *message, gsize length, gsize offset,
                  GError **error)
{
  guint16 type;
  guint16 rdata_length;

  /* The OPT record's owner name is the root: a single zero byte. */
  if (offset >= length)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "DNS query truncated: ARCOUNT is 1 but the message ends "
                   "at offset %" G_GSIZE_FORMAT " before the additional record",
                   offset);
      return FALSE;
    }
  if (message[offset] != 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "invalid DNS query: the additional record at offset %"
                   G_GSIZE_FORMAT " is not an EDNS OPT record (its name is "
                   "not the root)", offset);
      return FALSE;
    }
  offset++;

  if (length - offset < DNS_RR_FIXED_LEN)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "DNS query truncated: the OPT record at offset %"
                   G_GSIZE_FORMAT " needs %d bytes after its name, %"
                   G_GSIZE_FORMAT " remain",
                   offset - 1, DNS_RR_FIXED_LEN, length - offset);
      return FALSE;
    }
  type = read_u16 (message + offset);
  if (type != DNS_TYPE_OPT)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "invalid DNS query: the additional record at offset %"
                   G_GSIZE_FORMAT " has type %u, expected OPT (%d)",
                   offset - 1, type, DNS_TYPE_OPT);
      return FALSE;
    }
  /* Skip type, class (UDP payload size) and TTL (extended RCODE, flags). */
  rdata_length = read_u16 (message + offset + 8);
  offset += DNS_RR_FIXED_LEN;

  if (rdata_length != length - offset)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "invalid DNS query: the OPT record's RDLENGTH is %u but %"
                   G_GSIZE_FORMAT " bytes follow at offset %" G_GSIZE_FORMAT,
                   rdata_length, length - offset, offset);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_header (const guint8 *message, gsize length, GError **error)
{
  guint16 flags;
  guint opcode;
  guint16 qdcount, ancount, nscount, arcount;

  if (length < DNS_HEADER_LEN)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "DNS query truncated: %" G_GSIZE_FORMAT " bytes is shorter "
                   "than the %d-byte header", length, DNS_HEADER_LEN);
      return FALSE;
    }

  flags = read_u16 (message + 2);
  if (flags & DNS_FLAG_QR)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "invalid DNS query: the QR bit at offset 2 is set, so the "
                   "message is a response");
      return FALSE;
    }
  opcode = (flags >> DNS_OPCODE_SHIFT) & DNS_OPCODE_MASK;
  if (opcode != 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "invalid DNS query: opcode %u at offset 2, only standard "
                   "queries (opcode 0) are answered", opcode);
      return FALSE;
    }

  qdcount = read_u16 (message + 4);
  ancount = read_u16 (message + 6);
  nscount = read_u16 (message + 8);
  arcount = read_u16 (message + 10);
  if (qdcount != 1)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "invalid DNS query: QDCOUNT at offset 4 is %u, expected 1",
                   qdcount);
      return FALSE;
    }
  if (ancount != 0 || nscount != 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "invalid DNS query: ANCOUNT %u and NSCOUNT %u at offset 6 "
                   "must both be 0 in a query", ancount, nscount);
      return FALSE;
    }
  if (arcount > 1)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "invalid DNS query: ARCOUNT at offset 10 is %u, expected "
                   "0 or 1 (an EDNS OPT record)", arcount);
      return FALSE;
    }
  return TRUE;
}

/**
 * moat_dns_parse_query:
 * @message: a DNS message as received in one UDP datagram
 * @length: length of @message in bytes
 * @query: (out caller-allocates): the parsed query. Its @question points
 *   into @message, which must outlive it.
 * @error: return location for a MOAT_ERROR_PROTOCOL error
 *
 * Parses a standard query with one question (RFC 1035 section 4.1) and an
 * optional EDNS OPT record, which is checked but otherwise ignored. Trailing
 * bytes after the last record are rejected.
 *
 * Return: %TRUE if @message is a query moat can answer.
 */
gboolean
moat_dns_parse_query (const guint8 *message, gsize length,
                      MoatDnsQuery *query, GError **error)
{
  gsize offset = DNS_HEADER_LEN;
  gsize question_start = DNS_HEADER_LEN;

  g_return_val_if_fail (message != NULL || length == 0, FALSE);
  g_return_val_if_fail (query != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  memset (query, 0, sizeof (*query));

  if (!check_header (message, length, error))
    return FALSE;

  if (!parse_question_name (message, length, &offset, query->name, error))
    return FALSE;

  /* QTYPE and QCLASS follow the name (RFC 1035 section 4.1.2). */
  if (length - offset < 4)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "DNS query truncated: QTYPE and QCLASS at offset %"
                   G_GSIZE_FORMAT " need 4 bytes, %" G_GSIZE_FORMAT " remain",
                   offset, length - offset);
      return FALSE;
    }
  query->qtype = read_u16 (message + offset);
  query->qclass = read_u16 (message + offset + 2);
  offset += 4;

  query->id = read_u16 (message);
  query->flags = read_u16 (message + 2);
  query->question = message + question_start;
  query->question_length = offset - question_start;

  if (read_u16 (message + 10) == 1)
    return parse_opt_record (message, length, offset, error);

  if (offset != length)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "invalid DNS query: %" G_GSIZE_FORMAT " unexpected bytes "
                   "after the question at offset %" G_GSIZE_FORMAT,
                   length - offset, offset);
      return FALSE;
    }
  return TRUE;
}

/**
 * moat_dns_build_response:
 * @query: the query to answer, as filled by moat_dns_parse_query()
 * @rcode: response code, one of the MOAT_DNS_RCODE_ values
 * @address: (nullable): address for an A answer, or %NULL for no answer
 * @ttl: TTL of the answer in seconds
 * @out: buffer for the response
 * @out_size: size of @out in bytes
 *
 * Builds an authoritative response (AA set, RA clear, RD copied) that
 * repeats the question. An A record for @address is added only when
 * @address is non-NULL and the query's type is A. Which rcode and address
 * to send is the caller's decision.
 *
 * Return: the length of the response, or 0 if it does not fit in @out_size
 *   bytes. Nothing is written past @out_size.
 */
gsize
moat_dns_build_response (const MoatDnsQuery *query, guint rcode,
                         const struct in_addr *address, guint32 ttl,
                         guint8 *out, gsize out_size)
{
  gboolean answer;
  gsize length;
  guint16 flags;

  g_return_val_if_fail (query != NULL, 0);
  g_return_val_if_fail (query->question != NULL, 0);
  g_return_val_if_fail (rcode <= DNS_RCODE_MASK, 0);
  g_return_val_if_fail (out != NULL || out_size == 0, 0);

  answer = address != NULL && query->qtype == MOAT_DNS_TYPE_A;

  length = DNS_HEADER_LEN + query->question_length;
  if (answer)
    length += 2 + DNS_RR_FIXED_LEN + DNS_A_RDATA_LEN;
  if (length > out_size)
    return 0;

  flags = DNS_FLAG_QR | DNS_FLAG_AA | (query->flags & DNS_FLAG_RD) | rcode;
  write_u16 (out, query->id);
  write_u16 (out + 2, flags);
  write_u16 (out + 4, 1);
  write_u16 (out + 6, answer ? 1 : 0);
  write_u16 (out + 8, 0);
  write_u16 (out + 10, 0);
  memcpy (out + DNS_HEADER_LEN, query->question, query->question_length);

  if (answer)
    {
      guint8 *rr = out + DNS_HEADER_LEN + query->question_length;

      write_u16 (rr, DNS_POINTER_TO_QUESTION);
      write_u16 (rr + 2, MOAT_DNS_TYPE_A);
      write_u16 (rr + 4, MOAT_DNS_CLASS_IN);
      write_u32 (rr + 6, ttl);
      write_u16 (rr + 10, DNS_A_RDATA_LEN);
      /* s_addr is already in network byte order. */
      memcpy (rr + 12, &address->s_addr, DNS_A_RDATA_LEN);
    }

  return length;
}
