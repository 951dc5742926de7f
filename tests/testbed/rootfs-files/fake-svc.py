#!/usr/bin/python3
"""Fake kubelet / docker / chronyd for the nodewarden systemd testbed.

Usage: fake-svc.py kubelet|docker|chronyd|containerd|NAME

Behaviour is controlled by files in /srv/testctl (bind-mounted from the host's TB_DIR/ctl),
re-read on every request and at start-up:

  NAME.mode     ok          serve normally (default)
                fail        every request -> 500
                hang        accept + read the request, never answer
                hang-accept stop accepting connections (the listen backlog fills up; a
                            client's connect either queues or fails with EAGAIN)
                hang-until-restart  like hang, until the service is restarted: the
                            next start writes "ok" to the mode file (a fault that a
                            restart fixes, as the runbook's first rung expects)
                hang-until-reboot   like hang, through restarts, until the node reboots: the
                            first start in a later boot writes "ok" (a kubelet stuck for
                            real, that only the reboot fixes; the boot the fault began
                            in is kept in NAME.mode.boot)
                start-fail  exit 1 right at start-up (the start job fails)
                start-hang  never send READY=1 and never listen (start job times out)
  kubelet.pleg  on          every second, log a real-format kubelet "PLEG is not healthy"
                            line (klog text), alternating "Skipping pod synchronization"
                            and "Node became not ready"; "last seen active" grows from
                            3m0s at the moment the file says on.
                until-restart  the same, until the kubelet restarts
                until-reboot   the same, through restarts, until the node reboots

Endpoints
  kubelet  http://127.0.0.1:10248/healthz
  docker   Docker Engine API subset on unix sockets /run/docker.sock and
           /run/nodewarden-test/docker.sock (host: TB_DIR/run/docker.sock):
           GET|HEAD /_ping -> "OK", GET /version, GET /containers/json -> "[]";
           an optional /vX.Y prefix is accepted.  Also http://127.0.0.1:10249/healthz.
           SIGUSR1 -> "goroutine stacks written to ..." like dockerd (no exit).
  chronyd  nothing; logs like chronyd (Type=simple).
  containerd / crio / cri-dockerd  a CRI server (gRPC over HTTP/2) on
           /run/containerd/containerd.sock, /var/run/crio/crio.sock, /var/run/cri-dockerd.sock:
           every call answers grpc-status 0 with an empty message ("hang" modes: never).
           containerd with /srv/testctl/containerd.cri absent or "disabled" is
           docker-ce's containerd.io, whose config.toml ships disabled_plugins = ["cri"]:
           gRPC over HTTP/2 on /run/containerd/containerd.sock, and every call answers
           grpc-status 12 (Unimplemented) "unknown service runtime.v1.RuntimeService",
           as grpc-go's server does for a service nobody registered (grpc-go
           server.go, handleStream: codes.Unimplemented, "unknown service %v").
Everything is logged to stdout -> journald.
"""
import datetime, http.server, json, os, random, re, selectors, signal, socket, sys, threading, time

NAME = sys.argv[1]
CTL = "/srv/testctl"
PID = os.getpid()


def read_ctl(fname, default):
    try:
        with open(f"{CTL}/{fname}") as f:
            return f.read().strip() or default
    except OSError:
        return default


def mode():
    return read_ctl(f"{NAME}.mode", "ok")


def boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def until_reboot(fname, fixed):
    """A fault only a reboot fixes: remember the boot it began in (FNAME.boot);
    in a later boot, write FIXED to FNAME. True when it was fixed."""
    marker = f"{CTL}/{fname}.boot"
    try:
        with open(marker) as f:
            began = f.read().strip()
    except OSError:
        began = None
    now = boot_id()
    if began is None:
        with open(marker, "w") as f:
            f.write(now + "\n")
        return False
    if began == now:
        return False
    with open(f"{CTL}/{fname}", "w") as f:
        f.write(fixed + "\n")
    try:
        os.unlink(marker)
    except OSError:
        pass
    return True


_out = threading.Lock()


def log(msg):
    with _out:
        print(msg, flush=True)


def info(msg):
    log(f"fake-{NAME}[{PID}]: {msg}")


def notify(msg):
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect(addr)
        s.sendall(msg.encode())
    finally:
        s.close()


# ---------------------------------------------------------------------------------------
# HTTP
DOCKER_VERSION = {
    "Platform": {"Name": "Docker Engine - Community"},
    "Version": "24.0.7", "ApiVersion": "1.43", "MinAPIVersion": "1.12",
    "GitCommit": "311b9ff", "GoVersion": "go1.20.10", "Os": "linux", "Arch": "amd64",
    "KernelVersion": os.uname().release, "BuildTime": "2023-10-26T09:08:02.000000000+00:00",
}


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Docker/24.0.7 (linux)" if NAME == "docker" else "fake-kubelet"
    sys_version = ""

    def version_string(self):
        return self.server_version

    def reply(self, code, body, ctype="text/plain; charset=utf-8", head=False):
        body = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if NAME == "docker":
            self.send_header("Api-Version", "1.43")
            self.send_header("Docker-Experimental", "false")
            self.send_header("Ostype", "linux")
            self.send_header("Cache-Control", "no-cache, no-store, must-revalidate")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def serve(self, head=False):
        m = mode()
        info(f"{self.command} {self.path} mode={m}")
        if m in ("hang", "hang-accept", "hang-until-restart", "hang-until-reboot"):
            time.sleep(86400)
            return
        if m != "ok":
            if NAME == "docker":
                return self.reply(500, json.dumps({"message": "simulated daemon error"}) + "\n",
                                  "application/json", head)
            return self.reply(500, "unhealthy", head=head)
        path = re.sub(r"^/v[0-9]+(\.[0-9]+)?(?=/)", "", self.path.split("?", 1)[0])
        if path == "/healthz" or (NAME == "docker" and path == "/_ping"):
            return self.reply(200, "OK" if path == "/_ping" else "ok", head=head)
        if NAME == "docker" and path == "/version":
            return self.reply(200, json.dumps(DOCKER_VERSION) + "\n", "application/json", head)
        if NAME == "docker" and path == "/containers/json":
            return self.reply(200, "[]\n", "application/json", head)
        if NAME == "docker":
            return self.reply(404, json.dumps({"message": f"page not found: {path}"}) + "\n",
                              "application/json", head)
        return self.reply(404, "404 page not found\n", head=head)

    def do_GET(self):
        self.serve()

    def do_HEAD(self):
        self.serve(head=True)

    def log_message(self, *a):
        pass


class _Srv:  # what BaseHTTPRequestHandler wants from a "server"
    pass


# ---------------------------------------------------------------------------------------
# HTTP/2 gRPC: just enough of RFC 9113 / RFC 7541 to answer every call Unimplemented
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(ftype, flags, stream, payload=b""):
    return (len(payload).to_bytes(3, "big") + bytes([ftype, flags])
            + (stream & 0x7FFFFFFF).to_bytes(4, "big") + payload)


def hpack_literal(name, value):
    # literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2)
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def handle_grpc_unimplemented(conn):
    f = conn.makefile("rb")
    if f.read(len(H2_PREFACE)) != H2_PREFACE:
        return
    conn.sendall(h2_frame(4, 0, 0))  # our SETTINGS: all defaults
    while True:
        head = f.read(9)
        if len(head) < 9:
            return
        length = int.from_bytes(head[:3], "big")
        ftype, flags = head[3], head[4]
        stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        payload = f.read(length)
        if ftype == 4 and not flags & 1:  # SETTINGS -> ACK
            conn.sendall(h2_frame(4, 1, 0))
        elif ftype == 6 and not flags & 1:  # PING -> ACK
            conn.sendall(h2_frame(6, 1, 0, payload))
        elif ftype == 1:  # HEADERS of a call
            m = mode()
            if m in ("hang", "hang-until-restart"):
                continue  # read, never answer
            head = (hpack_literal(b":status", b"200")
                    + hpack_literal(b"content-type", b"application/grpc"))
            if NAME == "containerd" and read_ctl("containerd.cri", "disabled") == "disabled":
                # trailers-only response, END_HEADERS | END_STREAM
                block = head + hpack_literal(b"grpc-status", b"12") + hpack_literal(
                    b"grpc-message", b"unknown service runtime.v1.RuntimeService")
                conn.sendall(h2_frame(1, 0x4 | 0x1, stream, block))
            elif m == "fail":
                block = head + hpack_literal(b"grpc-status", b"14") + hpack_literal(
                    b"grpc-message", b"simulated failure")
                conn.sendall(h2_frame(1, 0x4 | 0x1, stream, block))
            else:
                # headers, one empty message (compressed flag 0, length 0), trailers
                conn.sendall(h2_frame(1, 0x4, stream, head))
                conn.sendall(h2_frame(0, 0, stream, b"\x00\x00\x00\x00\x00"))
                conn.sendall(h2_frame(1, 0x4 | 0x1, stream, hpack_literal(b"grpc-status", b"0")))
        elif ftype == 7:  # GOAWAY
            return


CRI_SOCKETS = {
    "containerd": "/run/containerd/containerd.sock",
    "crio": "/var/run/crio/crio.sock",
    "cri-dockerd": "/var/run/cri-dockerd.sock",
}


def handle_conn(conn, addr):
    if NAME in CRI_SOCKETS:
        try:
            handle_grpc_unimplemented(conn)
        except Exception as e:
            info(f"connection error: {e}")
        finally:
            conn.close()
        return
    try:
        H(conn, addr or ("unix", 0), _Srv())
    except Exception as e:  # client went away etc.
        info(f"connection error: {e}")
    finally:
        try:
            conn.close()
        except OSError:
            pass


def listen_tcp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(4)
    return s


def listen_unix(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o660)
    s.listen(4)  # small backlog: hang-accept fills it after a few connects
    return s


def serve_forever(socks):
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    while True:
        if mode() == "hang-accept":
            time.sleep(0.2)
            continue
        for key, _ in sel.select(timeout=0.5):
            try:
                conn, addr = key.fileobj.accept()
            except OSError:
                continue
            threading.Thread(target=handle_conn, args=(conn, addr), daemon=True).start()


# ---------------------------------------------------------------------------------------
# kubelet PLEG lines
def go_duration(ns):
    """time.Duration.String() of Go."""
    if ns == 0:
        return "0s"
    h, ns = divmod(ns, 3600 * 10**9)
    m, ns = divmod(ns, 60 * 10**9)
    s, frac = divmod(ns, 10**9)
    out = ""
    if h:
        out += f"{h}h"
    if h or m:
        out += f"{m}m"
    sec = str(s)
    if frac:
        sec += "." + f"{frac:09d}".rstrip("0")
    return out + sec + "s"


def klog_header(sev, fileline):
    now = datetime.datetime.now()
    return f"{sev}{now:%m%d %H:%M:%S}.{now.microsecond:06d} {PID:7d} {fileline}] "


def pleg_loop():
    since = None
    since_ts = None
    n = 0
    threshold = go_duration(180 * 10**9)
    while True:
        time.sleep(1)
        # Note the boot a fault that only a reboot fixes began in.
        if mode() == "hang-until-reboot":
            until_reboot("kubelet.mode", "ok")
        if read_ctl("kubelet.pleg", "off") == "until-reboot":
            until_reboot("kubelet.pleg", "off")
        if read_ctl("kubelet.pleg", "off") not in ("on", "until-restart", "until-reboot"):
            since = None
            continue
        if since is None:
            since = time.monotonic_ns() - random.randint(0, 999) * 10**6
            since_ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            info("PLEG stall simulation on")
        ago = 180 * 10**9 + time.monotonic_ns() - since
        if n % 2 == 0:
            log(klog_header("E", "kubelet.go:2408")
                + '"Skipping pod synchronization" err="PLEG is not healthy: pleg was last seen active '
                + f'{go_duration(ago)} ago; threshold is {threshold}"')
        else:
            ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            cond = json.dumps({
                "type": "Ready", "status": "False", "lastHeartbeatTime": ts,
                "lastTransitionTime": since_ts, "reason": "KubeletNotReady",
                "message": f"PLEG is not healthy: pleg was last seen active {go_duration(ago)} ago; "
                           f"threshold is {threshold}"}, separators=(",", ":"))
            log(klog_header("I", "setters.go:552") + f'"Node became not ready" node="testbed" condition={cond}')
        n += 1


# ---------------------------------------------------------------------------------------
def on_term(*_):
    info("received SIGTERM, shutting down")
    notify("STOPPING=1")
    if NAME == "docker":
        for p in ("/run/docker.sock", "/run/nodewarden-test/docker.sock"):
            try:
                os.unlink(p)
            except OSError:
                pass
    os._exit(0)


def on_usr1(*_):
    if NAME == "docker":
        ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
        path = f"/var/run/docker/goroutine-stacks-{ts}.log"
        os.makedirs("/var/run/docker", exist_ok=True)
        with open(path, "w") as f:
            f.write("goroutine 1 [running]:\nmain.main()\n\t/fake/dockerd.go:1\n")
        log(f'time="{datetime.datetime.now(datetime.timezone.utc).isoformat()}" level=info '
            f'msg="goroutine stacks written to {path}"')
    else:
        info("received SIGUSR1 (ignored)")


signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGUSR1, on_usr1)

m = mode()
info(f"starting (mode={m})")
if m == "hang-until-restart":
    # The restart fixed it.
    with open(f"{CTL}/{NAME}.mode", "w") as f:
        f.write("ok\n")
    info("hang-until-restart: fixed by this restart, mode is now ok")
    m = "ok"
if m == "hang-until-reboot" and until_reboot(f"{NAME}.mode", "ok"):
    info("hang-until-reboot: fixed by the reboot, mode is now ok")
    m = "ok"
if NAME == "kubelet" and read_ctl("kubelet.pleg", "off") == "until-reboot" \
        and until_reboot("kubelet.pleg", "off"):
    info("PLEG lines until-reboot: fixed by the reboot")
if NAME == "kubelet" and read_ctl("kubelet.pleg", "off") == "until-restart":
    with open(f"{CTL}/kubelet.pleg", "w") as f:
        f.write("off\n")
    info("PLEG lines until-restart: fixed by this restart")
if NAME == "chronyd":
    log("chronyd version 4.3 starting (+CMDMON +NTP +REFCLOCK +RTC +PRIVDROP +SCFILTER +SIGND +ASYNCDNS +NTS +SECHASH +IPV6 -DEBUG)")
if m == "start-fail":
    info("E0000 simulated start-up failure: exiting 1")
    sys.exit(1)
if m == "start-hang":
    info("start-hang: not listening, not sending READY=1")
    while True:
        time.sleep(3600)

if NAME == "kubelet":
    socks = [listen_tcp(10248)]
    threading.Thread(target=pleg_loop, daemon=True).start()
elif NAME == "docker":
    socks = [listen_unix("/run/docker.sock"), listen_unix("/run/nodewarden-test/docker.sock"),
             listen_tcp(10249)]
elif NAME in CRI_SOCKETS:
    socks = [listen_unix(CRI_SOCKETS[NAME])]
else:
    socks = []
notify("READY=1")
info("ready" + ("" if not socks else ", listening on " + ", ".join(
    str(s.getsockname()) for s in socks)))
if NAME == "chronyd":
    log("Selected source 192.0.2.1 (fake.pool.ntp.org)")
    while True:
        time.sleep(3600)
serve_forever(socks)
