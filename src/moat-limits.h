/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * moat-limits.h - every bound that moat places on input and resources
 *
 * All buffers that grow with guest, upstream or configuration input have a
 * maximum here. Exceeding one is an error that is reported and audited,
 * never a silent truncation.
 */
#pragma once

/* Ethernet header: destination MAC, source MAC, ethertype. */
#define MOAT_ETH_HEADER_LEN 14

/*
 * Maximum frame accepted on the netdev transport. QEMU's stream netdev
 * prefixes each frame with a 32-bit length. An MTU of 65520 gives frames
 * of 65534 bytes, and the headroom covers a VLAN tag and padding.
 */
#define MOAT_FRAME_MAX (65535 + 64)

/* Largest MTU moat accepts: libslirp's own maximum (IF_MTU_MAX). */
#define MOAT_MTU_MIN 576
#define MOAT_MTU_MAX 65520

/* Bytes of frames queued toward QEMU before further frames are dropped. */
#define MOAT_TRANSPORT_QUEUE_MAX (4 * 1024 * 1024)

/* DNS message size over UDP without EDNS (RFC 1035 section 4.2.1). */
#define MOAT_DNS_UDP_MAX 512
/* Longest presentation-format name (RFC 1035 section 2.3.4). */
#define MOAT_DNS_NAME_MAX 253

/* Synthetic names kept at once; the least recently used is reused after. */
#define MOAT_NAMES_MAX 4096

/* Guest TCP connections handled at once. Each holds about three file
 * descriptors; guard.c lowers the cap when RLIMIT_NOFILE cannot be raised
 * far enough. */
#define MOAT_FLOWS_MAX 4096

/* Guest TCP handshakes (SYN seen, no ACK yet) tracked at once. libslirp
 * keeps socket buffers for each half-open connection until its 75 s
 * SYN_RECEIVED timeout: about 260 KiB each once touched, measured by the
 * syn-flood fault test with MALLOC_PERTURB_ set. */
#define MOAT_HANDSHAKES_MAX 256
/* Seconds a handshake counts against %MOAT_HANDSHAKES_MAX: libslirp's
 * TCPTV_KEEP_INIT. */
#define MOAT_HANDSHAKE_TIMEOUT_S 75

/* Guest forwards (synthetic address, port) registered in libslirp at once.
 * libslirp scans them as a list per new connection, so a port scan must not
 * grow it without bound. */
#define MOAT_FORWARDS_MAX 8192

/* Bytes peeked from a new connection to classify it (TLS, HTTP, other). */
#define MOAT_SNIFF_MAX 16384
/* Seconds a new connection may stay silent before it is closed. */
#define MOAT_SNIFF_TIMEOUT_S 30

/* HTTP/1.1 request head limits (request line, header lines, count). */
#define MOAT_HTTP_REQUEST_LINE_MAX 8192
#define MOAT_HTTP_HEAD_MAX 65536
#define MOAT_HTTP_HEADERS_MAX 100
/* Longest chunk-size line, including extensions. */
#define MOAT_HTTP_CHUNK_LINE_MAX 1024
/* Seconds a guest may take to send a complete request head, by default
 * ([moat] head-timeout). */
#define MOAT_HTTP_HEAD_TIMEOUT_S 60
/* Seconds an idle keep-alive guest connection is kept open. */
#define MOAT_HTTP_IDLE_TIMEOUT_S 120

/* Seconds without progress before an upstream transfer fails with 504, by
 * default ([upstream] stall-timeout). */
#define MOAT_UPSTREAM_STALL_TIMEOUT_S 60
/* Largest value of a timeout key in the configuration: one hour. */
#define MOAT_TIMEOUT_MAX_S 3600

/*
 * Body bytes buffered per direction before the sender is paused. This is
 * what bounds memory for large uploads and downloads.
 */
#define MOAT_BODY_BUFFER_MAX (256 * 1024)

/* Leaf certificates cached per session. */
#define MOAT_LEAF_CACHE_MAX 1024
