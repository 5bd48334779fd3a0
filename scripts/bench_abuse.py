"""`scripts/bench --abuse`: the portal under sustained abuse.

While one logged-in player sends `echo` ten times a second and times each
round trip, the portal is made to hold, one scenario after another:

  slowloris     N clients that each send one byte every few seconds and
                never finish a line or a negotiation (half trickle an
                unfinished line, half an unterminated subnegotiation),
                never reading;
  silent        N connections that never answer negotiation nor send;
  flood         a player who never reads, in a room where another player
                floods `say` (the portal must cut the stalled one at its
                output cap, and nobody else slows).

For each: the probe's echo lag (p50/p99/max) during the hold, and the
portal's threads, RSS and descriptors before, at peak and once the abusers
are gone. The swarms run in a child process (`--swarm`) so their work does
not share the probe's interpreter.
"""
import os, pathlib, resource, select, socket, subprocess, sys, threading, time

IAC = 255


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---- a logged-in player ------------------------------------------------------

class Player:
    """A raw telnet player that answers no negotiation and reads text only."""

    def __init__(self, addr, name):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.buf = b""
        self.read_until(b"create <name>")
        self.send(f"create {name} pw123")
        self.send("echo logged-in")
        self.read_until(b"logged-in")

    def send(self, line):
        self.sock.sendall(line.encode() + b"\r\n")

    def read_until(self, marker, timeout=30):
        deadline = time.time() + timeout
        while marker not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise SystemExit(f"bench --abuse: no {marker!r} within {timeout} s")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit(f"bench --abuse: closed while waiting for {marker!r}")
            self.buf += chunk
        self.buf = self.buf.split(marker, 1)[1]

    def close(self):
        self.sock.close()


class Probe(threading.Thread):
    """Sends `echo` every 100 ms and records each round trip (ms)."""

    def __init__(self, player):
        super().__init__(daemon=True)
        self.player = player
        self.lags = []
        self.window = None
        self.stopping = threading.Event()

    def run(self):
        seq = 0
        while not self.stopping.is_set():
            seq += 1
            marker = f"probe-{seq}-end"
            t0 = time.perf_counter()
            self.player.send(f"echo {marker}")
            self.player.read_until(marker.encode())
            lag = (time.perf_counter() - t0) * 1000
            if self.window is not None:
                self.window.append(lag)
            self.stopping.wait(max(0.0, 0.1 - lag / 1000))

    def measure(self):
        self.window = []

    def take(self):
        lags, self.window = sorted(self.window or []), None
        return lags


def percentile(sorted_lags, p):
    if not sorted_lags:
        return None
    return round(sorted_lags[min(len(sorted_lags) - 1, int(len(sorted_lags) * p))], 1)


# ---- the swarms (child process) ------------------------------------------------

def swarm(kind, n, addr, gap):
    """Open `n` abusive connections, say `ready`, hold until stdin closes."""
    raise_fd_limit()
    host, port = addr.rsplit(":", 1)
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((host, int(port)))
        s.setblocking(False)
        socks.append(s)
        if kind == "slowloris" and i % 2:
            # An unterminated subnegotiation (TTYPE IS ...), one byte at a time.
            trickle(s, bytes([IAC, 250, 24, 0]))
    print("ready", flush=True)
    start = time.time()
    sent = 0
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], 0.05)
        if readable and not sys.stdin.readline():
            break
        if kind != "slowloris":
            continue
        # Each client sends one byte every `gap` seconds, staggered.
        due = int((time.time() - start) / gap * n)
        while sent < due:
            trickle(socks[sent % n], b"l" if (sent % n) % 2 == 0 else b"x")
            sent += 1
    print(f"{sent} bytes trickled" if kind == "slowloris" else "", flush=True)
    for s in socks:
        s.close()


def trickle(s, data):
    try:
        s.send(data)
    except (BlockingIOError, OSError):
        pass


class Swarm:
    def __init__(self, kind, n, addr, gap=3.0):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--swarm", kind, str(n), addr, str(gap)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.proc.kill()
            raise SystemExit(f"bench --abuse: the {kind} swarm said {line!r}")

    def stop(self):
        self.proc.stdin.close()
        out = self.proc.stdout.read().strip()
        self.proc.wait(timeout=60)
        return out


# ---- the scenarios ------------------------------------------------------------------

def sample(pid, m):
    """Fold the portal's threads, RSS (KiB) and fds into `m` (peaks)."""
    now = {"threads": m["proc"]["threads"](pid), "rss_kib": m["proc"]["rss_kib"](pid),
           "fds": m["proc"]["fds"](pid)}
    for k, v in now.items():
        m["peak"][k] = max(m["peak"].get(k, 0), v)
    return now


def held(portal, probe, procfns, hold, start_abuse, stop_abuse):
    """Measure the probe while the abuse is held; resources before, peak, after."""
    before = {"threads": procfns["threads"](portal.pid), "rss_kib": procfns["rss_kib"](portal.pid),
              "fds": procfns["fds"](portal.pid)}
    m = {"proc": procfns, "peak": dict(before)}
    t0 = time.time()
    abuse = start_abuse()
    setup_secs = time.time() - t0
    probe.measure()
    end = time.time() + hold
    while time.time() < end:
        sample(portal.pid, m)
        time.sleep(0.25)
    lags = probe.take()
    note = stop_abuse(abuse)
    # Wait for the portal to let go of every abuser (bounded).
    deadline = time.time() + 60
    while time.time() < deadline:
        after = sample(portal.pid, m)
        if after["fds"] <= before["fds"] and after["threads"] <= before["threads"]:
            break
        time.sleep(0.25)
    after = {"threads": procfns["threads"](portal.pid), "rss_kib": procfns["rss_kib"](portal.pid),
             "fds": procfns["fds"](portal.pid)}
    return {
        "setup_s": round(setup_secs, 1), "hold_s": hold, "echoes": len(lags),
        "lag_p50_ms": percentile(lags, 0.50), "lag_p99_ms": percentile(lags, 0.99),
        "lag_max_ms": round(lags[-1], 1) if lags else None,
        "before": before, "peak": m["peak"], "after": after, "note": note,
    }


def flood_start(addr, says, log):
    stalled = Player(addr, "abusestalled")
    stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    flooder = Player(addr, "abuseflooder")
    line = "say " + "flood " * 80
    stop = threading.Event()
    sent = [0]

    def pump():
        # Keep reading the flooder's own copy so only `stalled` stalls.
        flooder.sock.setblocking(False)
        out = (line + "\r\n").encode()
        while not stop.is_set() and sent[0] < says:
            try:
                flooder.sock.sendall(out)
                sent[0] += 1
            except BlockingIOError:
                pass
            try:
                while flooder.sock.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass
            time.sleep(0.001)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return stalled, flooder, stop, thread, sent, log


def flood_stop(state):
    stalled, flooder, stop, thread, sent, log = state
    stop.set()
    thread.join(timeout=10)
    # What the portal did with the player who never read: its log says
    # when it cut one at the output cap. (Reading the socket cannot tell:
    # after a long zero window the kernel's persist timer trickles the
    # buffered bytes out seconds apart.)
    cut = [line for line in pathlib.Path(log).read_text(errors="replace").splitlines()
           if "client is not reading" in line]
    stalled.close()
    flooder.sock.setblocking(True)
    flooder.close()
    verdict = f"cut at the output cap ({cut[-1].split('(')[-1].split(')')[0]})" if cut else "not cut"
    return f"{sent[0]} says of 486 bytes; the player who never read: {verdict}"


def run(addr, portal, procfns, quick):
    """All scenarios against a running portal; a list of result rows."""
    raise_fd_limit()
    n_slow, n_silent, hold = (200, 400, 5) if quick else (1000, 2000, 20)
    probe = Probe(Player(addr, "abuseprobe"))
    probe.start()
    time.sleep(1)
    rows = []

    def with_swarm(kind, n):
        return lambda: Swarm(kind, n, addr)

    rows.append(dict(scenario="none (the probe alone)", held=0, **held(
        portal, probe, procfns, hold, lambda: None, lambda _: "")))
    rows.append(dict(scenario="slowloris (a byte every 3 s)", held=n_slow, **held(
        portal, probe, procfns, hold, with_swarm("slowloris", n_slow), Swarm.stop)))
    rows.append(dict(scenario="never negotiating, silent", held=n_silent, **held(
        portal, probe, procfns, hold, with_swarm("silent", n_silent), Swarm.stop)))
    says = 2000 if quick else 20000
    rows.append(dict(scenario="never reading, game floods it", held=1, **held(
        portal, probe, procfns, hold, lambda: flood_start(addr, says, portal.tmp / "portal.log"), flood_stop)))
    probe.stopping.set()
    probe.join(timeout=5)
    for row in rows:
        print(f"bench: abuse {row}", file=sys.stderr)
    return rows


def markdown(rows):
    out = ["| scenario | abusers held | echoes | lag p50 / p99 / max (ms) | portal threads "
           "before / peak / after | RSS MiB before / peak / after | fds before / peak / after | "
           "what happened |", "|---|---|---|---|---|---|---|---|"]
    mib = lambda k: round(k / 1024, 1)  # noqa: E731
    for r in rows:
        b, p, a = r["before"], r["peak"], r["after"]
        out.append(
            f"| {r['scenario']} | {r['held']} | {r['echoes']} | {r['lag_p50_ms']} / "
            f"{r['lag_p99_ms']} / {r['lag_max_ms']} | {b['threads']} / {p['threads']} / "
            f"{a['threads']} | {mib(b['rss_kib'])} / {mib(p['rss_kib'])} / {mib(a['rss_kib'])} | "
            f"{b['fds']} / {p['fds']} / {a['fds']} | {r['note'] or ''} |")
    return "\n".join(out)


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--swarm":
    swarm(sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
