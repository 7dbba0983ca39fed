/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * run.c - moat run: one command in a network namespace behind moat
 *
 * moat forks a child that enters new user, network and mount namespaces
 * (without the user namespace only where root cannot create one). The
 * child creates a TAP device and gives it the guest's side of the
 * "-netdev user" layout (10.0.2.15/24, default route via 10.0.2.2) with
 * ioctl()s. It bind-mounts
 * a resolv.conf that names moat's DNS address over /etc/resolv.conf and
 * passes the TAP descriptor to moat over a socketpair (SCM_RIGHTS). moat
 * builds its usual session on that descriptor, writes the session CA, and
 * sends one byte back; only then does the child execute COMMAND, so
 * COMMAND never sees a network without moat behind it.
 *
 * COMMAND inherits standard input, output and error. Its exit status
 * becomes moat's. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to moat alone
 * are forwarded to it; the same signals from the terminal reach both
 * processes already, so moat ignores those and waits for COMMAND to exit.
 */
#define G_LOG_DOMAIN "moat-run"

#include "run.h"

#include <glib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Settings of moat_log_writer(), set once by moat_log_init(). */
static gboolean log_verbose;
static gboolean log_hide_messages;

/* Whether a log line comes from moat ("moat" or "moat-MODULE"), not from
 * GLib, GIO or another library. */
static gboolean
log_domain_is_moat (const GLogField *fields, gsize n_fields)
{
  for (gsize i = 0; i < n_fields; i++)
    {
      const char *domain = fields[i].value;
      gsize length;

      if (strcmp (fields[i].key, "GLIB_DOMAIN") != 0 || domain == NULL)
        continue;
      length = fields[i].length < 0 ? strlen (domain)
                                    : (gsize) fields[i].length;
      return (length == 4 && memcmp (domain, "moat", 4) == 0)
             || (length > 5 && memcmp (domain, "moat-", 5) == 0);
    }
  return FALSE;
}

static GLogWriterOutput
moat_log_writer (GLogLevelFlags log_level, const GLogField *fields,
                 gsize n_fields, gpointer user_data G_GNUC_UNUSED)
{
  gboolean chatty = (log_level & (G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG)) != 0;

  if (log_hide_messages && !log_verbose
      && (chatty || (log_level & G_LOG_LEVEL_MESSAGE)))
    return G_LOG_WRITER_HANDLED;
  /* --verbose enables debug output for every domain, so this drops the
   * lines of GLib and GIO. Without --verbose, G_MESSAGES_DEBUG selects
   * domains as usual. */
  if (log_verbose && chatty && !log_domain_is_moat (fields, n_fields))
    return G_LOG_WRITER_HANDLED;
  return g_log_writer_default (log_level, fields, n_fields, NULL);
}

/**
 * moat_log_init:
 * @verbose: show the debug and info lines of moat's own log domains, and
 *   no others
 * @hide_messages: hide messages, and info and debug lines unless
 *   @verbose; moat run uses it because they would mix with COMMAND's
 *   output
 *
 * Sends every log line to standard error, because standard output may
 * carry the audit log or COMMAND's output. Warnings and errors always
 * show. Call it once, before the first log line.
 */
void
moat_log_init (gboolean verbose, gboolean hide_messages)
{
  log_verbose = verbose;
  log_hide_messages = hide_messages;
  g_log_writer_default_set_use_stderr (TRUE);
  g_log_set_writer_func (moat_log_writer, NULL, NULL);
  if (verbose)
    g_log_set_debug_enabled (TRUE);
}

#ifdef __linux__

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <arpa/inet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/route.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "error.h"
#include "moat-limits.h"
#include "session.h"
#include "transport.h"

/* Name of the TAP device inside the namespace. */
#define TAP_NAME "tap0"
/* Byte moat sends to the child once the session runs. */
#define GO_BYTE 'g'
/* Bytes the child sends once in its namespaces: moat is to write the
 * user namespace's id maps, or nothing is to be done. */
#define MAP_REQUEST_BYTE 'u'
#define MAP_NONE_BYTE 'n'
/* Byte moat sends back once it has written the maps. */
#define MAP_DONE_BYTE 'm'

/* Variables that point clients at the session CA bundle. */
static const char *const ca_variables[] = {
  "SSL_CERT_FILE",        /* OpenSSL, Python's ssl, openssl s_client */
  "CURL_CA_BUNDLE",       /* curl */
  "REQUESTS_CA_BUNDLE",   /* Python requests */
  "NODE_EXTRA_CA_CERTS",  /* Node.js */
  "GIT_SSL_CAINFO",       /* git over HTTPS */
};

/* Signals forwarded to COMMAND. */
static const int forwarded_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

static volatile pid_t child_pid = -1;

typedef struct {
  char *config_path;
  char *audit_path;
  char *ca_cert_out;
  int mtu;
  gboolean verbose;
  char **command;
} RunOptions;

/**
 * RunPlan:
 * @folder: private folder for resolv.conf and, by default, the CA bundle
 * @resolv_path: COMMAND's resolv.conf
 * @ca_path: the session CA certificate (PEM) that COMMAND trusts
 * @mtu: MTU of the TAP device in bytes
 * @command: COMMAND and its arguments
 */
typedef struct {
  char *folder;
  char *resolv_path;
  char *ca_path;
  guint mtu;
  char **command;
} RunPlan;

/* ------------------------------------------------------------------ */
/* Child: namespaces, TAP device, exec. Runs between fork() and exec(),
 * so it reports with fprintf() and ends with _exit(). */

static void G_GNUC_NORETURN G_GNUC_PRINTF (1, 2)
child_fail (const char *format, ...)
{
  va_list args;

  fputs ("moat run: ", stderr);
  va_start (args, format);
  vfprintf (stderr, format, args);
  va_end (args);
  fputc ('\n', stderr);
  _exit (MOAT_RUN_EXIT_FAILURE);
}

static int
write_text_file (const char *path, const char *text)
{
  int fd = open (path, O_WRONLY | O_CLOEXEC);
  gsize length = strlen (text);
  ssize_t n;

  if (fd < 0)
    return errno;
  n = write (fd, text, length);
  if (n < 0 || (gsize) n != length)
    {
      int saved_errno = n < 0 ? errno : EIO;
      close (fd);
      return saved_errno;
    }
  close (fd);
  return 0;
}

/* Returns the first line of a sysctl file as a number, or -1. */
static long
read_sysctl (const char *path)
{
  char text[32] = "";
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  ssize_t n;

  if (fd < 0)
    return -1;
  n = read (fd, text, sizeof text - 1);
  close (fd);
  if (n <= 0)
    return -1;
  text[n] = '\0';
  return strtol (text, NULL, 10);
}

/* Explains which kernel setting keeps this user from creating or using a
 * user namespace, given the errno of the failed call. */
static const char *
userns_hint (int error_number)
{
  gboolean root = geteuid () == 0;

  /* ENOSPC: the count of user namespaces reached user.max_user_namespaces
   * of this or an ancestor namespace (user_namespaces(7)). It applies to
   * root too. */
  if (error_number == ENOSPC
      || read_sysctl ("/proc/sys/user/max_user_namespaces") == 0)
    return root
      ? "user.max_user_namespaces is 0 or all the user namespaces it allows "
        "exist: raise it with 'sysctl user.max_user_namespaces=10000'"
      : "user.max_user_namespaces is 0 or all the user namespaces it allows "
        "exist: raise it with 'sysctl user.max_user_namespaces=10000', or "
        "run moat as root";
  /* EUSERS: user namespaces nest at most 32 deep. */
  if (error_number == EUSERS)
    return "moat already runs 32 user namespaces deep, the kernel's limit: "
           "start it from a less nested namespace";
  if (!root && read_sysctl ("/proc/sys/kernel/unprivileged_userns_clone")
               == 0)
    return "unprivileged user namespaces are disabled: enable them with "
           "'sysctl kernel.unprivileged_userns_clone=1', or run moat as root";
  if (!root
      && read_sysctl ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
         == 1)
    return "AppArmor restricts unprivileged user namespaces: allow them "
           "with 'sysctl kernel.apparmor_restrict_unprivileged_userns=0' or "
           "an AppArmor profile for moat that grants 'userns,', or run moat "
           "as root";
  return root
    ? "the kernel or a security module forbids it (seccomp in a container "
      "does): check user.max_user_namespaces, and the container's seccomp "
      "profile"
    : "the kernel or a security module forbids it (seccomp in a container "
      "does): check user.max_user_namespaces, "
      "kernel.unprivileged_userns_clone and "
      "kernel.apparmor_restrict_unprivileged_userns, or run moat as root";
}

static void
child_send_byte (int socket_fd, char byte)
{
  if (send (socket_fd, &byte, 1, MSG_NOSIGNAL) != 1)
    child_fail ("cannot reach moat over the socketpair: %s",
                g_strerror (errno));
}

/* Maps the caller's own uid and gid into the new user namespace, so that
 * COMMAND runs as the same user with the same file ownership. */
static void
child_map_own_ids (uid_t uid, gid_t gid)
{
  char map[64];
  int error;

  /* Writing gid_map needs setgroups denied first (user_namespaces(7)). */
  error = write_text_file ("/proc/self/setgroups", "deny");
  if (error != 0 && error != ENOENT)
    child_fail ("cannot write /proc/self/setgroups: %s; %s",
                g_strerror (error), userns_hint (error));
  g_snprintf (map, sizeof map, "%u %u 1", (unsigned) uid, (unsigned) uid);
  error = write_text_file ("/proc/self/uid_map", map);
  if (error != 0)
    child_fail ("cannot write /proc/self/uid_map: %s; %s",
                g_strerror (error), userns_hint (error));
  g_snprintf (map, sizeof map, "%u %u 1", (unsigned) gid, (unsigned) gid);
  error = write_text_file ("/proc/self/gid_map", map);
  if (error != 0)
    child_fail ("cannot write /proc/self/gid_map: %s; %s",
                g_strerror (error), userns_hint (error));
}

/*
 * Enters new user, network and mount namespaces. For root the user
 * namespace matters too: capabilities in it do not reach the host's
 * namespaces, so COMMAND cannot setns() back into the host's network.
 * Only a process outside a user namespace may map more ids than its own,
 * so moat writes root's maps when the child sends MAP_REQUEST_BYTE.
 */
static void
child_enter_namespaces (int socket_fd)
{
  uid_t uid = getuid ();
  gid_t gid = getgid ();
  int flags = CLONE_NEWNET | CLONE_NEWNS;
  char reply = 0;

  if (geteuid () != 0)
    {
      if (unshare (flags | CLONE_NEWUSER) < 0)
        {
          int saved_errno = errno;

          child_fail ("cannot create a user namespace: %s; %s",
                      g_strerror (saved_errno), userns_hint (saved_errno));
        }
      child_map_own_ids (uid, gid);
      child_send_byte (socket_fd, MAP_NONE_BYTE);
      return;
    }

  if (unshare (flags | CLONE_NEWUSER) < 0)
    {
      int saved_errno = errno;

      /* NOTE: without a user namespace (a kernel or container that forbids
       * them), root's COMMAND keeps the capabilities to leave the
       * namespace. */
      if (unshare (flags) < 0)
        child_fail ("cannot create network and mount namespaces: %s (a "
                    "user namespace failed with: %s; %s)", g_strerror (errno),
                    g_strerror (saved_errno), userns_hint (saved_errno));
      fprintf (stderr, "moat run: warning: cannot create a user namespace "
               "(%s), so COMMAND keeps root's capabilities and can leave "
               "the network namespace; %s\n", g_strerror (saved_errno),
               userns_hint (saved_errno));
      child_send_byte (socket_fd, MAP_NONE_BYTE);
      return;
    }
  child_send_byte (socket_fd, MAP_REQUEST_BYTE);
  if (read (socket_fd, &reply, 1) != 1 || reply != MAP_DONE_BYTE)
    _exit (MOAT_RUN_EXIT_FAILURE);
}

static void
child_mount_resolv_conf (const RunPlan *plan)
{
  /* Without MS_PRIVATE the bind mount would propagate back to the host's
   * mount namespace where "/" is shared (the systemd default). */
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    child_fail ("cannot make the mount namespace private: %s",
                g_strerror (errno));
  if (mount (plan->resolv_path, "/etc/resolv.conf", NULL, MS_BIND, NULL) < 0)
    child_fail ("cannot bind-mount %s over /etc/resolv.conf: %s%s",
                plan->resolv_path, g_strerror (errno),
                errno == ENOENT ? "; /etc/resolv.conf must exist (a "
                "dangling symbolic link does not count): create an empty "
                "one" : "");
}

static int
child_open_tap (void)
{
  struct ifreq request;
  int fd = open ("/dev/net/tun", O_RDWR | O_CLOEXEC);

  if (fd < 0)
    child_fail ("cannot open /dev/net/tun: %s%s", g_strerror (errno),
                errno == ENOENT ? "; load the tun module (modprobe tun)" : "");
  memset (&request, 0, sizeof request);
  request.ifr_flags = IFF_TAP | IFF_NO_PI;
  g_strlcpy (request.ifr_name, TAP_NAME, sizeof request.ifr_name);
  if (ioctl (fd, TUNSETIFF, &request) < 0)
    {
      int saved_errno = errno;
      gboolean hint = saved_errno == EPERM && geteuid () != 0;

      child_fail ("cannot create the TAP device %s: %s%s%s", TAP_NAME,
                  g_strerror (saved_errno), hint ? "; " : "",
                  hint ? userns_hint (saved_errno) : "");
    }
  return fd;
}

static void
set_ipv4 (struct sockaddr *address, const char *text)
{
  struct sockaddr_in *in = (struct sockaddr_in *) address;

  memset (in, 0, sizeof *in);
  in->sin_family = AF_INET;
  inet_pton (AF_INET, text, &in->sin_addr);
}

static void
child_ioctl (int control, unsigned long operation, void *argument,
             const char *what)
{
  if (ioctl (control, operation, argument) < 0)
    child_fail ("cannot %s: %s", what, g_strerror (errno));
}

static void
child_set_up (int control, const char *name)
{
  struct ifreq request;

  memset (&request, 0, sizeof request);
  g_strlcpy (request.ifr_name, name, sizeof request.ifr_name);
  child_ioctl (control, SIOCGIFFLAGS, &request, "read interface flags");
  request.ifr_flags |= IFF_UP;
  child_ioctl (control, SIOCSIFFLAGS, &request, "bring an interface up");
}

/* Gives the TAP device the guest's address, MTU and default route, and
 * brings it and loopback up. */
static void
child_configure_network (const RunPlan *plan)
{
  g_autofree char *ipv6_path = NULL;
  struct ifreq request;
  struct rtentry route;
  int control = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  if (control < 0)
    child_fail ("cannot open a socket for interface set-up: %s",
                g_strerror (errno));
  child_set_up (control, "lo");

  /* moat offers no IPv6, and without it the kernel sends no router
   * solicitations or duplicate address probes. Optional: a kernel
   * without IPv6 has no such file. */
  ipv6_path = g_strdup_printf ("/proc/sys/net/ipv6/conf/%s/disable_ipv6",
                               TAP_NAME);
  (void) write_text_file (ipv6_path, "1");

  memset (&request, 0, sizeof request);
  g_strlcpy (request.ifr_name, TAP_NAME, sizeof request.ifr_name);
  request.ifr_mtu = plan->mtu;
  child_ioctl (control, SIOCSIFMTU, &request, "set the TAP device's MTU");
  set_ipv4 (&request.ifr_addr, MOAT_GUEST_ADDRESS);
  child_ioctl (control, SIOCSIFADDR, &request,
               "set the TAP device's address");
  set_ipv4 (&request.ifr_netmask, MOAT_GUEST_NETMASK);
  child_ioctl (control, SIOCSIFNETMASK, &request,
               "set the TAP device's netmask");
  child_set_up (control, TAP_NAME);

  memset (&route, 0, sizeof route);
  set_ipv4 (&route.rt_dst, "0.0.0.0");
  set_ipv4 (&route.rt_genmask, "0.0.0.0");
  set_ipv4 (&route.rt_gateway, MOAT_GATEWAY_ADDRESS);
  route.rt_flags = RTF_UP | RTF_GATEWAY;
  route.rt_dev = (char *) TAP_NAME;
  child_ioctl (control, SIOCADDRT, &route, "add the default route");
  close (control);
}

static void
child_send_fd (int socket_fd, int fd)
{
  char byte = 't';
  struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
  union {
    struct cmsghdr header;
    char buffer[CMSG_SPACE (sizeof (int))];
  } control;
  struct msghdr message = {
    .msg_iov = &iov,
    .msg_iovlen = 1,
    .msg_control = control.buffer,
    .msg_controllen = sizeof control.buffer,
  };
  struct cmsghdr *header = CMSG_FIRSTHDR (&message);

  memset (&control, 0, sizeof control);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN (sizeof (int));
  memcpy (CMSG_DATA (header), &fd, sizeof (int));
  if (sendmsg (socket_fd, &message, MSG_NOSIGNAL) < 0)
    child_fail ("cannot pass the TAP device to moat: %s", g_strerror (errno));
}

static void G_GNUC_NORETURN
child_exec (const RunPlan *plan)
{
  sigset_t none;
  int saved_errno;

  for (gsize i = 0; i < G_N_ELEMENTS (ca_variables); i++)
    setenv (ca_variables[i], plan->ca_path, 1);

  /* Ignored signals stay ignored across exec(); moat ignores SIGPIPE. */
  signal (SIGPIPE, SIG_DFL);
  for (gsize i = 0; i < G_N_ELEMENTS (forwarded_signals); i++)
    signal (forwarded_signals[i], SIG_DFL);
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);

  execvp (plan->command[0], plan->command);
  saved_errno = errno;
  /* execve() fails on a directory with EACCES, which reads as a
   * permission problem. A name without '/' was searched in PATH, so
   * there is no single path to test. */
  if (saved_errno == EACCES && strchr (plan->command[0], '/') != NULL
      && g_file_test (plan->command[0], G_FILE_TEST_IS_DIR))
    fprintf (stderr, "moat run: cannot execute %s: it is a directory; give "
             "a program as COMMAND\n", plan->command[0]);
  else
    fprintf (stderr, "moat run: cannot execute %s: %s\n", plan->command[0],
             g_strerror (saved_errno));
  _exit (saved_errno == ENOENT ? MOAT_RUN_EXIT_NOT_FOUND
                               : MOAT_RUN_EXIT_CANNOT_EXECUTE);
}

static void G_GNUC_NORETURN
child_main (const RunPlan *plan, int socket_fd, pid_t parent)
{
  char go = 0;
  ssize_t n;
  int tap_fd;

  /* COMMAND has no network without moat: end it when moat ends. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (getppid () != parent)
    _exit (MOAT_RUN_EXIT_FAILURE);

  child_enter_namespaces (socket_fd);
  child_mount_resolv_conf (plan);
  tap_fd = child_open_tap ();
  child_configure_network (plan);
  child_send_fd (socket_fd, tap_fd);
  close (tap_fd);

  do
    n = read (socket_fd, &go, 1);
  while (n < 0 && errno == EINTR);
  /* moat reported its own failure; nothing to add. */
  if (n != 1 || go != GO_BYTE)
    _exit (MOAT_RUN_EXIT_FAILURE);
  close (socket_fd);
  child_exec (plan);
}

/* ------------------------------------------------------------------ */
/* Parent: the moat session. */

static gboolean
receive_fd (int socket_fd, int *fd, GError **error)
{
  char byte;
  struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
  union {
    struct cmsghdr header;
    char buffer[CMSG_SPACE (sizeof (int))];
  } control;
  struct msghdr message = {
    .msg_iov = &iov,
    .msg_iovlen = 1,
    .msg_control = control.buffer,
    .msg_controllen = sizeof control.buffer,
  };
  struct cmsghdr *header;
  ssize_t n;

  do
    n = recvmsg (socket_fd, &message, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    {
      int saved_errno = errno;
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_IO,
                   "receiving the TAP device failed: %s",
                   g_strerror (saved_errno));
      return FALSE;
    }
  header = CMSG_FIRSTHDR (&message);
  if (n == 0 || header == NULL || header->cmsg_level != SOL_SOCKET
      || header->cmsg_type != SCM_RIGHTS
      || header->cmsg_len != CMSG_LEN (sizeof (int)))
    {
      /* The child exits after printing why. */
      g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_IO,
                           "the namespace set-up ended without a TAP device");
      return FALSE;
    }
  memcpy (fd, CMSG_DATA (header), sizeof (int));
  return TRUE;
}

/**
 * write_identity_map:
 * @pid: a process that has just entered a new user namespace
 * @name: "uid_map" or "gid_map"
 * @error: return location for an error
 *
 * Maps every id of moat's own user namespace to itself in @pid's new
 * one, following moat's /proc/self/@name line by line.
 *
 * Return: %TRUE when the map is written
 */
static gboolean
write_identity_map (pid_t pid, const char *name, GError **error)
{
  g_autofree char *own_path = g_build_filename ("/proc/self", name, NULL);
  g_autofree char *child_path = g_strdup_printf ("/proc/%d/%s", (int) pid,
                                                 name);
  g_autofree char *own_map = NULL;
  g_auto (GStrv) lines = NULL;
  g_autoptr (GString) map = g_string_new (NULL);
  int saved_errno;

  if (!g_file_get_contents (own_path, &own_map, NULL, error))
    return FALSE;
  lines = g_strsplit (own_map, "\n", -1);
  for (gsize i = 0; lines[i] != NULL; i++)
    {
      g_auto (GStrv) fields = g_strsplit_set (g_strstrip (lines[i]), " \t",
                                              -1);
      g_autoptr (GPtrArray) words = g_ptr_array_new ();
      guint64 first;
      guint64 count;

      for (gsize j = 0; fields[j] != NULL; j++)
        if (fields[j][0] != '\0')
          g_ptr_array_add (words, fields[j]);
      if (words->len == 0)
        continue;
      /* Each line is "first-inside first-outside count"; the inside ids
       * are the ones valid in moat's namespace. */
      if (words->len != 3
          || !g_ascii_string_to_unsigned (words->pdata[0], 10, 0, G_MAXUINT32,
                                          &first, NULL)
          || !g_ascii_string_to_unsigned (words->pdata[2], 10, 1, G_MAXUINT32,
                                          &count, NULL))
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_IO,
                       "invalid line \"%s\" in %s", lines[i], own_path);
          return FALSE;
        }
      g_string_append_printf (map, "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                              " %" G_GUINT64_FORMAT "\n", first, first, count);
    }

  saved_errno = write_text_file (child_path, map->str);
  if (saved_errno != 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_IO,
                   "cannot write %s for COMMAND's user namespace: %s",
                   child_path, g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

/* Writes the child's user namespace id maps when it requests them.
 * @error must not be %NULL, because the message is printed here. */
static gboolean
serve_map_request (int socket_fd, pid_t pid, GError **error)
{
  char byte = 0;
  char done = MAP_DONE_BYTE;
  ssize_t n;

  do
    n = read (socket_fd, &byte, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1)
    {
      /* The child exits after printing why. */
      g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_IO,
                           "the namespace set-up failed");
      return FALSE;
    }
  if (byte == MAP_NONE_BYTE)
    return TRUE;
  if (byte != MAP_REQUEST_BYTE)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_IO,
                   "unexpected byte 0x%02x from the namespace set-up",
                   (guint8) byte);
      fprintf (stderr, "moat run: %s\n", (*error)->message);
      return FALSE;
    }
  if (!write_identity_map (pid, "uid_map", error)
      || !write_identity_map (pid, "gid_map", error))
    {
      fprintf (stderr, "moat run: %s\n", (*error)->message);
      return FALSE;
    }
  if (write (socket_fd, &done, 1) != 1)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_IO,
                   "cannot reply to the namespace set-up: %s",
                   g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

static void
on_forwarded_signal (int signal_number, siginfo_t *info, void *context)
{
  /* SI_KERNEL marks a signal from the terminal, which COMMAND, in the
   * same foreground process group, has received already. */
  if (info->si_code != SI_KERNEL && child_pid > 0)
    kill (child_pid, signal_number);
}

static void
install_signal_forwarding (void)
{
  struct sigaction action;

  memset (&action, 0, sizeof action);
  action.sa_sigaction = on_forwarded_signal;
  action.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset (&action.sa_mask);
  for (gsize i = 0; i < G_N_ELEMENTS (forwarded_signals); i++)
    sigaction (forwarded_signals[i], &action, NULL);
}

typedef struct {
  MoatSession *session;
  gboolean exited;
  int wait_status;
} ChildState;

static void
on_child_exit (GPid pid, int wait_status, gpointer user_data)
{
  ChildState *state = user_data;

  state->exited = TRUE;
  state->wait_status = wait_status;
  g_main_loop_quit (state->session->loop);
}

/* Shell convention: 128 + N for a command killed by signal N. */
static int
exit_status_of (int wait_status)
{
  if (WIFEXITED (wait_status))
    return WEXITSTATUS (wait_status);
  if (WIFSIGNALED (wait_status))
    return 128 + WTERMSIG (wait_status);
  return MOAT_RUN_EXIT_FAILURE;
}

static int
wait_for_child (pid_t pid)
{
  int wait_status;

  while (waitpid (pid, &wait_status, 0) < 0)
    if (errno != EINTR)
      return MOAT_RUN_EXIT_FAILURE;
  return exit_status_of (wait_status);
}

static gboolean
write_resolv_conf (const char *path, GError **error)
{
  const char *text = "# Written by moat run: moat answers every DNS query.\n"
                     "nameserver " MOAT_DNS_ADDRESS "\n";

  return g_file_set_contents_full (path, text, -1,
                                   G_FILE_SET_CONTENTS_CONSISTENT, 0644,
                                   error);
}

static void
run_plan_clear (RunPlan *plan, gboolean own_ca)
{
  if (plan->resolv_path != NULL)
    g_unlink (plan->resolv_path);
  if (own_ca && plan->ca_path != NULL)
    g_unlink (plan->ca_path);
  if (plan->folder != NULL)
    g_rmdir (plan->folder);
  g_free (plan->folder);
  g_free (plan->resolv_path);
  g_free (plan->ca_path);
}

/**
 * load_config:
 * @options: the parsed command line
 * @error: return location for an error
 *
 * Loads the configuration file and applies the options on top. QEMU
 * socket settings in the file are ignored, because the TAP device takes
 * their place.
 *
 * Return: (transfer full): the configuration, not yet validated
 */
static MoatConfig *
load_config (RunOptions *options, GError **error)
{
  g_autoptr (MoatConfig) config = moat_config_new ();

  if (options->config_path != NULL
      && !moat_config_load_file (config, options->config_path, error))
    return NULL;
  g_clear_pointer (&config->socket_path, g_free);
  g_clear_pointer (&config->connect_path, g_free);
  config->fd = -1;
  if (options->audit_path != NULL)
    {
      g_free (config->audit_path);
      config->audit_path = g_steal_pointer (&options->audit_path);
    }
  if (options->ca_cert_out != NULL)
    {
      g_free (config->ca_cert_out);
      config->ca_cert_out = g_steal_pointer (&options->ca_cert_out);
    }
  if (options->mtu > 0)
    config->mtu = options->mtu;
  return g_steal_pointer (&config);
}

static gboolean
parse_options (int argc, char **argv, RunOptions *options)
{
  GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &options->config_path,
      "Read the configuration from FILE (GKeyFile INI)", "FILE" },
    { "audit", 'a', 0, G_OPTION_ARG_FILENAME, &options->audit_path,
      "Append the audit log (JSON Lines) to PATH; - for standard output",
      "PATH" },
    { "ca-cert-out", 0, 0, G_OPTION_ARG_FILENAME, &options->ca_cert_out,
      "Write the session CA certificate (PEM) to PATH instead of a "
      "temporary file", "PATH" },
    { "mtu", 0, 0, G_OPTION_ARG_INT, &options->mtu,
      "MTU of the namespace's interface in bytes, 576 to 65520 "
      "(default 1500)", "BYTES" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &options->verbose,
      "Log moat's messages and a debug line for every connection", NULL },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY,
      &options->command, NULL, NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;

  g_set_prgname ("moat run");
  context = g_option_context_new ("[--] COMMAND [ARGS...]");
  g_option_context_set_summary (
      context,
      "Runs COMMAND in a new network namespace whose only interface leads\n"
      "to moat: the policy, DNS, TLS interception and audit log that a QEMU\n"
      "guest gets. COMMAND trusts the session CA through SSL_CERT_FILE,\n"
      "CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS and\n"
      "GIT_SSL_CAINFO. moat exits with COMMAND's exit status (128 + N when\n"
      "signal N ended it), 125 when moat itself fails, 126 when COMMAND\n"
      "cannot be executed and 127 when it is not found.\n"
      "\n"
      "moat's options come before COMMAND: the first argument that is not\n"
      "an option starts COMMAND, and every argument after it, options\n"
      "included, goes to COMMAND. \"--\" ends moat's options; it is needed\n"
      "only when COMMAND starts with \"-\", and makes the split plain to\n"
      "read in scripts.\n"
      "\n"
      "Without --config the policy allows nothing and every request is\n"
      "denied. moat's own messages are hidden unless --verbose is given;\n"
      "warnings show.");
  g_option_context_set_description (
      context,
      "Example:\n"
      "  moat run --config policy.ini --audit audit.jsonl -- \\\n"
      "      curl https://api.example.com/\n"
      "  moat run -v --config policy.ini curl -v https://api.example.com/\n"
      "      (the first -v is moat's, the second one is curl's)\n");
  /* Options after COMMAND belong to COMMAND. */
  g_option_context_set_strict_posix (context, TRUE);
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      fprintf (stderr, "moat run: %s\nRun 'moat run --help' for the "
               "options.\n", error->message);
      return FALSE;
    }
  if (options->command == NULL || options->command[0] == NULL)
    {
      fprintf (stderr, "moat run: missing COMMAND; usage: moat run "
               "[OPTION...] -- COMMAND [ARGS...]\n");
      return FALSE;
    }
  if (options->mtu != 0 && (options->mtu < MOAT_MTU_MIN
                            || options->mtu > MOAT_MTU_MAX))
    {
      fprintf (stderr, "moat run: --mtu %d is out of range: give %d to %d\n",
               options->mtu, MOAT_MTU_MIN, MOAT_MTU_MAX);
      return FALSE;
    }
  return TRUE;
}

/* moat run hides moat's messages, so the start-up banner that says
 * "every request is denied" does not show: say it in a warning. */
static void
warn_if_everything_denied (const MoatSession *session)
{
  if (moat_policy_get_mode (session->policy) == MOAT_POLICY_MODE_REPORT
      || moat_policy_count_rules (session->policy, MOAT_RULE_ALLOW) > 0)
    return;
  if (session->config->path == NULL)
    fprintf (stderr, "moat run: warning: no --config given, so the policy "
             "allows no host and every request is denied; pass --config "
             "FILE with an allow rule, such as \"[policy] allow = "
             "api.example.com\"\n");
  else
    fprintf (stderr, "moat run: warning: %s has no allow rule, so every "
             "request is denied; add one, such as \"[policy] allow = "
             "api.example.com\"\n", session->config->path);
}

/* Closes the remaining guest connections, which audits the requests still
 * running, and writes the "tap" line that pairs with "connected". A TAP
 * device that failed first has written it already. */
static void
audit_tap_detached (MoatSession *session, int status)
{
  MoatAuditEvent *event;

  if (!moat_transport_is_connected (session->transport))
    return;
  g_hash_table_remove_all (session->flows);
  event = moat_audit_event_new ("tap");
  moat_audit_event_add_string (event, "state", "disconnected");
  moat_audit_event_add_int (event, "exit_status", status);
  moat_audit_emit (session->audit, event);
}

/**
 * run_session:
 * @config: the validated configuration; ownership moves to the session
 * @socket_fd: moat's end of the socketpair to the child
 * @pid: the child
 *
 * Receives the TAP device, runs the session until COMMAND exits and
 * returns COMMAND's exit status. Reaps the child in every case.
 *
 * Return: the exit status for moat
 */
static int
run_session (MoatConfig *config, int socket_fd, pid_t pid)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatSession) session = NULL;
  ChildState state = { 0 };
  int tap_fd = -1;
  char go = GO_BYTE;
  int status;

  if (!serve_map_request (socket_fd, pid, &error)
      || !receive_fd (socket_fd, &tap_fd, &error))
    {
      moat_config_free (config);
      close (socket_fd);
      status = wait_for_child (pid);
      return status == 0 ? MOAT_RUN_EXIT_FAILURE : status;
    }

  session = moat_session_new_tap (config, tap_fd, &error);
  if (session == NULL)
    {
      fprintf (stderr, "moat run: %s\n", error->message);
      close (socket_fd);
      wait_for_child (pid);
      return MOAT_RUN_EXIT_FAILURE;
    }

  warn_if_everything_denied (session);
  state.session = session;
  g_child_watch_add (pid, on_child_exit, &state);
  if (write (socket_fd, &go, 1) != 1)
    {
      fprintf (stderr, "moat run: cannot start COMMAND: %s\n",
               g_strerror (errno));
      kill (pid, SIGKILL);
    }
  close (socket_fd);
  g_debug ("COMMAND started as process %d", (int) pid);
  g_main_loop_run (session->loop);

  if (!state.exited)
    {
      /* The loop ended first, so the TAP device failed and COMMAND has
       * no network left. */
      fprintf (stderr, "moat run: the TAP device failed; stopping "
               "COMMAND\n");
      kill (pid, SIGKILL);
      wait_for_child (pid);
      return MOAT_RUN_EXIT_FAILURE;
    }
  status = exit_status_of (state.wait_status);
  audit_tap_detached (session, status);
  return status;
}

/**
 * moat_run_main:
 * @argc: number of arguments, "run" first
 * @argv: the arguments after "moat"
 *
 * Implements "moat run [OPTION...] -- COMMAND [ARGS...]".
 *
 * Return: COMMAND's exit status, or %MOAT_RUN_EXIT_FAILURE when moat
 *   fails before or while running it
 */
int
moat_run_main (int argc, char **argv)
{
  RunOptions options = { 0 };
  RunPlan plan = { 0 };
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatConfig) config = NULL;
  gboolean own_ca = FALSE;
  int sockets[2];
  pid_t parent = getpid ();
  pid_t pid;
  int status = MOAT_RUN_EXIT_FAILURE;

  if (!parse_options (argc, argv, &options))
    goto out;
  moat_log_init (options.verbose, TRUE);
  config = load_config (&options, &error);
  if (config == NULL)
    {
      fprintf (stderr, "moat run: %s\n", error->message);
      goto out;
    }

  plan.folder = g_dir_make_tmp ("moat-run-XXXXXX", &error);
  if (plan.folder == NULL)
    {
      fprintf (stderr, "moat run: %s\n", error->message);
      goto out;
    }
  plan.resolv_path = g_build_filename (plan.folder, "resolv.conf", NULL);
  if (config->ca_cert_out == NULL)
    {
      config->ca_cert_out = g_build_filename (plan.folder, "ca.pem", NULL);
      own_ca = TRUE;
    }
  plan.ca_path = g_strdup (config->ca_cert_out);
  plan.mtu = config->mtu;
  plan.command = options.command;
  if (!write_resolv_conf (plan.resolv_path, &error))
    {
      fprintf (stderr, "moat run: %s\n", error->message);
      goto out;
    }

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) < 0)
    {
      fprintf (stderr, "moat run: cannot create a socketpair: %s\n",
               g_strerror (errno));
      goto out;
    }
  /* moat_config_validate() requires exactly one QEMU socket. The TAP
   * device takes that place, and is not open yet, so the socketpair's
   * descriptor is used for the check. */
  config->fd = sockets[0];
  if (!moat_config_validate (config, &error))
    {
      fprintf (stderr, "moat run: %s\n", error->message);
      close (sockets[0]);
      close (sockets[1]);
      goto out;
    }
  config->fd = -1;

  fflush (NULL);
  pid = fork ();
  if (pid < 0)
    {
      fprintf (stderr, "moat run: cannot fork: %s\n", g_strerror (errno));
      close (sockets[0]);
      close (sockets[1]);
      goto out;
    }
  if (pid == 0)
    {
      close (sockets[0]);
      child_main (&plan, sockets[1], parent);
    }

  close (sockets[1]);
  child_pid = pid;
  /* COMMAND runs as the same user: without this it could read the CA
   * private key from /proc/PID/mem or attach to moat with ptrace. */
  prctl (PR_SET_DUMPABLE, 0);
  install_signal_forwarding ();
  curl_global_init (CURL_GLOBAL_DEFAULT);
  status = run_session (g_steal_pointer (&config), sockets[0], pid);
  curl_global_cleanup ();

out:
  run_plan_clear (&plan, own_ca);
  g_free (options.config_path);
  g_free (options.audit_path);
  g_free (options.ca_cert_out);
  g_strfreev (options.command);
  return status;
}

#else /* !__linux__ */

int
moat_run_main (int argc G_GNUC_UNUSED, char **argv G_GNUC_UNUSED)
{
  fprintf (stderr, "moat run: needs Linux network namespaces and TAP "
           "devices; on this system, run COMMAND in a QEMU guest behind "
           "moat instead\n");
  return MOAT_RUN_EXIT_FAILURE;
}

#endif /* __linux__ */
