# SPDX-License-Identifier: GPL-2.0-or-later
"""The benchmark's upstream: nginx on 127.0.0.1 with HTTP, HTTPS and a local CA.

nginx serves a payload file for downloads, accepts uploads of any size
into a tmpfs folder (the echo module reads the whole body before it
answers), and answers a small fixed body for latency measurements.
Python's http.server tops out near 300 MB/s, below the paths under test,
so a real server is needed.
"""

import os
import subprocess
import time

HTTP_PORT = 8080
HTTPS_PORT = 8443
HOST = "bench.test"
# Names for new-connection measurements with a cold certificate cache:
# each connection uses a name that moat has not minted a leaf for.
COLD_NAME_FORMAT = "h{}.bench.test"
SMALL_BODY = "moat benchmark small response, 64 bytes of body text......\n"
ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"


def run_checked(argv):
    """Run argv; raise RuntimeError naming the command and its stderr on failure."""
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed with exit code "
                           f"{result.returncode}: {result.stderr.strip()}")
    return result.stdout


def make_ca(folder):
    """Create a CA and an ECDSA P-256 certificate for bench.test and *.bench.test.

    Returns (ca_pem, cert_pem, key_pem) paths inside folder.
    """
    ca_key = os.path.join(folder, "upstream-ca.key")
    ca_pem = os.path.join(folder, "upstream-ca.pem")
    key_pem = os.path.join(folder, "upstream.key")
    csr = os.path.join(folder, "upstream.csr")
    cert_pem = os.path.join(folder, "upstream.pem")
    extensions = os.path.join(folder, "upstream.ext")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    run_checked(["openssl", "req", "-x509"] + ec + [
        "-keyout", ca_key, "-out", ca_pem, "-days", "2",
        "-subj", "/CN=moat benchmark upstream CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run_checked(["openssl", "req"] + ec + [
        "-keyout", key_pem, "-out", csr, "-subj", f"/CN={HOST}"])
    with open(extensions, "w", encoding="ascii") as ext:
        ext.write("basicConstraints=critical,CA:FALSE\n")
        ext.write("keyUsage=critical,digitalSignature\n")
        ext.write("extendedKeyUsage=serverAuth\n")
        ext.write(f"subjectAltName=DNS:{HOST},DNS:*.{HOST}\n")
    run_checked(["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem,
                 "-CAkey", ca_key, "-CAcreateserial", "-out", cert_pem,
                 "-days", "2", "-extfile", extensions])
    # pasta runs its command as an unmapped user, which must read these.
    for path in (ca_pem, cert_pem):
        os.chmod(path, 0o644)
    return ca_pem, cert_pem, key_pem


def make_payload(path, size):
    """Write size bytes of random data to path (random, so nothing compresses it)."""
    block = 1024 * 1024
    with open("/dev/urandom", "rb") as source, open(path, "wb") as payload:
        remaining = size
        while remaining > 0:
            chunk = source.read(min(block, remaining))
            payload.write(chunk)
            remaining -= len(chunk)
    os.chmod(path, 0o644)


class Nginx:
    """nginx on 127.0.0.1:8080 (HTTP) and 127.0.0.1:8443 (HTTPS), as a context manager.

    Serves /files/NAME from files_dir, PUT or POST /upload (any size, read
    completely, then 200 with "ok"), and GET /small (a 64-byte body).
    """

    def __init__(self, folder, files_dir, cert_pem, key_pem):
        self.folder = folder
        self.files_dir = files_dir
        self.cert_pem = cert_pem
        self.key_pem = key_pem
        self.config_path = os.path.join(folder, "nginx.conf")
        self.process = None

    def config_text(self):
        temp = os.path.join(self.folder, "nginx-temp")
        os.makedirs(temp, exist_ok=True)
        return f"""
load_module {ECHO_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid {self.folder}/nginx.pid;
error_log {self.folder}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {{
        listen 127.0.0.1:{HTTP_PORT} backlog=4096;
        listen 127.0.0.1:{HTTPS_PORT} ssl backlog=4096;
        server_name _;
        ssl_certificate {self.cert_pem};
        ssl_certificate_key {self.key_pem};
        location /files/ {{ alias {self.files_dir}/; }}
        location = /small {{
            default_type text/plain;
            return 200 "{SMALL_BODY.rstrip()}\\n";
        }}
        location = /upload {{
            client_max_body_size 0;
            client_body_buffer_size 1m;
            echo_read_request_body;
            echo ok;
        }}
    }}
}}
"""

    def __enter__(self):
        with open(self.config_path, "w", encoding="ascii") as config:
            config.write(self.config_text())
        run_checked(["nginx", "-t", "-q", "-c", self.config_path, "-e",
                     os.path.join(self.folder, "nginx-error.log")])
        self.process = subprocess.Popen(
            ["nginx", "-c", self.config_path, "-e",
             os.path.join(self.folder, "nginx-error.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _port_listening(HTTPS_PORT):
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with status {self.process.returncode}; "
                                   f"see {self.folder}/nginx-error.log")
            if time.monotonic() > deadline:
                raise RuntimeError("nginx did not listen on 127.0.0.1:8443 within 10 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return False


def _port_listening(port):
    """Return True if a TCP socket listens on 127.0.0.1:port (from /proc/net/tcp)."""
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/tcp", encoding="ascii") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            # State 0A is TCP_LISTEN.
            if fields[1] == wanted and fields[3] == "0A":
                return True
    return False
