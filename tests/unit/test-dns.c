/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test-dns.c - tests of the DNS query parser and response builder */
#include <arpa/inet.h>
#include <string.h>

#include "dns.h"
#include "error.h"

/*
 * Decodes a message written as hex digits, with 'quoted text' copied as
 * ASCII. Spaces separate fields for readability and are skipped.
 */
static GByteArray *
bytes_from_spec (const char *spec)
{
  GByteArray *bytes = g_byte_array_new ();
  const char *p = spec;

  while (*p != '\0')
    {
      if (*p == ' ')
        {
          p++;
        }
      else if (*p == '\'')
        {
          const char *end = strchr (p + 1, '\'');

          g_assert_nonnull (end);
          g_byte_array_append (bytes, (const guint8 *) p + 1, end - p - 1);
          p = end + 1;
        }
      else
        {
          int high = g_ascii_xdigit_value (p[0]);
          int low = g_ascii_xdigit_value (p[1]);
          guint8 byte;

          g_assert_cmpint (high, >=, 0);
          g_assert_cmpint (low, >=, 0);
          byte = (guint8) (high << 4 | low);
          g_byte_array_append (bytes, &byte, 1);
          p += 2;
        }
    }
  return bytes;
}

/* Header of a query with ID 0xabcd, RD set and one question. */
#define QUERY_HEADER "abcd 0100 0001 0000 0000 0000 "
#define EXAMPLE_COM "07'example' 03'com' 00 "
#define TYPE_A_IN "0001 0001"
#define TYPE_AAAA_IN "001c 0001"
/* EDNS OPT: root name, type 41, UDP size 1232, TTL 0, no options. */
#define OPT_RECORD " 00 0029 04d0 00000000 0000"

typedef struct {
  const char *description;
  const char *spec;
  const char *name;
  guint16 qtype;
  /* For rejected messages: a substring of the error message. */
  const char *error;
} ParseCase;

static const ParseCase parse_cases[] = {
  { "simple A query", QUERY_HEADER EXAMPLE_COM TYPE_A_IN,
    "example.com", MOAT_DNS_TYPE_A, NULL },
  { "AAAA query", QUERY_HEADER EXAMPLE_COM TYPE_AAAA_IN,
    "example.com", MOAT_DNS_TYPE_AAAA, NULL },
  { "mixed case is lowered", QUERY_HEADER "03'WwW' 07'ExAmPlE' 03'COM' 00 "
    TYPE_A_IN, "www.example.com", MOAT_DNS_TYPE_A, NULL },
  { "root name", QUERY_HEADER "00 0002 0001", "", 2, NULL },
  { "EDNS OPT record",
    "abcd 0100 0001 0000 0000 0001 " EXAMPLE_COM TYPE_A_IN OPT_RECORD,
    "example.com", MOAT_DNS_TYPE_A, NULL },
  { "EDNS OPT with a cookie option",
    "abcd 0100 0001 0000 0000 0001 " EXAMPLE_COM TYPE_A_IN
    " 00 0029 04d0 00000000 000c 000a 0008 0102030405060708",
    "example.com", MOAT_DNS_TYPE_A, NULL },
  { "hyphen, digits and underscore", QUERY_HEADER "04'_srv' 05'a-1b2' 00 "
    TYPE_A_IN, "_srv.a-1b2", MOAT_DNS_TYPE_A, NULL },

  { "empty message", "", NULL, 0, "shorter than the 12-byte header" },
  { "response bit set", "abcd 8100 0001 0000 0000 0000 " EXAMPLE_COM TYPE_A_IN,
    NULL, 0, "QR bit" },
  { "opcode 2 (status)", "abcd 1100 0001 0000 0000 0000 " EXAMPLE_COM
    TYPE_A_IN, NULL, 0, "opcode 2" },
  { "QDCOUNT 0", "abcd 0100 0000 0000 0000 0000", NULL, 0, "QDCOUNT" },
  { "QDCOUNT 2", "abcd 0100 0002 0000 0000 0000 " EXAMPLE_COM TYPE_A_IN " "
    EXAMPLE_COM TYPE_A_IN, NULL, 0, "QDCOUNT at offset 4 is 2" },
  { "ANCOUNT 1", "abcd 0100 0001 0001 0000 0000 " EXAMPLE_COM TYPE_A_IN,
    NULL, 0, "ANCOUNT 1" },
  { "NSCOUNT 1", "abcd 0100 0001 0000 0001 0000 " EXAMPLE_COM TYPE_A_IN,
    NULL, 0, "NSCOUNT 1" },
  { "ARCOUNT 2", "abcd 0100 0001 0000 0000 0002 " EXAMPLE_COM TYPE_A_IN
    OPT_RECORD OPT_RECORD, NULL, 0, "ARCOUNT at offset 10 is 2" },
  { "compression pointer", QUERY_HEADER "03'www' c00c " TYPE_A_IN,
    NULL, 0, "compression pointer 0xc00c at offset 16" },
  { "reserved label type 0x40", QUERY_HEADER "41 " TYPE_A_IN,
    NULL, 0, "label length 65 at offset 12" },
  { "dot inside a label", QUERY_HEADER "03'a.b' 00 " TYPE_A_IN,
    NULL, 0, "byte 0x2e at offset 14" },
  { "NUL inside a label", QUERY_HEADER "03 610062 00 " TYPE_A_IN,
    NULL, 0, "byte 0x00 at offset 14" },
  { "control character", QUERY_HEADER "02 610a 00 " TYPE_A_IN,
    NULL, 0, "byte 0x0a at offset 14" },
  { "space inside a label", QUERY_HEADER "03'a b' 00 " TYPE_A_IN,
    NULL, 0, "byte 0x20 at offset 14" },
  { "byte above ASCII", QUERY_HEADER "02 61c3 00 " TYPE_A_IN,
    NULL, 0, "byte 0xc3 at offset 14" },
  { "trailing bytes", QUERY_HEADER EXAMPLE_COM TYPE_A_IN " 00",
    NULL, 0, "1 unexpected bytes after the question at offset 29" },
  { "additional record not OPT",
    "abcd 0100 0001 0000 0000 0001 " EXAMPLE_COM TYPE_A_IN
    " 00 00fa 00ff 00000000 0000", NULL, 0, "has type 250, expected OPT" },
  { "additional record with a name",
    "abcd 0100 0001 0000 0000 0001 " EXAMPLE_COM TYPE_A_IN
    " 01'a' 00 0029 04d0 00000000 0000", NULL, 0, "name is not the root" },
  { "OPT RDLENGTH past the end",
    "abcd 0100 0001 0000 0000 0001 " EXAMPLE_COM TYPE_A_IN
    " 00 0029 04d0 00000000 0004 0001", NULL, 0, "RDLENGTH is 4 but 2 bytes" },
  { "bytes after the OPT record",
    "abcd 0100 0001 0000 0000 0001 " EXAMPLE_COM TYPE_A_IN OPT_RECORD " 00",
    NULL, 0, "RDLENGTH is 0 but 1 bytes" },
};

static void
test_parse_table (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (parse_cases); i++)
    {
      const ParseCase *c = &parse_cases[i];
      g_autoptr (GByteArray) message = bytes_from_spec (c->spec);
      g_autoptr (GError) error = NULL;
      MoatDnsQuery query;
      gboolean ok;

      g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, c->description);
      ok = moat_dns_parse_query (message->data, message->len, &query, &error);

      if (c->error == NULL)
        {
          g_assert_no_error (error);
          g_assert_true (ok);
          g_assert_cmpstr (query.name, ==, c->name);
          g_assert_cmpuint (query.qtype, ==, c->qtype);
          g_assert_cmpuint (query.qclass, ==, MOAT_DNS_CLASS_IN);
          g_assert_cmpuint (query.id, ==, 0xabcd);
        }
      else
        {
          g_assert_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL);
          g_assert_false (ok);
          g_assert_nonnull (strstr (error->message, c->error));
        }
    }
}

static void
test_parse_question_span (void)
{
  g_autoptr (GByteArray) message = bytes_from_spec (
    "1234 0000 0001 0000 0000 0001 " EXAMPLE_COM TYPE_AAAA_IN OPT_RECORD);
  g_autoptr (GError) error = NULL;
  MoatDnsQuery query;

  g_assert_true (moat_dns_parse_query (message->data, message->len, &query,
                                       &error));
  g_assert_no_error (error);
  g_assert_cmpuint (query.id, ==, 0x1234);
  g_assert_cmpuint (query.flags, ==, 0);
  /* The question is the name (13 bytes) plus type and class. */
  g_assert_true (query.question == message->data + 12);
  g_assert_cmpuint (query.question_length, ==, 13 + 4);
}

/* Appends labels of the given lengths, filled with 'a', then the root. */
static GByteArray *
query_with_labels (const guint *label_lengths, gsize count)
{
  g_autoptr (GByteArray) message = bytes_from_spec (QUERY_HEADER);
  g_autoptr (GByteArray) tail = bytes_from_spec ("00 " TYPE_A_IN);

  for (gsize i = 0; i < count; i++)
    {
      guint8 length = (guint8) label_lengths[i];
      guint8 label[63];

      g_assert_cmpuint (label_lengths[i], <=, sizeof (label) + 1);
      memset (label, 'a', sizeof (label));
      g_byte_array_append (message, &length, 1);
      /* A 64-byte label is written as 63 bytes plus one 'b'. */
      g_byte_array_append (message, label, MIN (length, sizeof (label)));
      if (length > sizeof (label))
        g_byte_array_append (message, (const guint8 *) "b", 1);
    }
  g_byte_array_append (message, tail->data, tail->len);
  return g_steal_pointer (&message);
}

static void
test_parse_label_63 (void)
{
  const guint lengths[] = { 63, 3 };
  g_autoptr (GByteArray) message = query_with_labels (lengths, 2);
  g_autoptr (GError) error = NULL;
  MoatDnsQuery query;

  g_assert_true (moat_dns_parse_query (message->data, message->len, &query,
                                       &error));
  g_assert_no_error (error);
  g_assert_cmpuint (strlen (query.name), ==, 63 + 1 + 3);
}

static void
test_parse_label_64 (void)
{
  const guint lengths[] = { 64, 3 };
  g_autoptr (GByteArray) message = query_with_labels (lengths, 2);
  g_autoptr (GError) error = NULL;
  MoatDnsQuery query;

  g_assert_false (moat_dns_parse_query (message->data, message->len, &query,
                                        &error));
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL);
  g_assert_nonnull (strstr (error->message, "label length 64 at offset 12"));
}

static void
test_parse_name_253 (void)
{
  /* 63 * 3 + 61 characters of labels and 3 dots: 253 characters. */
  const guint lengths[] = { 63, 63, 63, 61 };
  g_autoptr (GByteArray) message = query_with_labels (lengths, 4);
  g_autoptr (GError) error = NULL;
  MoatDnsQuery query;

  g_assert_true (moat_dns_parse_query (message->data, message->len, &query,
                                       &error));
  g_assert_no_error (error);
  g_assert_cmpuint (strlen (query.name), ==, 253);
  g_assert_cmpuint (query.question_length, ==, 255 + 4);
}

static void
test_parse_name_254 (void)
{
  const guint lengths[] = { 63, 63, 63, 62 };
  g_autoptr (GByteArray) message = query_with_labels (lengths, 4);
  g_autoptr (GError) error = NULL;
  MoatDnsQuery query;

  g_assert_false (moat_dns_parse_query (message->data, message->len, &query,
                                        &error));
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL);
  g_assert_nonnull (strstr (error->message, "exceeds 253 characters"));
}

static void
test_parse_many_short_labels (void)
{
  /* 127 one-byte labels make 253 characters, 128 make 255. */
  guint lengths[128];

  for (gsize i = 0; i < G_N_ELEMENTS (lengths); i++)
    lengths[i] = 1;

  for (gsize count = 127; count <= 128; count++)
    {
      g_autoptr (GByteArray) message = query_with_labels (lengths, count);
      g_autoptr (GError) error = NULL;
      MoatDnsQuery query;
      gboolean ok;

      ok = moat_dns_parse_query (message->data, message->len, &query, &error);
      if (count == 127)
        {
          g_assert_no_error (error);
          g_assert_true (ok);
          g_assert_cmpuint (strlen (query.name), ==, 253);
        }
      else
        {
          g_assert_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL);
          g_assert_false (ok);
        }
    }
}

static void
test_parse_truncated (void)
{
  const char *specs[] = {
    QUERY_HEADER EXAMPLE_COM TYPE_A_IN,
    "abcd 0100 0001 0000 0000 0001 " EXAMPLE_COM TYPE_A_IN
    " 00 0029 04d0 00000000 000c 000a 0008 0102030405060708",
  };

  for (gsize s = 0; s < G_N_ELEMENTS (specs); s++)
    {
      g_autoptr (GByteArray) message = bytes_from_spec (specs[s]);
      MoatDnsQuery query;

      g_assert_true (moat_dns_parse_query (message->data, message->len,
                                           &query, NULL));

      for (gsize length = 0; length < message->len; length++)
        {
          /* A copy of exactly @length bytes lets sanitizers catch reads
           * past the end. */
          g_autofree guint8 *prefix = g_memdup2 (message->data, length);
          g_autoptr (GError) error = NULL;

          g_test_message ("message %" G_GSIZE_FORMAT " truncated to %"
                          G_GSIZE_FORMAT " bytes", s, length);
          g_assert_false (moat_dns_parse_query (prefix, length, &query,
                                                &error));
          g_assert_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL);
        }
    }
}

static MoatDnsQuery
parse_or_fail (GByteArray *message)
{
  g_autoptr (GError) error = NULL;
  MoatDnsQuery query;

  g_assert_true (moat_dns_parse_query (message->data, message->len, &query,
                                       &error));
  g_assert_no_error (error);
  return query;
}

static void
assert_bytes_equal (const guint8 *actual, gsize actual_length,
                    const GByteArray *expected)
{
  g_assert_cmpmem (actual, actual_length, expected->data, expected->len);
}

static void
test_build_a_answer (void)
{
  g_autoptr (GByteArray) message = bytes_from_spec (
    QUERY_HEADER EXAMPLE_COM TYPE_A_IN);
  g_autoptr (GByteArray) expected = bytes_from_spec (
    /* ID, QR AA RD, QDCOUNT 1, ANCOUNT 1, NSCOUNT 0, ARCOUNT 0 */
    "abcd 8500 0001 0001 0000 0000 "
    EXAMPLE_COM TYPE_A_IN
    /* pointer to offset 12, A, IN, TTL 60, RDLENGTH 4, 10.0.2.100 */
    " c00c 0001 0001 0000003c 0004 0a000264");
  MoatDnsQuery query = parse_or_fail (message);
  struct in_addr address;
  guint8 out[MOAT_DNS_UDP_MAX];
  gsize length;

  g_assert_cmpint (inet_pton (AF_INET, "10.0.2.100", &address), ==, 1);
  length = moat_dns_build_response (&query, MOAT_DNS_RCODE_NOERROR, &address,
                                    60, out, sizeof (out));
  assert_bytes_equal (out, length, expected);
}

static void
test_build_a_answer_rd_clear (void)
{
  /* Mixed case in the question is copied as received (RFC 4343). */
  g_autoptr (GByteArray) message = bytes_from_spec (
    "0102 0000 0001 0000 0000 0001 01'X' 00 " TYPE_A_IN OPT_RECORD);
  g_autoptr (GByteArray) expected = bytes_from_spec (
    "0102 8400 0001 0001 0000 0000 01'X' 00 " TYPE_A_IN
    " c00c 0001 0001 00015180 0004 0a000241");
  MoatDnsQuery query = parse_or_fail (message);
  struct in_addr address;
  guint8 out[MOAT_DNS_UDP_MAX];
  gsize length;

  g_assert_cmpint (inet_pton (AF_INET, "10.0.2.65", &address), ==, 1);
  length = moat_dns_build_response (&query, MOAT_DNS_RCODE_NOERROR, &address,
                                    86400, out, sizeof (out));
  assert_bytes_equal (out, length, expected);
}

static void
test_build_aaaa_empty (void)
{
  g_autoptr (GByteArray) message = bytes_from_spec (
    QUERY_HEADER EXAMPLE_COM TYPE_AAAA_IN);
  g_autoptr (GByteArray) expected = bytes_from_spec (
    "abcd 8500 0001 0000 0000 0000 " EXAMPLE_COM TYPE_AAAA_IN);
  MoatDnsQuery query = parse_or_fail (message);
  struct in_addr address = { .s_addr = htonl (0x0a000264) };
  guint8 out[MOAT_DNS_UDP_MAX];
  gsize length;

  /* An address passed for a non-A query must not produce an A record. */
  length = moat_dns_build_response (&query, MOAT_DNS_RCODE_NOERROR, &address,
                                    60, out, sizeof (out));
  assert_bytes_equal (out, length, expected);

  length = moat_dns_build_response (&query, MOAT_DNS_RCODE_NOERROR, NULL,
                                    60, out, sizeof (out));
  assert_bytes_equal (out, length, expected);
}

static void
test_build_nxdomain (void)
{
  g_autoptr (GByteArray) message = bytes_from_spec (
    QUERY_HEADER EXAMPLE_COM TYPE_A_IN);
  g_autoptr (GByteArray) expected = bytes_from_spec (
    "abcd 8503 0001 0000 0000 0000 " EXAMPLE_COM TYPE_A_IN);
  MoatDnsQuery query = parse_or_fail (message);
  guint8 out[MOAT_DNS_UDP_MAX];
  gsize length;

  length = moat_dns_build_response (&query, MOAT_DNS_RCODE_NXDOMAIN, NULL,
                                    60, out, sizeof (out));
  assert_bytes_equal (out, length, expected);
}

static void
test_build_buffer_too_small (void)
{
  g_autoptr (GByteArray) message = bytes_from_spec (
    QUERY_HEADER EXAMPLE_COM TYPE_A_IN);
  MoatDnsQuery query = parse_or_fail (message);
  struct in_addr address = { .s_addr = htonl (0x0a000264) };
  guint8 out[64];
  /* Header 12, question 17, answer 16. */
  const gsize needed = 12 + 17 + 16;

  for (gsize size = 0; size <= needed; size++)
    {
      gsize length;

      memset (out, 0xa5, sizeof (out));
      length = moat_dns_build_response (&query, MOAT_DNS_RCODE_NOERROR,
                                        &address, 60, out, size);
      if (size < needed)
        g_assert_cmpuint (length, ==, 0);
      else
        g_assert_cmpuint (length, ==, needed);

      for (gsize i = size; i < sizeof (out); i++)
        g_assert_cmphex (out[i], ==, 0xa5);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/dns/parse/table", test_parse_table);
  g_test_add_func ("/dns/parse/question-span", test_parse_question_span);
  g_test_add_func ("/dns/parse/label-63", test_parse_label_63);
  g_test_add_func ("/dns/parse/label-64", test_parse_label_64);
  g_test_add_func ("/dns/parse/name-253", test_parse_name_253);
  g_test_add_func ("/dns/parse/name-254", test_parse_name_254);
  g_test_add_func ("/dns/parse/many-short-labels",
                   test_parse_many_short_labels);
  g_test_add_func ("/dns/parse/truncated", test_parse_truncated);
  g_test_add_func ("/dns/build/a-answer", test_build_a_answer);
  g_test_add_func ("/dns/build/a-answer-rd-clear",
                   test_build_a_answer_rd_clear);
  g_test_add_func ("/dns/build/aaaa-empty", test_build_aaaa_empty);
  g_test_add_func ("/dns/build/nxdomain", test_build_nxdomain);
  g_test_add_func ("/dns/build/buffer-too-small", test_build_buffer_too_small);

  return g_test_run ();
}
