"""A portal + demo game on free loopback ports, for the check scripts
(scripts/check-telnetlib3, scripts/check-browser, scripts/check-paramiko):
start it from a temporary config, read its addresses from the status file,
stop it by pid.
"""
import pathlib, signal, subprocess, sys, tempfile, time


def status(path, key):
    """A key of the portal's status file, or None."""
    try:
        for line in open(path):
            k, _, v = line.strip().partition(" = ")
            if k == key:
                return v
    except FileNotFoundError:
        return None
    return None


def toml_string(text):
    """A TOML basic string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class PortalUnderTest:
    """Started on entry, stopped (SIGTERM, then kill) on exit."""

    def __init__(self, bin_dir, prefix, name="check", extra=""):
        """`extra`: whole TOML tables appended to the config; `{tmp}` in it
        is the portal's temporary folder."""
        self.bin = pathlib.Path(bin_dir).resolve()
        self.name = name
        self.extra = extra
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
        self.proc = None

    def __enter__(self):
        tmp = self.tmp
        conf = tmp / "portal.conf"
        extra = self.extra.replace("{tmp}", str(tmp))
        conf.write_text(f"""
[portal]
name = {toml_string(self.name)}
status_file = "{tmp}/status"
pidfile = "{tmp}/portal.pid"
control_socket = ""
[telnet]
listen = ["127.0.0.1:0"]
[web]
listen = ["127.0.0.1:0"]
[amp]
listen = "127.0.0.1:0"
[log]
file = "{tmp}/portal.log"
[game]
command = ["{self.bin}/demo_game", "--db", "{tmp}/game.sqlite3", "--hash-cost", "fast"]
{extra}
""")
        self.proc = subprocess.Popen([str(self.bin / "portal"), "--config", str(conf)],
                                     cwd=tmp, stderr=open(tmp / "stderr.log", "w"))
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.get("telnet") and self.get("game_pid"):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.__exit__(None, None, None)
        sys.exit(f"the portal did not start; see {tmp}/stderr.log")

    def reload_server(self):
        """`portal reload-server`: the game restarts, players stay."""
        subprocess.run([str(self.bin / "portal"), "reload-server", "--config",
                        str(self.tmp / "portal.conf")], check=True, capture_output=True)

    def get(self, key):
        return status(self.tmp / "status", key)

    def log_tail(self, chars=3000):
        try:
            return (self.tmp / "portal.log").read_text()[-chars:]
        except OSError:
            return ""

    def __exit__(self, *exc):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
