/* SPDX-License-Identifier: GPL-2.0-or-later */
/* dhcp.c - the DHCP server that hands the guest its -netdev user layout */
#define G_LOG_DOMAIN "moat-dhcp"

#include "dhcp.h"

#include <string.h>

#include "error.h"
#include "moat-limits.h"

/*
 * moat serves exactly one guest, so there is no lease database. Every
 * DISCOVER is offered config->guest, and every REQUEST for that address, or
 * for no particular address, is acknowledged. The caller chooses where the
 * reply is sent (RFC 2131 section 4.1: broadcast for a NAK, and when the
 * client set the broadcast flag).
 */

/* BOOTP message layout (RFC 2131 section 2, figure 1), byte offsets. */
enum {
  BOOTP_OP = 0,
  BOOTP_HTYPE = 1,
  BOOTP_HLEN = 2,
  BOOTP_HOPS = 3,
  BOOTP_XID = 4,
  BOOTP_SECS = 8,
  BOOTP_FLAGS = 10,
  BOOTP_CIADDR = 12,
  BOOTP_YIADDR = 16,
  BOOTP_SIADDR = 20,
  BOOTP_GIADDR = 24,
  BOOTP_CHADDR = 28,
  BOOTP_SNAME = 44,
  BOOTP_FILE = 108,
  BOOTP_COOKIE = 236,
  BOOTP_OPTIONS = 240,
};

#define BOOTP_CHADDR_LEN 16
#define BOOTP_SNAME_LEN 64
#define BOOTP_FILE_LEN 128
#define BOOTP_OP_REQUEST 1
#define BOOTP_OP_REPLY 2
/* Ethernet (RFC 1700 hardware type 1) with 6-byte MAC addresses. */
#define BOOTP_HTYPE_ETHERNET 1
#define BOOTP_HLEN_ETHERNET 6

/* RFC 2131 section 3: 99.130.83.99. */
static const guint8 dhcp_magic_cookie[4] = { 99, 130, 83, 99 };

/*
 * A BOOTP message with RFC 951's 64-byte vendor field is 300 bytes, and some
 * clients and relays still drop shorter replies.
 */
#define DHCP_REPLY_MIN 300

/*
 * RFC 2131 section 2: a client must accept an options field of 312 bytes,
 * which makes a 548-byte DHCP message and a 576-byte IP datagram with the
 * 28 bytes of IPv4 and UDP headers.
 */
#define DHCP_MESSAGE_MIN_ACCEPTED 548
#define DHCP_IP_UDP_HEADERS_LEN 28
/* RFC 2132 section 9.10: the smallest legal maximum message size. */
#define DHCP_MAX_MESSAGE_SIZE_MIN 576

/* Option codes (RFC 2132, and RFC 3397 for domain search). */
typedef enum {
  DHCP_OPTION_PAD = 0,
  DHCP_OPTION_SUBNET_MASK = 1,
  DHCP_OPTION_ROUTER = 3,
  DHCP_OPTION_DNS_SERVER = 6,
  DHCP_OPTION_DOMAIN_NAME = 15,
  DHCP_OPTION_INTERFACE_MTU = 26,
  DHCP_OPTION_REQUESTED_ADDRESS = 50,
  DHCP_OPTION_LEASE_TIME = 51,
  DHCP_OPTION_OVERLOAD = 52,
  DHCP_OPTION_MESSAGE_TYPE = 53,
  DHCP_OPTION_SERVER_ID = 54,
  DHCP_OPTION_MESSAGE = 56,
  DHCP_OPTION_MAX_MESSAGE_SIZE = 57,
  DHCP_OPTION_CLIENT_ID = 61,
  DHCP_OPTION_DOMAIN_SEARCH = 119,
  DHCP_OPTION_END = 255,
} DhcpOption;

/* Values of the option overload option (RFC 2132 section 9.3). */
#define DHCP_OVERLOAD_FILE 1
#define DHCP_OVERLOAD_SNAME 2

/* Message types (RFC 2132 section 9.6). */
typedef enum {
  DHCP_DISCOVER = 1,
  DHCP_OFFER = 2,
  DHCP_REQUEST = 3,
  DHCP_DECLINE = 4,
  DHCP_ACK = 5,
  DHCP_NAK = 6,
  DHCP_RELEASE = 7,
  DHCP_INFORM = 8,
} DhcpMessageType;

static const char *const dhcp_message_type_names[] = {
  [DHCP_DISCOVER] = "DHCPDISCOVER",
  [DHCP_OFFER] = "DHCPOFFER",
  [DHCP_REQUEST] = "DHCPREQUEST",
  [DHCP_DECLINE] = "DHCPDECLINE",
  [DHCP_ACK] = "DHCPACK",
  [DHCP_NAK] = "DHCPNAK",
  [DHCP_RELEASE] = "DHCPRELEASE",
  [DHCP_INFORM] = "DHCPINFORM",
};

/**
 * DhcpRequestOptions:
 * @seen: option codes already read, to reject repeated options
 * @message_type: DHCP message type, 0 if the option is missing
 * @requested_address: requested IP address, valid if @has_requested_address
 * @has_requested_address: whether the requested IP address option was sent
 * @server_id: server identifier, valid if @has_server_id
 * @has_server_id: whether the server identifier option was sent
 * @overload: value of the option overload option, 0 if missing
 * @max_message_size: maximum DHCP message size in bytes, 0 if missing
 * @client_id: client identifier inside the request, or %NULL
 * @client_id_length: length of @client_id in bytes
 */
typedef struct {
  gboolean seen[256];
  guint8 message_type;
  struct in_addr requested_address;
  gboolean has_requested_address;
  struct in_addr server_id;
  gboolean has_server_id;
  guint8 overload;
  guint16 max_message_size;
  const guint8 *client_id;
  guint8 client_id_length;
} DhcpRequestOptions;

static const char *
message_type_name (guint type)
{
  if (type < G_N_ELEMENTS (dhcp_message_type_names)
      && dhcp_message_type_names[type] != NULL)
    return dhcp_message_type_names[type];
  return "unknown";
}

static gboolean
check_option_length (guint code, gsize offset, guint length, guint expected,
                     GError **error)
{
  if (length == expected)
    return TRUE;

  g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
               "invalid DHCP message: option %u at offset %" G_GSIZE_FORMAT
               " has length %u, expected %u", code, offset, length, expected);
  return FALSE;
}

/**
 * read_option:
 * @options: where the options moat uses are stored
 * @code: option code
 * @offset: offset of the option's code byte in the message, for errors
 * @value: the option's data
 * @length: length of @value in bytes
 * @in_options_field: whether the option is in the options field rather than
 *   in an overloaded sname or file field
 * @error: return location for a MOAT_ERROR_PROTOCOL error
 *
 * Stores one option of the request if moat uses it and checks its length.
 * Other options are skipped.
 *
 * Return: %TRUE if the option is valid or unused.
 */
static gboolean
read_option (DhcpRequestOptions *options, guint code, gsize offset,
             const guint8 *value, guint length, gboolean in_options_field,
             GError **error)
{
  switch (code)
    {
    case DHCP_OPTION_MESSAGE_TYPE:
    case DHCP_OPTION_REQUESTED_ADDRESS:
    case DHCP_OPTION_SERVER_ID:
    case DHCP_OPTION_OVERLOAD:
    case DHCP_OPTION_MAX_MESSAGE_SIZE:
    case DHCP_OPTION_CLIENT_ID:
      /* RFC 3396 would concatenate repeated options, but none of these
       * needs more than 255 bytes, so a repeat is a client bug. */
      if (options->seen[code])
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                       "invalid DHCP message: option %u at offset %"
                       G_GSIZE_FORMAT " appears twice", code, offset);
          return FALSE;
        }
      options->seen[code] = TRUE;
      break;
    default:
      return TRUE;
    }

  switch (code)
    {
    case DHCP_OPTION_MESSAGE_TYPE:
      if (!check_option_length (code, offset, length, 1, error))
        return FALSE;
      if (value[0] < DHCP_DISCOVER || value[0] > DHCP_INFORM)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                       "invalid DHCP message: unknown message type %u at "
                       "offset %" G_GSIZE_FORMAT ", expected 1 to 8",
                       value[0], offset + 2);
          return FALSE;
        }
      options->message_type = value[0];
      return TRUE;

    case DHCP_OPTION_REQUESTED_ADDRESS:
      if (!check_option_length (code, offset, length, 4, error))
        return FALSE;
      memcpy (&options->requested_address.s_addr, value, 4);
      options->has_requested_address = TRUE;
      return TRUE;

    case DHCP_OPTION_SERVER_ID:
      if (!check_option_length (code, offset, length, 4, error))
        return FALSE;
      memcpy (&options->server_id.s_addr, value, 4);
      options->has_server_id = TRUE;
      return TRUE;

    case DHCP_OPTION_OVERLOAD:
      if (!check_option_length (code, offset, length, 1, error))
        return FALSE;
      if (!in_options_field
          || value[0] < DHCP_OVERLOAD_FILE
          || value[0] > (DHCP_OVERLOAD_FILE | DHCP_OVERLOAD_SNAME))
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                       "invalid DHCP message: option overload %u at offset %"
                       G_GSIZE_FORMAT " must be 1, 2 or 3 and appear in the "
                       "options field", value[0], offset);
          return FALSE;
        }
      options->overload = value[0];
      return TRUE;

    case DHCP_OPTION_MAX_MESSAGE_SIZE:
      if (!check_option_length (code, offset, length, 2, error))
        return FALSE;
      options->max_message_size = (guint16) ((value[0] << 8) | value[1]);
      if (options->max_message_size < DHCP_MAX_MESSAGE_SIZE_MIN)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                       "invalid DHCP message: maximum message size %u at "
                       "offset %" G_GSIZE_FORMAT " is below the minimum of %d",
                       options->max_message_size, offset,
                       DHCP_MAX_MESSAGE_SIZE_MIN);
          return FALSE;
        }
      return TRUE;

    case DHCP_OPTION_CLIENT_ID:
      /* RFC 2132 section 9.14: a type byte and at least one byte of id. */
      if (length < 2)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                       "invalid DHCP message: client identifier at offset %"
                       G_GSIZE_FORMAT " has length %u, expected at least 2",
                       offset, length);
          return FALSE;
        }
      options->client_id = value;
      options->client_id_length = (guint8) length;
      return TRUE;

    default:
      g_assert_not_reached ();
    }
}

/**
 * parse_option_area:
 * @message: the whole request
 * @start: offset of the first option
 * @end: offset just past the area
 * @area: name of the field for errors ("options", "file" or "sname")
 * @options: where the options moat uses are stored
 * @error: return location for a MOAT_ERROR_PROTOCOL error
 *
 * Walks the options of one area (RFC 2132 section 2): pad bytes, then code,
 * length and data, up to the end option. Bytes after the end option are
 * padding and are ignored.
 *
 * Return: %TRUE if the area is well formed and ends with an end option.
 */
static gboolean
parse_option_area (const guint8 *message, gsize start, gsize end,
                   const char *area, DhcpRequestOptions *options,
                   GError **error)
{
  gsize pos = start;
  gboolean in_options_field = start == BOOTP_OPTIONS;

  for (;;)
    {
      guint code;
      guint length;

      if (pos >= end)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                       "invalid DHCP message: the %s field ends at offset %"
                       G_GSIZE_FORMAT " without an end option (255)",
                       area, end);
          return FALSE;
        }

      code = message[pos];
      if (code == DHCP_OPTION_PAD)
        {
          pos++;
          continue;
        }
      if (code == DHCP_OPTION_END)
        return TRUE;

      if (end - pos < 2)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                       "invalid DHCP message: option %u at offset %"
                       G_GSIZE_FORMAT " has no length byte before the end of "
                       "the %s field", code, pos, area);
          return FALSE;
        }
      length = message[pos + 1];
      if (length > end - pos - 2)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                       "invalid DHCP message: option %u at offset %"
                       G_GSIZE_FORMAT " has length %u but the %s field has "
                       "only %" G_GSIZE_FORMAT " bytes left",
                       code, pos, length, area, end - pos - 2);
          return FALSE;
        }

      if (!read_option (options, code, pos, message + pos + 2, length,
                        in_options_field, error))
        return FALSE;
      pos += 2 + length;
    }
}

static gboolean
parse_request (const guint8 *request, gsize length,
               DhcpRequestOptions *options, GError **error)
{
  if (length < BOOTP_OPTIONS)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "DHCP message truncated: %" G_GSIZE_FORMAT " bytes is "
                   "shorter than the %d bytes of the BOOTP header and magic "
                   "cookie", length, BOOTP_OPTIONS);
      return FALSE;
    }
  if (request[BOOTP_OP] != BOOTP_OP_REQUEST)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "invalid DHCP message: op is %u, expected %d "
                   "(BOOTREQUEST)", request[BOOTP_OP], BOOTP_OP_REQUEST);
      return FALSE;
    }
  if (request[BOOTP_HTYPE] != BOOTP_HTYPE_ETHERNET
      || request[BOOTP_HLEN] != BOOTP_HLEN_ETHERNET)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "invalid DHCP message: hardware type %u with address "
                   "length %u, expected Ethernet (%d) with %d",
                   request[BOOTP_HTYPE], request[BOOTP_HLEN],
                   BOOTP_HTYPE_ETHERNET, BOOTP_HLEN_ETHERNET);
      return FALSE;
    }
  if (memcmp (request + BOOTP_COOKIE, dhcp_magic_cookie,
              sizeof (dhcp_magic_cookie)) != 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "invalid DHCP message: magic cookie at offset %d is "
                   "%u.%u.%u.%u, expected 99.130.83.99",
                   BOOTP_COOKIE, request[BOOTP_COOKIE],
                   request[BOOTP_COOKIE + 1], request[BOOTP_COOKIE + 2],
                   request[BOOTP_COOKIE + 3]);
      return FALSE;
    }

  if (!parse_option_area (request, BOOTP_OPTIONS, length, "options", options,
                          error))
    return FALSE;

  /* RFC 2131 section 4.1: the file field is read before sname. */
  if ((options->overload & DHCP_OVERLOAD_FILE)
      && !parse_option_area (request, BOOTP_FILE,
                             BOOTP_FILE + BOOTP_FILE_LEN, "file", options,
                             error))
    return FALSE;
  if ((options->overload & DHCP_OVERLOAD_SNAME)
      && !parse_option_area (request, BOOTP_SNAME,
                             BOOTP_SNAME + BOOTP_SNAME_LEN, "sname", options,
                             error))
    return FALSE;

  if (options->message_type == 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "invalid DHCP message: the message type option (53) is "
                   "missing, and plain BOOTP requests are not answered");
      return FALSE;
    }
  return TRUE;
}

/**
 * DhcpWriter:
 * @data: the reply buffer
 * @size: size of @data in bytes
 * @length: bytes written so far
 * @overflow: set when an option did not fit, so the reply must not be sent
 */
typedef struct {
  guint8 *data;
  gsize size;
  gsize length;
  gboolean overflow;
} DhcpWriter;

static void
put_option (DhcpWriter *writer, DhcpOption code, const void *value,
            gsize length)
{
  g_assert (length <= G_MAXUINT8);

  if (writer->overflow || writer->size - writer->length < 2 + length)
    {
      writer->overflow = TRUE;
      return;
    }
  writer->data[writer->length] = code;
  writer->data[writer->length + 1] = (guint8) length;
  if (length > 0)
    memcpy (writer->data + writer->length + 2, value, length);
  writer->length += 2 + length;
}

static void
put_option_u8 (DhcpWriter *writer, DhcpOption code, guint8 value)
{
  put_option (writer, code, &value, 1);
}

static void
put_option_u16 (DhcpWriter *writer, DhcpOption code, guint16 value)
{
  guint8 bytes[2] = { value >> 8, value & 0xff };

  put_option (writer, code, bytes, sizeof (bytes));
}

static void
put_option_u32 (DhcpWriter *writer, DhcpOption code, guint32 value)
{
  guint8 bytes[4] = {
    value >> 24, (value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff,
  };

  put_option (writer, code, bytes, sizeof (bytes));
}

static void
put_option_address (DhcpWriter *writer, DhcpOption code,
                    struct in_addr address)
{
  put_option (writer, code, &address.s_addr, 4);
}

/**
 * encode_domain:
 * @domain: a domain name in presentation form, with or without the trailing
 *   dot
 * @text: (out caller-allocates): @domain without the trailing dot, for the
 *   domain name option (RFC 2132 section 3.17)
 * @text_length: (out): length of @text
 * @wire: (out caller-allocates): @domain in DNS wire form (RFC 1035 section
 *   3.1), the encoding of the domain search option (RFC 3397 section 2)
 * @wire_length: (out): length of @wire
 * @error: return location for a MOAT_ERROR_CONFIG error
 *
 * Return: %TRUE if @domain is a valid name of 1 to %MOAT_DNS_NAME_MAX
 *   characters with labels of 1 to 63 printable ASCII bytes.
 */
static gboolean
encode_domain (const char *domain, char text[MOAT_DNS_NAME_MAX + 1],
               gsize *text_length, guint8 wire[MOAT_DNS_NAME_MAX + 2],
               gsize *wire_length, GError **error)
{
  gsize length = strlen (domain);
  gsize label_start = 0;
  gsize out = 0;

  if (length > 0 && domain[length - 1] == '.')
    length--;
  if (length == 0 || length > MOAT_DNS_NAME_MAX)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid domain \"%s\" for DHCP: it must have 1 to %d "
                   "characters", domain, MOAT_DNS_NAME_MAX);
      return FALSE;
    }

  for (gsize i = 0; i <= length; i++)
    {
      gsize label_length;

      if (i < length && domain[i] != '.')
        {
          guint8 c = (guint8) domain[i];

          if (c <= 0x20 || c >= 0x7f)
            {
              g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                           "invalid domain \"%s\" for DHCP: byte 0x%02x at "
                           "position %" G_GSIZE_FORMAT " is not printable "
                           "ASCII", domain, c, i);
              return FALSE;
            }
          continue;
        }

      label_length = i - label_start;
      if (label_length == 0 || label_length > 63)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "invalid domain \"%s\" for DHCP: the label at position %"
                       G_GSIZE_FORMAT " has %" G_GSIZE_FORMAT " bytes, "
                       "expected 1 to 63", domain, label_start, label_length);
          return FALSE;
        }
      wire[out++] = (guint8) label_length;
      memcpy (wire + out, domain + label_start, label_length);
      out += label_length;
      label_start = i + 1;
    }
  wire[out++] = 0;

  memcpy (text, domain, length);
  text[length] = '\0';
  *text_length = length;
  *wire_length = out;
  return TRUE;
}

static void
write_header (const guint8 *request, guint8 *reply, guint32 ciaddr,
              guint32 yiaddr)
{
  memset (reply, 0, BOOTP_OPTIONS);
  reply[BOOTP_OP] = BOOTP_OP_REPLY;
  reply[BOOTP_HTYPE] = request[BOOTP_HTYPE];
  reply[BOOTP_HLEN] = request[BOOTP_HLEN];
  memcpy (reply + BOOTP_XID, request + BOOTP_XID, 4);
  memcpy (reply + BOOTP_FLAGS, request + BOOTP_FLAGS, 2);
  memcpy (reply + BOOTP_CIADDR, &ciaddr, 4);
  memcpy (reply + BOOTP_YIADDR, &yiaddr, 4);
  /* siaddr stays 0 because moat offers no boot server. */
  memcpy (reply + BOOTP_GIADDR, request + BOOTP_GIADDR, 4);
  memcpy (reply + BOOTP_CHADDR, request + BOOTP_CHADDR, BOOTP_CHADDR_LEN);
  memcpy (reply + BOOTP_COOKIE, dhcp_magic_cookie,
          sizeof (dhcp_magic_cookie));
}

/*
 * Writes the network layout options of an OFFER or ACK. RFC 2131 section
 * 4.3.5 forbids the lease time in the ACK to an INFORM.
 */
static gboolean
put_layout_options (DhcpWriter *writer, const MoatDhcpConfig *config,
                    gboolean with_lease, GError **error)
{
  if (config->mtu < MOAT_MTU_MIN || config->mtu > MOAT_MTU_MAX)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid MTU %u for the DHCP interface MTU option: use %d "
                   "to %d", config->mtu, MOAT_MTU_MIN, MOAT_MTU_MAX);
      return FALSE;
    }

  if (with_lease)
    put_option_u32 (writer, DHCP_OPTION_LEASE_TIME, config->lease_seconds);
  put_option_address (writer, DHCP_OPTION_SUBNET_MASK, config->netmask);
  put_option_address (writer, DHCP_OPTION_ROUTER, config->gateway);
  put_option_address (writer, DHCP_OPTION_DNS_SERVER, config->dns);
  put_option_u16 (writer, DHCP_OPTION_INTERFACE_MTU, (guint16) config->mtu);

  if (config->domain != NULL)
    {
      char text[MOAT_DNS_NAME_MAX + 1];
      guint8 wire[MOAT_DNS_NAME_MAX + 2];
      gsize text_length;
      gsize wire_length;

      if (!encode_domain (config->domain, text, &text_length, wire,
                          &wire_length, error))
        return FALSE;
      put_option (writer, DHCP_OPTION_DOMAIN_NAME, text, text_length);
      put_option (writer, DHCP_OPTION_DOMAIN_SEARCH, wire, wire_length);
    }
  return TRUE;
}

/**
 * build_reply:
 * @config: the layout to hand out
 * @request: the client's message, already checked by parse_request()
 * @options: the options read from @request
 * @reply_type: %DHCP_OFFER, %DHCP_ACK or %DHCP_NAK
 * @reply: buffer for the reply
 * @reply_size: size of @reply in bytes
 * @error: return location for a MOAT_ERROR_LIMIT or MOAT_ERROR_CONFIG error
 *
 * Fills the fields and options of RFC 2131 section 4.3.1, table 3.
 *
 * Return: the length of the reply, or 0 on error.
 */
static gsize
build_reply (const MoatDhcpConfig *config, const guint8 *request,
             const DhcpRequestOptions *options, DhcpMessageType reply_type,
             guint8 *reply, gsize reply_size, GError **error)
{
  DhcpWriter writer = { .data = reply, .size = reply_size };
  gboolean is_inform = options->message_type == DHCP_INFORM;
  guint32 ciaddr = 0;
  guint32 yiaddr = 0;
  gsize limit;

  if (reply_size < DHCP_REPLY_MIN)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_LIMIT,
                   "DHCP reply buffer of %" G_GSIZE_FORMAT " bytes is too "
                   "small, at least %d are needed", reply_size,
                   DHCP_REPLY_MIN);
      return 0;
    }

  /* A NAK carries no addresses. An ACK repeats the client's ciaddr. */
  if (reply_type == DHCP_ACK)
    memcpy (&ciaddr, request + BOOTP_CIADDR, 4);
  if (reply_type != DHCP_NAK && !is_inform)
    yiaddr = config->guest.s_addr;
  write_header (request, reply, ciaddr, yiaddr);
  writer.length = BOOTP_OPTIONS;

  put_option_u8 (&writer, DHCP_OPTION_MESSAGE_TYPE, reply_type);
  put_option_address (&writer, DHCP_OPTION_SERVER_ID, config->gateway);

  if (reply_type == DHCP_NAK)
    {
      static const char message[] = "requested address is not available";

      put_option (&writer, DHCP_OPTION_MESSAGE, message, strlen (message));
    }
  else if (!put_layout_options (&writer, config, !is_inform, error))
    {
      return 0;
    }

  /* RFC 6842: a server returns the client identifier it received. */
  if (options->client_id != NULL)
    put_option (&writer, DHCP_OPTION_CLIENT_ID, options->client_id,
                options->client_id_length);

  if (writer.overflow || writer.length >= reply_size)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_LIMIT,
                   "DHCP reply does not fit in the buffer of %"
                   G_GSIZE_FORMAT " bytes", reply_size);
      return 0;
    }
  reply[writer.length++] = DHCP_OPTION_END;

  if (writer.length < DHCP_REPLY_MIN)
    {
      memset (reply + writer.length, DHCP_OPTION_PAD,
              DHCP_REPLY_MIN - writer.length);
      writer.length = DHCP_REPLY_MIN;
    }

  limit = DHCP_MESSAGE_MIN_ACCEPTED;
  if (options->max_message_size > 0)
    limit = MAX (limit, (gsize) options->max_message_size
                          - DHCP_IP_UDP_HEADERS_LEN);
  if (writer.length > limit)
    {
      /* Only a long domain makes a reply this large. */
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_LIMIT,
                   "DHCP reply of %" G_GSIZE_FORMAT " bytes exceeds the "
                   "client's maximum of %" G_GSIZE_FORMAT " bytes: use a "
                   "shorter domain", writer.length, limit);
      return 0;
    }

  return writer.length;
}

/**
 * moat_dhcp_handle:
 * @config: the layout to hand out
 * @request: UDP payload of a message from the guest's DHCP client
 * @request_length: length of @request in bytes
 * @reply: buffer for the reply, at least 300 bytes
 * @reply_size: size of @reply in bytes
 * @error: return location for a MOAT_ERROR_PROTOCOL error on a malformed
 *   request, MOAT_ERROR_CONFIG on an invalid @config, or MOAT_ERROR_LIMIT
 *   when the reply does not fit
 *
 * Answers a DHCPDISCOVER with a DHCPOFFER, a DHCPREQUEST with a DHCPACK or,
 * if it asks for another address than @config->guest, a DHCPNAK, and a
 * DHCPINFORM with a DHCPACK without address (RFC 2131 section 4.3). A
 * DHCPREQUEST that names another server, a DHCPRELEASE and a DHCPDECLINE get
 * no reply.
 *
 * Return: the length of the reply, or 0 if there is no reply or on error
 */
gsize
moat_dhcp_handle (const MoatDhcpConfig *config, const guint8 *request,
                  gsize request_length, guint8 *reply, gsize reply_size,
                  GError **error)
{
  DhcpRequestOptions options = { 0 };
  struct in_addr ciaddr;
  DhcpMessageType reply_type;

  g_return_val_if_fail (config != NULL, 0);
  g_return_val_if_fail (request != NULL || request_length == 0, 0);
  g_return_val_if_fail (reply != NULL, 0);
  g_return_val_if_fail (error == NULL || *error == NULL, 0);

  if (!parse_request (request, request_length, &options, error))
    return 0;

  g_debug ("%s from %02x:%02x:%02x:%02x:%02x:%02x",
           message_type_name (options.message_type),
           request[BOOTP_CHADDR], request[BOOTP_CHADDR + 1],
           request[BOOTP_CHADDR + 2], request[BOOTP_CHADDR + 3],
           request[BOOTP_CHADDR + 4], request[BOOTP_CHADDR + 5]);

  switch ((DhcpMessageType) options.message_type)
    {
    case DHCP_DISCOVER:
      reply_type = DHCP_OFFER;
      break;

    case DHCP_REQUEST:
      /* RFC 2131 section 4.3.2: a client that selected another server's
       * offer names that server, and this server stays silent. */
      if (options.has_server_id
          && options.server_id.s_addr != config->gateway.s_addr)
        return 0;

      /* INIT-REBOOT and SELECTING send option 50, RENEWING and REBINDING
       * send ciaddr instead. */
      memcpy (&ciaddr.s_addr, request + BOOTP_CIADDR, 4);
      if (options.has_requested_address)
        reply_type = options.requested_address.s_addr == config->guest.s_addr
                       ? DHCP_ACK : DHCP_NAK;
      else if (ciaddr.s_addr != 0)
        reply_type = ciaddr.s_addr == config->guest.s_addr
                       ? DHCP_ACK : DHCP_NAK;
      else
        reply_type = DHCP_ACK;
      break;

    case DHCP_INFORM:
      reply_type = DHCP_ACK;
      break;

    case DHCP_DECLINE:
    case DHCP_RELEASE:
      /* With a single guest and a fixed address there is nothing to free
       * or to mark as in use. */
      return 0;

    case DHCP_OFFER:
    case DHCP_ACK:
    case DHCP_NAK:
    default:
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "invalid DHCP message: %s (%u) is sent by servers, not "
                   "by clients", message_type_name (options.message_type),
                   options.message_type);
      return 0;
    }

  return build_reply (config, request, &options, reply_type, reply,
                      reply_size, error);
}
