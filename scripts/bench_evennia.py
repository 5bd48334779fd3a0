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

    def stop(self):
        pids = [p for p in (self.pidfile("portal"), self.pidfile("server")) if p]
        subprocess.run([self.evennia, "stop"], cwd=self.game, env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        # Whatever `evennia stop` left behind (only the pids this game wrote).
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def run(args, sizes, rates, q, bench):
    target = Evennia(bench)
    print(f"bench: Evennia {target.version} on {target.addr} (portal {target.pid}, "
          f"server {target.pidfile('server')})", file=sys.stderr)
    bench["DR_EXTRA"][:] = ["--logged-in", "Limbo", "--login-timeout", "120"]
    pids = {"portal": lambda: target.pid, "game": lambda: target.pidfile("server")}
    results = {"version": target.version}
    try:
        results["scale"] = bench["scale"](target, sizes, hold=1 if args.quick else 3)
        results["round_trip"] = bench["round_trip"](
            target, q["rt_clients"], rates, q["rt_secs"] + 10, pids, warmup=12)
        results["dummyrunner"] = bench["default_profile"](
            target, q["dr_clients"], q["dr_secs"] + 20, pids, warmup=25)
        print(f"bench: evennia dummyrunner {results['dummyrunner']}", file=sys.stderr)
        reload = (f"cd {target.game} && PATH={target.env['PATH']} "
                  f"{target.evennia} reload >/dev/null 2>&1")
        results["restart"] = bench["restart"](
            target, q["rs_clients"], q["rs_secs"] + 20, q["rs_at"] + 15,
            trigger=["--exec-at", f"{q['rs_at'] + 15}:{reload}"])
        print(f"bench: evennia restart {results['restart']}", file=sys.stderr)
    finally:
        bench["DR_EXTRA"][:] = []
        target.stop()
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
    for pr, er in zip(p.get("round_trip", []), e.get("round_trip", [])):
        t = pr["target_rate"]
        row(f"echo {t}/s: answered/s", pr["achieved_rate"], er["achieved_rate"])
        if not er.get("answered") or not pr.get("answered"):
            # Nothing answered: lag and CPU per round trip mean nothing.
            row(f"echo {t}/s: lag p99 ms", pr["lag_p99_ms"], "none answered")
            continue
        row(f"echo {t}/s: lag p99 ms", pr["lag_p99_ms"], er["lag_p99_ms"])
        row(f"echo {t}/s: portal CPU µs/rt", pr["portal_cpu_us_per_rt"],
            er["portal_cpu_us_per_rt"])
    pd, ed = p.get("dummyrunner", {}), e.get("dummyrunner", {})
    for key in ["actions_per_s", "lag_p50_ms", "lag_p99_ms", "portal_cpu_pct", "game_cpu_pct",
                "portal_rss_kib", "game_rss_kib"]:
        if key in pd and key in ed:
            row(f"dummyrunner: {key}", pd[key], ed[key])
    pr, er = p.get("restart", {}), e.get("restart", {})
    for key in ["all_answered_ms", "commands_lost"]:
        if key in pr and key in er:
            row(f"restart: {key}", pr[key], er[key])
    return rows
