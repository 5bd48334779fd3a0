"""`scripts/bench --compare-evennia`: the same scenarios against Evennia.

Installs Evennia from PyPI into a throwaway virtualenv (target/bench/
evennia-venv, made once), creates a fresh game in a temporary directory
with its own free ports and the load-test settings Evennia's own
dummyrunner uses (evennia.server.profiling.settings_mixin: fast password
hash, creation/login throttles off, connection and command rates raised),
idle timeout off, and one extra command, `echo <text>`, that replies with
the text so lag is measured the same way as on the portal. Then migrates,
starts it, runs the scenarios, and stops it.
"""
import os, pathlib, shutil, signal, socket, subprocess, sys, tempfile, time

ECHO_COMMAND = '''

# --- added by scripts/bench: a timed round trip for the dummyrunner ---
from evennia import Command as _BenchCommand


class CmdBenchEcho(_BenchCommand):
    """echo <text>: reply with the text (load testing)."""

    key = "echo"

    def func(self):
        self.caller.msg(self.args.strip())


_BenchCharacterCmdSet = CharacterCmdSet


class CharacterCmdSet(_BenchCharacterCmdSet):
    def at_cmdset_creation(self):
        super().at_cmdset_creation()
        self.add(CmdBenchEcho())
'''


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Evennia:
    def __init__(self, bench):
        self.bench = bench
        venv = bench["TARGET"] / "bench" / "evennia-venv"
        if not (venv / "bin" / "evennia").exists():
            print("bench: installing Evennia into a virtualenv", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "evennia"], check=True)
        self.evennia = str(venv / "bin" / "evennia")
        version = subprocess.run([str(venv / "bin" / "python"), "-c",
                                  "import evennia, importlib.metadata as m;"
                                  "print(m.version('evennia'))"],
                                 capture_output=True, text=True).stdout.strip()
        self.version = version
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="evennia-bench-"))
        subprocess.run([self.evennia, "--init", "mygame"], cwd=self.tmp, check=True,
                       stdout=subprocess.DEVNULL)
        self.game = self.tmp / "mygame"
        telnet, web, web_in, ws, amp = free_ports(5)
        with open(self.game / "server" / "conf" / "settings.py", "a") as f:
            f.write(f"""
# --- added by scripts/bench ---
from evennia.server.profiling.settings_mixin import *
TELNET_PORTS = [{telnet}]
TELNET_INTERFACES = ["127.0.0.1"]
WEBSERVER_PORTS = [({web}, {web_in})]
WEBSOCKET_CLIENT_PORT = {ws}
AMP_PORT = {amp}
IDLE_TIMEOUT = -1
""")
        with open(self.game / "commands" / "default_cmdsets.py", "a") as f:
            f.write(ECHO_COMMAND)
        # The launcher runs `twistd` from PATH: the virtualenv's bin first.
        path = f"{venv / 'bin'}:{os.environ.get('PATH', '')}"
        self.env = dict(os.environ, PATH=path, EVENNIA_SUPERUSER_USERNAME="benchadmin",
                        EVENNIA_SUPERUSER_PASSWORD="Bench-admin-pw-9",
                        EVENNIA_SUPERUSER_EMAIL="bench@example.com")
        self.addr = f"127.0.0.1:{telnet}"
        self.run("migrate")
        self.run("start")
        self.wait_up()

    def run(self, *args):
        subprocess.run([self.evennia, *args], cwd=self.game, env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def pidfile(self, name):
        try:
            return int((self.game / "server" / f"{name}.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return 0

    @property
    def pid(self):
        return self.pidfile("portal")

    def status(self, key):
        return str(self.pidfile("server")) if key == "game_pid" else None

    def wait_up(self):
        def up():
            try:
                socket.create_connection(("127.0.0.1", int(self.addr.rsplit(":", 1)[1])),
                                         timeout=1).close()
                return self.pidfile("server") and self.pidfile("portal")
            except OSError:
                return None
        self.bench["wait_for"]("Evennia to listen", up, timeout=120)
        # A fresh game's server runs its initial setup and then restarts
        # once ("Restarting Server once"): wait for that restart.
        log = self.game / "server" / "logs" / "server.log"

        def restarted():
            text = log.read_text(errors="replace") if log.exists() else ""
            return "Restarting Server once" not in text or "successfully restarted" in text
        self.bench["wait_for"]("Evennia's first restart", restarted, timeout=120)
        self.bench["wait_for"]("Evennia to listen again", up, timeout=120)

    def stop(self):
        pids = [p for p in (self.pidfile("portal"), self.pidfile("server")) if p]
        try:
            subprocess.run([self.evennia, "stop"], cwd=self.game, env=self.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        except subprocess.TimeoutExpired:
            print("bench: `evennia stop` took over 60 s; terminating its processes",
                  file=sys.stderr)
        # Whatever `evennia stop` left behind (only the pids this game wrote).
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + 10
            while time.time() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
                time.sleep(0.2)
        shutil.rmtree(self.tmp, ignore_errors=True)


def settle(target, bench, timeout=240):
    """Wait until Evennia's server has worked off what an overloaded run
    left queued (its CPU under 10% for a second), so runs do not overlap."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        pid = target.pidfile("server")
        c0 = bench["cpu_secs"](pid)
        time.sleep(1)
        if bench["cpu_secs"](pid) - c0 < 0.1:
            break
    waited = time.time() - t0
    if waited > 2:
        print(f"bench: Evennia's server was busy for {waited:.0f}s after the run",
              file=sys.stderr)
    return round(waited, 1)


# Evennia answers a few hundred echoes/s here; higher offered rates only
# pile up work its server drains for minutes after the run (settle()
# waits for that), so its round trips stop at 1,000/s and its
# saturation scan looks below that.
EVENNIA_RATES = [1000]
EVENNIA_SATURATION = [250, 500]


def run(args, sizes, rates, q, bench):
    target = Evennia(bench)
    print(f"bench: Evennia {target.version} on {target.addr} (portal {target.pid}, "
          f"server {target.pidfile('server')})", file=sys.stderr)
    # Evennia takes seconds to show the login screen while it creates
    # accounts: a short --screen-timeout would only add reconnects.
    bench["DR_EXTRA"][:] = ["--logged-in", "Limbo", "--login-timeout", "300",
                            "--screen-timeout", "300"]
    game = lambda: target.pidfile("server")  # noqa: E731
    pids = {"portal": lambda: target.pid, "game": game}
    results = {"version": target.version, "settle_s": [],
               "load_before": bench["load_average"]()}
    try:
        results["scale"] = bench["scale"](target, sizes, hold=1 if args.quick else 3, game=game)
        results["connection_setup"] = bench["connection_setup"](
            target, pids, q["cs_clients"], q["cs_secs"])
        results["settle_s"].append(settle(target, bench))
        rts, prefix = [], None
        for rate in [r for r in rates if r in EVENNIA_RATES] or rates[:1]:
            rows, prefix = bench["round_trip"](target, q["rt_clients"], [rate], q["rt_secs"],
                                               pids, warmup=5, prefix=prefix, wait=600)
            rts += rows
            results["settle_s"].append(settle(target, bench))
        results["round_trip"] = rts
        results["skipped_rates"] = [r for r in rates if r not in EVENNIA_RATES]
        sat = []
        for rate in EVENNIA_SATURATION:
            sat += bench["saturation"](target, q["rt_clients"], [rate], q["rt_secs"], pids,
                                       prefix, warmup=5, wait=600)
            results["settle_s"].append(settle(target, bench))
        results["saturation"] = sat
        results["dummyrunner"] = bench["default_profile"](
            target, q["dr_clients"], q["dr_secs"], pids, prefix, wait=600)
        print(f"bench: evennia dummyrunner {results['dummyrunner']}", file=sys.stderr)
        results["settle_s"].append(settle(target, bench))
        reload = (f"cd {target.game} && PATH={target.env['PATH']} "
                  f"{target.evennia} reload >/dev/null 2>&1")
        results["restart"] = bench["restart"](
            target, q["rs_clients"], q["rs_secs"] + 15, q["rs_at"], prefix,
            trigger=["--exec-at", f"{q['rs_at']}:{reload}"], wait=600)
        print(f"bench: evennia restart {results['restart']}", file=sys.stderr)
    finally:
        bench["DR_EXTRA"][:] = []
        target.stop()
    results["load_after"] = bench["load_average"]()
    return results


def compare(targets):
    """Side-by-side rows: portal, Evennia, and Evennia / portal."""
    p, e = targets["Portal + demo game"], targets["Evennia"]
    rows = []

    def row(measure, a, b):
        ratio = round(b / a, 2) if isinstance(a, (int, float)) and isinstance(
            b, (int, float)) and a else "-"
        rows.append({"measure": measure, "portal": a, "evennia": b, "ratio": ratio})

    for ps, es in zip(p.get("scale", []), e.get("scale", [])):
        if ps.get("sessions") and "portal_rss_kib" in ps and "portal_rss_kib" in es:
            row(f"portal RSS KiB, {ps['sessions']} idle sessions",
                ps["portal_rss_kib"], es["portal_rss_kib"])
            row(f"portal + game RSS KiB, {ps['sessions']} idle sessions",
                ps["total_rss_kib"], es["total_rss_kib"])
    pc, ec = p.get("connection_setup"), e.get("connection_setup")
    if pc and ec:
        for key in ["connections_per_s", "screen_p99_ms", "portal_cpu_us_per_conn",
                    "game_cpu_us_per_conn"]:
            row(f"connection setup: {key}", pc[key], ec[key])
    erates = {r["target_rate"]: r for r in e.get("round_trip", [])}
    for pr in p.get("round_trip", []):
        t = pr["target_rate"]
        er = erates.get(t)
        if er is None:
            row(f"echo {t}/s: answered/s", pr["achieved_rate"], "not run (saturated)")
            continue
        row(f"echo {t}/s: answered/s", pr["achieved_rate"], er["achieved_rate"])
        if not er.get("lag_count") or not pr.get("lag_count"):
            # Nothing answered: lag and CPU per round trip mean nothing.
            row(f"echo {t}/s: lag p99 ms", pr["lag_p99_ms"], "none answered")
            continue
        row(f"echo {t}/s: lag p99 ms", pr["lag_p99_ms"], er["lag_p99_ms"])
        row(f"echo {t}/s: portal CPU µs/rt", pr["portal_cpu_us_per_rt"],
            er["portal_cpu_us_per_rt"])
        row(f"echo {t}/s: game CPU µs/rt", pr["game_cpu_us_per_rt"], er["game_cpu_us_per_rt"])
    pa = p.get("round_trip", []) + p.get("saturation", [])
    ea = e.get("round_trip", []) + e.get("saturation", [])
    if pa and ea:
        row("saturation: best answered/s", max(r["achieved_rate"] for r in pa),
            max(r["achieved_rate"] for r in ea))
    pd, ed = p.get("dummyrunner", {}), e.get("dummyrunner", {})
    for key in ["actions_per_s", "lag_p50_ms", "lag_p99_ms", "portal_cpu_pct", "game_cpu_pct",
                "portal_rss_kib", "game_rss_kib"]:
        if key in pd and key in ed:
            row(f"dummyrunner: {key}", pd[key], ed[key])
    pr, er = p.get("restart", {}), e.get("restart", {})
    for key in ["all_answered_ms", "after_lag_max_ms", "commands_lost"]:
        if key in pr and key in er:
            row(f"restart: {key}", pr[key], er[key])
    return rows
