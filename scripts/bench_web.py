"""`scripts/bench --web-idle`: idle browser sessions, AJAX beside websockets.

Against the release portal with the demo game (web listener on loopback,
default web timings), one process of this script holds:

  ajax        N AJAX long-poll sessions (POST /webclientdata, Evennia's
              format), each on its own kept-alive connection: `init`, then
              `receive` until one stays parked (the login screen read);
              every answered receive (the portal's keepalive ping after
              ajax_receive_timeout_secs) is followed by a new one, as a page
              does;
  websocket   then N idle websocket sessions (GET /ws upgrade, Evennia's
              JSON format) beside them, each answering the portal's pings.

For each step: the portal's and the game's RSS, the portal's threads and
descriptors, and their CPU over a hold of HOLD seconds while the sessions
sit idle (so the hold spans the AJAX receive timeout and the websocket
ping interval: the keepalive traffic is in the figure). At the end every
session must still be open. The client is one thread on an epoll loop;
nothing here waits without a bound.
"""
import base64, json, os, selectors, socket, time, urllib.parse

RECEIVE_PARKED = 1.0  # seconds a receive must stay unanswered to count as parked


def form_post(body):
    data = body.encode()
    return (b"POST /webclientdata HTTP/1.1\r\nHost: bench\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)


def http_answer(buf):
    """(status, body, rest) of the first whole answer in buf, else None."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = buf[:head_end].decode("latin-1").split("\r\n")
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    end = head_end + 4 + length
    if len(buf) < end:
        return None
    return int(head[0].split()[1]), buf[head_end + 4:end], buf[end:]


class Ajax:
    """One AJAX session on one kept-alive connection."""

    def __init__(self, addr, n):
        self.sock = socket.create_connection(addr, timeout=10)
        self.sock.setblocking(False)
        self.csessid = f"{os.getpid():08x}{n:08x}{os.urandom(8).hex()}"
        self.buf = b""
        self.sent_at = 0.0
        self.messages = 0
        self.pings = 0
        self.closed = False
        self.send(f"mode=init&csessid={self.csessid}&browserstr=bench")

    def send(self, form):
        self.sock.sendall(form_post(form))
        self.sent_at = time.monotonic()

    def receive(self):
        self.send(f"mode=receive&csessid={self.csessid}")

    def parked(self, now):
        return now - self.sent_at >= RECEIVE_PARKED

    def readable(self, chunk):
        self.buf += chunk
        while (answer := http_answer(self.buf)) is not None:
            status, body, self.buf = answer
            if status != 200:
                raise SystemExit(f"bench --web-idle: AJAX answer {status}: {body[:200]!r}")
            if body.startswith(b'["ajax_keepalive"'):
                self.pings += 1
            elif body not in (b"", b'""') and not body.startswith(b'{"msg"'):
                if body.startswith(b'["connection_close"'):
                    self.closed = True
                    return
                self.messages += 1
            self.receive()


class Websocket:
    """One websocket session: reads frames, answers pings."""

    def __init__(self, addr):
        self.sock = socket.create_connection(addr, timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.sock.setblocking(False)
        self.buf = b""
        self.upgraded = False
        self.messages = 0
        self.pings = 0
        self.closed = False

    def readable(self, chunk):
        self.buf += chunk
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buf.startswith(b"HTTP/1.1 101"):
                raise SystemExit(f"bench --web-idle: no upgrade: {self.buf[:200]!r}")
            self.upgraded, self.buf = True, self.buf[end + 4:]
        while (frame := self.frame()) is not None:
            opcode, payload = frame
            if opcode == 9:
                self.pings += 1
                self.send_frame(10, payload)
            elif opcode == 8:
                self.closed = True
            elif opcode in (1, 2):
                self.messages += 1

    def frame(self):
        if len(self.buf) < 2:
            return None
        opcode, length, at = self.buf[0] & 0x0F, self.buf[1] & 0x7F, 2
        if length == 126:
            if len(self.buf) < 4:
                return None
            length, at = int.from_bytes(self.buf[2:4], "big"), 4
        elif length == 127:
            if len(self.buf) < 10:
                return None
            length, at = int.from_bytes(self.buf[2:10], "big"), 10
        if len(self.buf) < at + length:
            return None
        payload, self.buf = self.buf[at:at + length], self.buf[at + length:]
        return opcode, payload

    def send_frame(self, opcode, payload):
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)


class Swarm:
    """Every session on one epoll loop, run in slices by the caller."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.sessions = {"ajax": [], "websocket": []}

    def add(self, kind, session):
        self.sessions[kind].append(session)
        self.sel.register(session.sock, selectors.EVENT_READ, session)

    def run_for(self, secs):
        deadline = time.monotonic() + secs
        while (left := deadline - time.monotonic()) > 0:
            for key, _ in self.sel.select(timeout=min(left, 0.5)):
                session = key.data
                try:
                    chunk = session.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    session.closed = True
                    self.sel.unregister(session.sock)
                    continue
                session.readable(chunk)

    def live(self, kind):
        return sum(1 for s in self.sessions[kind] if not s.closed)

    def pings(self, kind):
        return sum(s.pings for s in self.sessions[kind])


def start_sessions(swarm, kind, addr, n, rate=200):
    """Open n sessions of `kind`, about `rate` a second, serving the loop."""
    for i in range(n):
        swarm.add(kind, Ajax(addr, i) if kind == "ajax" else Websocket(addr))
        if i % rate == rate - 1:
            swarm.run_for(1.0)
    swarm.run_for(1.0)


def settle(swarm, kind, n, timeout):
    """Wait until every session of `kind` is past its login screen: AJAX
    receives parked, websockets upgraded and quiet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        swarm.run_for(0.5)
        now = time.monotonic()
        sessions = swarm.sessions[kind]
        if kind == "ajax":
            ready = sum(1 for s in sessions if s.messages > 0 and s.parked(now))
        else:
            ready = sum(1 for s in sessions if s.upgraded and s.messages > 0)
        if ready == n:
            return
        if any(s.closed for s in sessions):
            raise SystemExit(f"bench --web-idle: a {kind} session closed while settling")
    raise SystemExit(f"bench --web-idle: {kind} sessions did not settle in {timeout} s")


def sample(pids, procfns, cpu_secs):
    portal, game = pids
    return {
        "portal_rss_kib": procfns["rss_kib"](portal),
        "game_rss_kib": procfns["rss_kib"](game),
        "threads": procfns["threads"](portal),
        "fds": procfns["fds"](portal),
        "portal_cpu": cpu_secs(portal),
        "game_cpu": cpu_secs(game),
    }


def hold(swarm, pids, procfns, cpu_secs, secs):
    """Sit idle for secs: CPU percentages over it, and the figures after."""
    before = sample(pids, procfns, cpu_secs)
    started = time.monotonic()
    swarm.run_for(secs)
    elapsed = time.monotonic() - started
    after = sample(pids, procfns, cpu_secs)
    after["portal_cpu_pct"] = round(100 * (after["portal_cpu"] - before["portal_cpu"]) / elapsed, 2)
    after["game_cpu_pct"] = round(100 * (after["game_cpu"] - before["game_cpu"]) / elapsed, 2)
    after["hold_secs"] = round(elapsed, 1)
    return after


def run(web_addr, pids, procfns, cpu_secs, n, hold_secs):
    host, port = web_addr.rsplit(":", 1)
    addr = (host, int(port))
    swarm = Swarm()
    steps = [dict(step="no sessions", ajax=0, websocket=0,
                  **hold(swarm, pids, procfns, cpu_secs, min(hold_secs, 10)))]
    for kind in ("ajax", "websocket"):
        start_sessions(swarm, kind, addr, n)
        settle(swarm, kind, n, timeout=120 + n / 20)
        pings = {k: swarm.pings(k) for k in ("ajax", "websocket")}
        row = hold(swarm, pids, procfns, cpu_secs, hold_secs)
        row.update(step=f"+ {n} {kind}", ajax=swarm.live("ajax"),
                   websocket=swarm.live("websocket"),
                   ajax_pings=swarm.pings("ajax") - pings["ajax"],
                   websocket_pings=swarm.pings("websocket") - pings["websocket"])
        steps.append(row)
    lost = {k: len(v) - swarm.live(k) for k, v in swarm.sessions.items()}
    if any(lost.values()):
        raise SystemExit(f"bench --web-idle: sessions lost while idle: {lost}")
    return steps


def markdown(steps, n):
    lines = ["| step | AJAX open | websockets open | portal RSS MiB | game RSS MiB "
             "| portal threads | portal fds | portal CPU % | game CPU % |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in steps:
        lines.append(f"| {s['step']} | {s['ajax']} | {s['websocket']} "
                     f"| {s['portal_rss_kib'] / 1024:.1f} | {s['game_rss_kib'] / 1024:.1f} "
                     f"| {s['threads']} | {s['fds']} | {s['portal_cpu_pct']} "
                     f"| {s['game_cpu_pct']} |")
    base, ajax, both = steps
    per = lambda a, b, key: (b[key] - a[key]) / n
    lines += ["",
              f"Per AJAX session (parked receive): portal {per(base, ajax, 'portal_rss_kib'):.1f} KiB RSS, "
              f"{per(base, ajax, 'threads'):.2f} threads, {per(base, ajax, 'fds'):.2f} descriptors.",
              f"Per websocket session: portal {per(ajax, both, 'portal_rss_kib'):.1f} KiB RSS, "
              f"{per(ajax, both, 'threads'):.2f} threads, {per(ajax, both, 'fds'):.2f} descriptors.",
              f"Hold: {ajax['hold_secs']} s per step; keepalive traffic in the last one: "
              f"{both['ajax_pings']} AJAX pings each answered by a new receive, "
              f"{both['websocket_pings']} websocket pings answered."]
    return "\n".join(lines)
