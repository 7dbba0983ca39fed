/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test-dhcp.c - tests of moat's DHCP server */
#include <arpa/inet.h>
#include <string.h>

#include "dhcp.h"
#include "error.h"

/* Option codes and message types as the RFC numbers them, written out here
 * so that the tests do not share the server's definitions. */
#define OPT_PAD 0
#define OPT_SUBNET_MASK 1
#define OPT_ROUTER 3
#define OPT_DNS 6
#define OPT_DOMAIN_NAME 15
#define OPT_MTU 26
#define OPT_REQUESTED_ADDRESS 50
#define OPT_LEASE_TIME 51
#define OPT_OVERLOAD 52
#define OPT_MESSAGE_TYPE 53
#define OPT_SERVER_ID 54
#define OPT_MESSAGE 56
#define OPT_MAX_MESSAGE_SIZE 57
#define OPT_CLIENT_ID 61
#define OPT_DOMAIN_SEARCH 119
#define OPT_END 255

#define DISCOVER 1
#define OFFER 2
#define REQUEST 3
#define DECLINE 4
#define ACK 5
#define NAK 6
#define RELEASE 7
#define INFORM 8

#define GUEST "10.0.2.15"
#define GATEWAY "10.0.2.2"
#define OTHER_ADDRESS "10.0.2.99"

static const guint8 client_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static struct in_addr
address (const char *text)
{
  struct in_addr result;

  g_assert_cmpint (inet_pton (AF_INET, text, &result), ==, 1);
  return result;
}

static MoatDhcpConfig
default_config (void)
{
  MoatDhcpConfig config = {
    .guest = address (GUEST),
    .netmask = address ("255.255.255.0"),
    .gateway = address (GATEWAY),
    .dns = address ("10.0.2.3"),
    .mtu = 1500,
    .lease_seconds = 86400,
    .domain = "moat.test",
  };

  return config;
}

/* A BOOTREQUEST with xid 0x12345678, the broadcast flag and no options. */
static GByteArray *
request_new (const char *ciaddr)
{
  GByteArray *message = g_byte_array_new ();
  guint8 header[240] = { 0 };

  header[0] = 1;
  header[1] = 1;
  header[2] = 6;
  header[4] = 0x12;
  header[5] = 0x34;
  header[6] = 0x56;
  header[7] = 0x78;
  header[10] = 0x80;
  if (ciaddr != NULL)
    {
      struct in_addr value = address (ciaddr);

      memcpy (header + 12, &value.s_addr, 4);
    }
  memcpy (header + 28, client_mac, sizeof (client_mac));
  header[236] = 99;
  header[237] = 130;
  header[238] = 83;
  header[239] = 99;
  g_byte_array_append (message, header, sizeof (header));
  return message;
}

static void
add_option (GByteArray *message, guint8 code, const void *value,
            guint8 length)
{
  g_byte_array_append (message, &code, 1);
  g_byte_array_append (message, &length, 1);
  g_byte_array_append (message, value, length);
}

static void
add_option_u8 (GByteArray *message, guint8 code, guint8 value)
{
  add_option (message, code, &value, 1);
}

static void
add_option_address (GByteArray *message, guint8 code, const char *text)
{
  struct in_addr value = address (text);

  add_option (message, code, &value.s_addr, 4);
}

static void
add_end (GByteArray *message)
{
  guint8 end = OPT_END;

  g_byte_array_append (message, &end, 1);
}

/* A request of @type with only the message type option. */
static GByteArray *
simple_request (guint8 type, const char *ciaddr)
{
  GByteArray *message = request_new (ciaddr);

  add_option_u8 (message, OPT_MESSAGE_TYPE, type);
  add_end (message);
  return message;
}

/*
 * Reads the options of a reply independently of the server's parser: each
 * option once, an end option, and only pad bytes after it.
 */
static GHashTable *
reply_options (const guint8 *reply, gsize length)
{
  GHashTable *options = g_hash_table_new_full (
    g_direct_hash, g_direct_equal, NULL, (GDestroyNotify) g_bytes_unref);
  gsize pos = 240;

  for (;;)
    {
      guint8 code;
      guint8 option_length;

      g_assert_cmpuint (pos, <, length);
      code = reply[pos];
      if (code == OPT_END)
        break;
      g_assert_cmpuint (code, !=, OPT_PAD);
      g_assert_cmpuint (pos + 2, <=, length);
      option_length = reply[pos + 1];
      g_assert_cmpuint (pos + 2 + option_length, <=, length);
      g_assert_false (g_hash_table_contains (options, GUINT_TO_POINTER (code)));
      g_hash_table_insert (options, GUINT_TO_POINTER (code),
                           g_bytes_new (reply + pos + 2, option_length));
      pos += 2 + option_length;
    }

  for (pos++; pos < length; pos++)
    g_assert_cmphex (reply[pos], ==, OPT_PAD);
  return options;
}

static void
assert_option (GHashTable *options, guint8 code, const void *expected,
               gsize expected_length)
{
  GBytes *value = g_hash_table_lookup (options, GUINT_TO_POINTER (code));
  gsize length;
  const guint8 *data;

  g_test_message ("checking option %u", code);
  g_assert_nonnull (value);
  data = g_bytes_get_data (value, &length);
  g_assert_cmpmem (data, length, expected, expected_length);
}

static void
assert_option_u8 (GHashTable *options, guint8 code, guint8 expected)
{
  assert_option (options, code, &expected, 1);
}

static void
assert_option_address (GHashTable *options, guint8 code, const char *text)
{
  struct in_addr expected = address (text);

  assert_option (options, code, &expected.s_addr, 4);
}

static void
assert_field_address (const guint8 *reply, gsize offset, const char *text)
{
  struct in_addr expected = address (text);

  g_assert_cmpmem (reply + offset, 4, &expected.s_addr, 4);
}

static void
assert_option_codes (GHashTable *options, const guint8 *codes, gsize count)
{
  g_assert_cmpuint (g_hash_table_size (options), ==, count);
  for (gsize i = 0; i < count; i++)
    {
      g_test_message ("expecting option %u", codes[i]);
      g_assert_true (g_hash_table_contains (options,
                                            GUINT_TO_POINTER (codes[i])));
    }
}

/* Runs the server and checks that it produced a reply without error. */
static gsize
handle_ok (const MoatDhcpConfig *config, GByteArray *request, guint8 *reply,
           gsize reply_size)
{
  g_autoptr (GError) error = NULL;
  gsize length;

  length = moat_dhcp_handle (config, request->data, request->len, reply,
                             reply_size, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (length, >=, 300);
  g_assert_cmpuint (length, <=, reply_size);
  return length;
}

static void
assert_reply_header (const guint8 *reply)
{
  static const guint8 zeros[192] = { 0 };

  g_assert_cmpuint (reply[0], ==, 2);
  g_assert_cmpuint (reply[1], ==, 1);
  g_assert_cmpuint (reply[2], ==, 6);
  g_assert_cmpuint (reply[3], ==, 0);
  g_assert_cmphex (reply[4], ==, 0x12);
  g_assert_cmphex (reply[5], ==, 0x34);
  g_assert_cmphex (reply[6], ==, 0x56);
  g_assert_cmphex (reply[7], ==, 0x78);
  /* secs 0, broadcast flag copied */
  g_assert_cmphex (reply[8], ==, 0);
  g_assert_cmphex (reply[9], ==, 0);
  g_assert_cmphex (reply[10], ==, 0x80);
  g_assert_cmphex (reply[11], ==, 0);
  assert_field_address (reply, 20, "0.0.0.0");
  assert_field_address (reply, 24, "0.0.0.0");
  g_assert_cmpmem (reply + 28, 6, client_mac, 6);
  g_assert_cmpmem (reply + 34, 10, zeros, 10);
  /* sname and file */
  g_assert_cmpmem (reply + 44, 192, zeros, 192);
  g_assert_cmphex (reply[236], ==, 99);
  g_assert_cmphex (reply[237], ==, 130);
  g_assert_cmphex (reply[238], ==, 83);
  g_assert_cmphex (reply[239], ==, 99);
}

static void
test_discover_offer (void)
{
  MoatDhcpConfig config = default_config ();
  g_autoptr (GByteArray) request = simple_request (DISCOVER, NULL);
  guint8 reply[1024];
  gsize length = handle_ok (&config, request, reply, sizeof (reply));
  g_autoptr (GHashTable) options = reply_options (reply, length);
  const guint8 lease[] = { 0x00, 0x01, 0x51, 0x80 };
  const guint8 mtu[] = { 0x05, 0xdc };
  const guint8 search[] = { 4, 'm', 'o', 'a', 't', 4, 't', 'e', 's', 't', 0 };
  const guint8 codes[] = {
    OPT_MESSAGE_TYPE, OPT_SERVER_ID, OPT_LEASE_TIME, OPT_SUBNET_MASK,
    OPT_ROUTER, OPT_DNS, OPT_MTU, OPT_DOMAIN_NAME, OPT_DOMAIN_SEARCH,
  };

  /* 240 + 3 + 6 * 5 + 4 + (2 + 9) + (2 + 11) + 1 bytes, so no padding. */
  g_assert_cmpuint (length, ==, 302);
  assert_reply_header (reply);
  assert_field_address (reply, 12, "0.0.0.0");
  assert_field_address (reply, 16, GUEST);

  assert_option_codes (options, codes, G_N_ELEMENTS (codes));
  assert_option_u8 (options, OPT_MESSAGE_TYPE, OFFER);
  assert_option_address (options, OPT_SERVER_ID, GATEWAY);
  assert_option (options, OPT_LEASE_TIME, lease, sizeof (lease));
  assert_option_address (options, OPT_SUBNET_MASK, "255.255.255.0");
  assert_option_address (options, OPT_ROUTER, GATEWAY);
  assert_option_address (options, OPT_DNS, "10.0.2.3");
  assert_option (options, OPT_MTU, mtu, sizeof (mtu));
  assert_option (options, OPT_DOMAIN_NAME, "moat.test", 9);
  assert_option (options, OPT_DOMAIN_SEARCH, search, sizeof (search));
}

static void
test_discover_without_domain (void)
{
  MoatDhcpConfig config = default_config ();
  g_autoptr (GByteArray) request = simple_request (DISCOVER, NULL);
  guint8 reply[1024];
  gsize length;
  g_autoptr (GHashTable) options = NULL;
  const guint8 codes[] = {
    OPT_MESSAGE_TYPE, OPT_SERVER_ID, OPT_LEASE_TIME, OPT_SUBNET_MASK,
    OPT_ROUTER, OPT_DNS, OPT_MTU,
  };

  config.domain = NULL;
  length = handle_ok (&config, request, reply, sizeof (reply));
  options = reply_options (reply, length);
  assert_option_codes (options, codes, G_N_ELEMENTS (codes));
}

static void
test_discover_trailing_dot_domain (void)
{
  MoatDhcpConfig config = default_config ();
  g_autoptr (GByteArray) request = simple_request (DISCOVER, NULL);
  guint8 reply[1024];
  gsize length;
  g_autoptr (GHashTable) options = NULL;
  const guint8 search[] = { 8, 'i', 'n', 't', 'e', 'r', 'n', 'a', 'l', 0 };

  config.domain = "internal.";
  length = handle_ok (&config, request, reply, sizeof (reply));
  options = reply_options (reply, length);
  assert_option (options, OPT_DOMAIN_NAME, "internal", 8);
  assert_option (options, OPT_DOMAIN_SEARCH, search, sizeof (search));
}

static void
test_client_id_echoed (void)
{
  MoatDhcpConfig config = default_config ();
  g_autoptr (GByteArray) request = request_new (NULL);
  const guint8 client_id[] = { 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
  guint8 reply[1024];
  gsize length;
  g_autoptr (GHashTable) options = NULL;

  add_option_u8 (request, OPT_MESSAGE_TYPE, DISCOVER);
  add_option (request, OPT_CLIENT_ID, client_id, sizeof (client_id));
  add_end (request);
  length = handle_ok (&config, request, reply, sizeof (reply));
  options = reply_options (reply, length);
  assert_option (options, OPT_CLIENT_ID, client_id, sizeof (client_id));
}

typedef struct {
  const char *description;
  const char *ciaddr;
  const char *requested_address;
  const char *server_id;
  /* ACK, NAK, or 0 for no reply. */
  guint8 reply_type;
} RequestCase;

static const RequestCase request_cases[] = {
  { "selecting: option 50 and our server id", NULL, GUEST, GATEWAY, ACK },
  { "init-reboot: option 50 only", NULL, GUEST, NULL, ACK },
  { "renewing: ciaddr only", GUEST, NULL, NULL, ACK },
  { "no address at all", NULL, NULL, NULL, ACK },
  { "option 50 for another address", NULL, OTHER_ADDRESS, NULL, NAK },
  { "selecting another address", NULL, OTHER_ADDRESS, GATEWAY, NAK },
  { "ciaddr of another address", OTHER_ADDRESS, NULL, NULL, NAK },
  { "option 50 wins over ciaddr", OTHER_ADDRESS, GUEST, NULL, ACK },
  { "another server selected", NULL, GUEST, "10.0.2.200", 0 },
};

static void
test_request_table (void)
{
  MoatDhcpConfig config = default_config ();

  for (gsize i = 0; i < G_N_ELEMENTS (request_cases); i++)
    {
      const RequestCase *c = &request_cases[i];
      g_autoptr (GByteArray) request = request_new (c->ciaddr);
      g_autoptr (GHashTable) options = NULL;
      g_autoptr (GError) error = NULL;
      guint8 reply[1024];
      gsize length;

      g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, c->description);
      add_option_u8 (request, OPT_MESSAGE_TYPE, REQUEST);
      if (c->requested_address != NULL)
        add_option_address (request, OPT_REQUESTED_ADDRESS,
                            c->requested_address);
      if (c->server_id != NULL)
        add_option_address (request, OPT_SERVER_ID, c->server_id);
      add_end (request);

      length = moat_dhcp_handle (&config, request->data, request->len, reply,
                                 sizeof (reply), &error);
      g_assert_no_error (error);
      if (c->reply_type == 0)
        {
          g_assert_cmpuint (length, ==, 0);
          continue;
        }

      /* A NAK is padded to the BOOTP minimum of 300 bytes. */
      g_assert_cmpuint (length, ==, c->reply_type == ACK ? 302 : 300);
      assert_reply_header (reply);
      options = reply_options (reply, length);
      assert_option_u8 (options, OPT_MESSAGE_TYPE, c->reply_type);
      assert_option_address (options, OPT_SERVER_ID, GATEWAY);

      if (c->reply_type == ACK)
        {
          assert_field_address (reply, 12, c->ciaddr ? c->ciaddr : "0.0.0.0");
          assert_field_address (reply, 16, GUEST);
          assert_option_address (options, OPT_ROUTER, GATEWAY);
          g_assert_true (g_hash_table_contains (
                           options, GUINT_TO_POINTER (OPT_LEASE_TIME)));
        }
      else
        {
          const guint8 codes[] = {
            OPT_MESSAGE_TYPE, OPT_SERVER_ID, OPT_MESSAGE,
          };

          /* RFC 2131 table 3: a NAK has no addresses and no layout. */
          assert_field_address (reply, 12, "0.0.0.0");
          assert_field_address (reply, 16, "0.0.0.0");
          assert_option_codes (options, codes, G_N_ELEMENTS (codes));
        }
    }
}

static void
test_inform_ack (void)
{
  MoatDhcpConfig config = default_config ();
  g_autoptr (GByteArray) request = simple_request (INFORM, GUEST);
  guint8 reply[1024];
  gsize length = handle_ok (&config, request, reply, sizeof (reply));
  g_autoptr (GHashTable) options = reply_options (reply, length);
  const guint8 codes[] = {
    OPT_MESSAGE_TYPE, OPT_SERVER_ID, OPT_SUBNET_MASK, OPT_ROUTER, OPT_DNS,
    OPT_MTU, OPT_DOMAIN_NAME, OPT_DOMAIN_SEARCH,
  };

  assert_reply_header (reply);
  assert_field_address (reply, 12, GUEST);
  assert_field_address (reply, 16, "0.0.0.0");
  assert_option_u8 (options, OPT_MESSAGE_TYPE, ACK);
  /* RFC 2131 section 4.3.5: no lease time in the ACK to an INFORM. */
  assert_option_codes (options, codes, G_N_ELEMENTS (codes));
}

static void
test_release_decline_silent (void)
{
  MoatDhcpConfig config = default_config ();
  const guint8 types[] = { RELEASE, DECLINE };

  for (gsize i = 0; i < G_N_ELEMENTS (types); i++)
    {
      g_autoptr (GByteArray) request = simple_request (types[i], GUEST);
      g_autoptr (GError) error = NULL;
      guint8 reply[1024];

      g_assert_cmpuint (moat_dhcp_handle (&config, request->data,
                                          request->len, reply, sizeof (reply),
                                          &error), ==, 0);
      g_assert_no_error (error);
    }
}

static void
test_overloaded_file_field (void)
{
  MoatDhcpConfig config = default_config ();
  g_autoptr (GByteArray) request = request_new (NULL);
  guint8 reply[1024];
  gsize length;
  g_autoptr (GHashTable) options = NULL;

  /* The message type lives in the file field (offset 108). */
  add_option_u8 (request, OPT_OVERLOAD, 1);
  add_end (request);
  request->data[108] = OPT_MESSAGE_TYPE;
  request->data[109] = 1;
  request->data[110] = DISCOVER;
  request->data[111] = OPT_END;

  length = handle_ok (&config, request, reply, sizeof (reply));
  options = reply_options (reply, length);
  assert_option_u8 (options, OPT_MESSAGE_TYPE, OFFER);
}

static void
test_pad_options_skipped (void)
{
  MoatDhcpConfig config = default_config ();
  g_autoptr (GByteArray) request = request_new (NULL);
  const guint8 pads[3] = { OPT_PAD, OPT_PAD, OPT_PAD };
  const guint8 unknown[5] = { 1, 2, 3, 4, 5 };
  guint8 reply[1024];
  gsize length;
  g_autoptr (GHashTable) options = NULL;

  g_byte_array_append (request, pads, sizeof (pads));
  add_option (request, 200, unknown, sizeof (unknown));
  add_option_u8 (request, OPT_MESSAGE_TYPE, DISCOVER);
  add_end (request);
  /* Padding after the end option, as sent by clients that pad their
   * requests to 300 bytes. */
  g_byte_array_append (request, pads, sizeof (pads));

  length = handle_ok (&config, request, reply, sizeof (reply));
  options = reply_options (reply, length);
  assert_option_u8 (options, OPT_MESSAGE_TYPE, OFFER);
}

static void
test_truncated_at_every_offset (void)
{
  MoatDhcpConfig config = default_config ();
  g_autoptr (GByteArray) request = request_new (NULL);
  guint8 reply[1024];

  add_option_u8 (request, OPT_MESSAGE_TYPE, DISCOVER);
  add_option_address (request, OPT_REQUESTED_ADDRESS, GUEST);
  add_end (request);
  handle_ok (&config, request, reply, sizeof (reply));

  for (gsize length = 0; length < request->len; length++)
    {
      /* A copy of exactly @length bytes lets sanitizers catch reads past
       * the end. */
      g_autofree guint8 *prefix = g_memdup2 (request->data, length);
      g_autoptr (GError) error = NULL;

      g_test_message ("truncated to %" G_GSIZE_FORMAT " bytes", length);
      g_assert_cmpuint (moat_dhcp_handle (&config, prefix, length, reply,
                                          sizeof (reply), &error), ==, 0);
      g_assert_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL);
    }
}

typedef struct {
  const char *description;
  /* Header byte to overwrite and its new value, unless both are 0. */
  gsize offset;
  guint8 value;
  /* Options after the header; the test adds no end option of its own. */
  const guint8 *options;
  gsize options_length;
  const char *error;
} MalformedCase;

#define OPTIONS(...) (const guint8[]) { __VA_ARGS__ }, \
  sizeof ((const guint8[]) { __VA_ARGS__ })

static const MalformedCase malformed_cases[] = {
  { "bad magic cookie", 239, 98, OPTIONS (53, 1, 1, 255),
    "magic cookie at offset 236 is 99.130.83.98" },
  { "BOOTREPLY op", 0, 2, OPTIONS (53, 1, 1, 255), "op is 2" },
  { "not Ethernet", 1, 6, OPTIONS (53, 1, 1, 255), "hardware type 6" },
  { "hardware address length 16", 2, 16, OPTIONS (53, 1, 1, 255),
    "address length 16" },
  { "option length past the end", 0, 0, OPTIONS (53, 1, 1, 12, 10, 'a', 255),
    "option 12 at offset 243 has length 10 but the options field has only "
    "2 bytes left" },
  { "option without length byte", 0, 0, OPTIONS (53, 1, 1, 12),
    "option 12 at offset 243 has no length byte" },
  { "no end option", 0, 0, OPTIONS (53, 1, 1), "without an end option" },
  { "message type length 2", 0, 0, OPTIONS (53, 2, 1, 0, 255),
    "option 53 at offset 240 has length 2, expected 1" },
  { "requested address length 3", 0, 0,
    OPTIONS (53, 1, 3, 50, 3, 10, 0, 2, 255),
    "option 50 at offset 243 has length 3, expected 4" },
  { "server identifier length 5", 0, 0,
    OPTIONS (53, 1, 3, 54, 5, 10, 0, 2, 2, 0, 255),
    "option 54 at offset 243 has length 5, expected 4" },
  { "missing message type", 0, 0, OPTIONS (50, 4, 10, 0, 2, 15, 255),
    "message type option (53) is missing" },
  { "message type 0", 0, 0, OPTIONS (53, 1, 0, 255),
    "unknown message type 0" },
  { "message type 9", 0, 0, OPTIONS (53, 1, 9, 255),
    "unknown message type 9" },
  { "DHCPOFFER from a client", 0, 0, OPTIONS (53, 1, 2, 255),
    "DHCPOFFER (2) is sent by servers" },
  { "DHCPACK from a client", 0, 0, OPTIONS (53, 1, 5, 255),
    "DHCPACK (5) is sent by servers" },
  { "message type twice", 0, 0, OPTIONS (53, 1, 1, 53, 1, 3, 255),
    "option 53 at offset 243 appears twice" },
  { "maximum message size 500", 0, 0, OPTIONS (53, 1, 1, 57, 2, 1, 244, 255),
    "maximum message size 500" },
  { "client identifier of 1 byte", 0, 0, OPTIONS (53, 1, 1, 61, 1, 1, 255),
    "client identifier at offset 243 has length 1" },
  { "overload value 4", 0, 0, OPTIONS (53, 1, 1, 52, 1, 4, 255),
    "option overload 4" },
  { "overloaded file field without end", 0, 0,
    OPTIONS (52, 1, 1, 53, 1, 1, 255),
    "the file field ends at offset 236 without an end option" },
};

static void
test_malformed_table (void)
{
  MoatDhcpConfig config = default_config ();

  for (gsize i = 0; i < G_N_ELEMENTS (malformed_cases); i++)
    {
      const MalformedCase *c = &malformed_cases[i];
      g_autoptr (GByteArray) request = request_new (NULL);
      g_autoptr (GError) error = NULL;
      guint8 reply[1024];
      gsize length;

      g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, c->description);
      if (c->offset > 0 || c->value > 0)
        request->data[c->offset] = c->value;
      g_byte_array_append (request, c->options, c->options_length);
      /* A nonzero byte in the file field, so that the overload case finds
       * no end option there. */
      request->data[108] = 0x01;

      length = moat_dhcp_handle (&config, request->data, request->len, reply,
                                 sizeof (reply), &error);
      g_assert_cmpuint (length, ==, 0);
      g_assert_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL);
      g_assert_nonnull (strstr (error->message, c->error));
    }
}

static void
test_reply_buffer_too_small (void)
{
  MoatDhcpConfig config = default_config ();
  g_autoptr (GByteArray) request = simple_request (DISCOVER, NULL);
  g_autoptr (GError) error = NULL;
  guint8 reply[299];

  g_assert_cmpuint (moat_dhcp_handle (&config, request->data, request->len,
                                      reply, sizeof (reply), &error), ==, 0);
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_LIMIT);
}

/* A domain of the maximum length: labels of 63, 63, 63 and 61 bytes and 3
 * dots make 253 characters. */
static char *
long_domain (void)
{
  GString *domain = g_string_new (NULL);

  for (int i = 0; i < 4; i++)
    {
      if (i > 0)
        g_string_append_c (domain, '.');
      for (int j = 0; j < (i < 3 ? 63 : 61); j++)
        g_string_append_c (domain, 'a' + i);
    }
  return g_string_free (domain, FALSE);
}

static void
test_long_domain_needs_max_size (void)
{
  g_autofree char *domain = long_domain ();
  MoatDhcpConfig config = default_config ();
  g_autoptr (GByteArray) small = simple_request (DISCOVER, NULL);
  g_autoptr (GByteArray) large = request_new (NULL);
  const guint8 max_size[2] = { 1500 >> 8, 1500 & 0xff };
  g_autoptr (GError) error = NULL;
  g_autoptr (GHashTable) options = NULL;
  guint8 reply[1500];
  gsize length;

  config.domain = domain;

  /* 240 + 3 + 6 * 5 + 4 + (2 + 253) + (2 + 255) + 1 = 790 bytes, more than
   * the 548 bytes every client accepts. */
  length = moat_dhcp_handle (&config, small->data, small->len, reply,
                             sizeof (reply), &error);
  g_assert_cmpuint (length, ==, 0);
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_LIMIT);
  g_assert_nonnull (strstr (error->message, "790 bytes"));

  add_option_u8 (large, OPT_MESSAGE_TYPE, DISCOVER);
  add_option (large, OPT_MAX_MESSAGE_SIZE, max_size, sizeof (max_size));
  add_end (large);
  length = handle_ok (&config, large, reply, sizeof (reply));
  g_assert_cmpuint (length, ==, 790);
  options = reply_options (reply, length);
  assert_option (options, OPT_DOMAIN_NAME, domain, strlen (domain));
}

static void
test_domain_of_254_characters (void)
{
  g_autofree char *maximum = long_domain ();
  /* "x." in place of the first byte keeps every label valid and makes 254
   * characters. */
  g_autofree char *domain = g_strconcat ("x.", maximum + 1, NULL);
  MoatDhcpConfig config = default_config ();
  g_autoptr (GByteArray) request = simple_request (DISCOVER, NULL);
  g_autoptr (GError) error = NULL;
  guint8 reply[1500];

  g_assert_cmpuint (strlen (domain), ==, 254);
  config.domain = domain;
  g_assert_cmpuint (moat_dhcp_handle (&config, request->data, request->len,
                                      reply, sizeof (reply), &error), ==, 0);
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, "1 to 253 characters"));
}

typedef struct {
  const char *description;
  const char *domain;
  guint mtu;
} BadConfigCase;

static void
test_bad_config (void)
{
  const BadConfigCase cases[] = {
    { "empty domain", "", 1500 },
    { "root domain", ".", 1500 },
    { "empty label", "a..b", 1500 },
    { "leading dot", ".a", 1500 },
    { "label of 64 bytes",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test",
      1500 },
    { "space in domain", "my domain", 1500 },
    { "MTU below 576", "moat.test", 575 },
    { "MTU above 65520", "moat.test", 65521 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      MoatDhcpConfig config = default_config ();
      g_autoptr (GByteArray) request = simple_request (DISCOVER, NULL);
      g_autoptr (GError) error = NULL;
      guint8 reply[1024];

      g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, cases[i].description);
      config.domain = cases[i].domain;
      config.mtu = cases[i].mtu;
      g_assert_cmpuint (moat_dhcp_handle (&config, request->data,
                                          request->len, reply, sizeof (reply),
                                          &error), ==, 0);
      g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/dhcp/discover/offer", test_discover_offer);
  g_test_add_func ("/dhcp/discover/without-domain",
                   test_discover_without_domain);
  g_test_add_func ("/dhcp/discover/trailing-dot-domain",
                   test_discover_trailing_dot_domain);
  g_test_add_func ("/dhcp/discover/client-id-echoed", test_client_id_echoed);
  g_test_add_func ("/dhcp/discover/overloaded-file-field",
                   test_overloaded_file_field);
  g_test_add_func ("/dhcp/discover/pad-options-skipped",
                   test_pad_options_skipped);
  g_test_add_func ("/dhcp/request/table", test_request_table);
  g_test_add_func ("/dhcp/inform/ack", test_inform_ack);
  g_test_add_func ("/dhcp/release-decline-silent",
                   test_release_decline_silent);
  g_test_add_func ("/dhcp/malformed/truncated", test_truncated_at_every_offset);
  g_test_add_func ("/dhcp/malformed/table", test_malformed_table);
  g_test_add_func ("/dhcp/reply/buffer-too-small",
                   test_reply_buffer_too_small);
  g_test_add_func ("/dhcp/reply/long-domain", test_long_domain_needs_max_size);
  g_test_add_func ("/dhcp/config/invalid", test_bad_config);
  g_test_add_func ("/dhcp/config/domain-254", test_domain_of_254_characters);

  return g_test_run ();
}
