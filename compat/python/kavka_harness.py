"""Start, stop, crash and restart real `kavka broker` processes for the compatibility tests.

Every broker gets its own temporary directory (data dir + stderr log) and a free
ephemeral port on 127.0.0.1. The harness never talks the Kafka protocol itself; it
only manages the process, so that a broken broker shows up as a client failure
with the broker's own log attached.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Ports handed out in this process; the kernel could otherwise give the same
# ephemeral port to two brokers started back to back (bind(0) then close).
_PORTS_HANDED_OUT: set[int] = set()


class BrokerError(Exception):
    """The broker process could not be started or did not behave as a process should."""


def kavka_binary() -> Path:
    """Path of the broker binary: $KAVKA_BIN, else the release build in this repository
    (under $CARGO_TARGET_DIR when that is set)."""
    env = os.environ.get("KAVKA_BIN")
    if env:
        return Path(env)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    return target / "release" / "kavka"


def kavka_certs(kavka_bin: Path, out: Path, *args: str) -> None:
    """Runs `kavka certs <args> --out <out>` and fails the test with its output if it fails."""
    r = subprocess.run([str(kavka_bin), "certs", *args, "--out", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"kavka certs {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"


def node_store_settings(certs: Path, node: str) -> dict[str, str]:
    """Broker settings for the PKCS12 key store of `kavka certs node --name <node>` and the
    `kavka certs` trust store, with their generated passwords."""
    password = (certs / f"{node}.password").read_text().strip()
    return {
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(certs / f"{node}.p12"),
        "ssl.keystore.password": password,
        "ssl.key.password": password,
        "ssl.truststore.type": "PKCS12",
        "ssl.truststore.location": str(certs / "truststore.p12"),
        "ssl.truststore.password": (certs / "truststore.password").read_text().strip(),
    }


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now and that this run has not used."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _PORTS_HANDED_OUT:
            _PORTS_HANDED_OUT.add(port)
            return port
    raise BrokerError("could not find a free loopback port")


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Broker:
    """One `kavka broker` node: a process, a data directory, a port and a stderr log.

    `kill9()` followed by `start()` restarts the node on the same directory and port,
    which is how the crash tests exercise recovery.
    """

    def __init__(self, workdir: Path, overrides: dict[str, str] | None = None,
                 port: int | None = None, name: str = "kavka", binary: Path | None = None,
                 extra_args: list[str] | None = None, set_listener_and_dirs: bool = True):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.binary = Path(binary) if binary else kavka_binary()
        self._auto_port = port is None and set_listener_and_dirs
        self.port = port if port is not None else free_port()
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "broker-stderr.log"
        # extra_args go before the overrides (e.g. ["--config", path]); with
        # set_listener_and_dirs=False the caller supplies listeners/log.dirs another way.
        self.extra_args = list(extra_args or [])
        self.overrides: dict[str, str] = {}
        if set_listener_and_dirs:
            self.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{self.port}"
            self.overrides["log.dirs"] = str(self.data_dir)
        self.overrides.update(overrides or {})
        self.proc: subprocess.Popen | None = None
        # True while the harness itself is stopping/killing the process, so that an exit
        # nobody asked for (a crash, or a signal from outside the test) can be reported.
        self._exit_expected = False
        self.starts = 0
        self.exit_codes: list[int] = []

    @property
    def bootstrap(self) -> str:
        """`host:port` for clients' bootstrap.servers."""
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [str(self.binary), "broker", *self.extra_args]
        for key, value in self.overrides.items():
            cmd += ["--override", f"{key}={value}"]
        return cmd

    def start(self, timeout: float = 60.0) -> "Broker":
        """Spawn the process and wait until the port accepts TCP connections. On the first
        start with a harness-chosen port, a port taken meanwhile by another process
        (bind(0)-then-close is racy) is replaced by a fresh one."""
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except BrokerError as e:
                if not (self._auto_port and self.starts == 1 + attempt and attempt < 2
                        and "Address already in use" in str(e)):
                    raise
                self._note(f"port {self.port} was taken; retrying on another port")
                self.port = free_port()
                self.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{self.port}"
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> "Broker":
        if self.proc is not None and self.proc.poll() is None:
            raise BrokerError(f"{self.name} is already running (pid {self.proc.pid})")
        if not self.binary.exists():
            raise BrokerError(
                f"broker binary {self.binary} does not exist: run `cargo build --release` "
                "or set KAVKA_BIN")
        self.starts += 1
        self._exit_expected = False
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== harness: start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                cwd=self.workdir, env={**os.environ, "RUST_BACKTRACE": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self.exit_codes.append(code)
                raise BrokerError(
                    f"{self.name} exited with code {code} during start-up\n{self.log_tail()}")
            if port_accepts(self.port):
                # Someone else may own the port (our bind failed): make sure our process
                # did not exit right after.
                time.sleep(0.05)
                if self.proc.poll() is None:
                    return self
                continue
            time.sleep(0.05)
        raise BrokerError(f"{self.name} did not accept connections on {self.port} "
                          f"within {timeout}s\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BrokerError(f"{self.name} was never started")
        return self.proc.pid

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit code
        from SIGTERM, or None when it had to be killed (or was not running)."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        self._exit_expected = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._note("did not exit within %.0fs of SIGTERM; killed" % timeout)
            return None
        self.exit_codes.append(code)
        return code

    def kill9(self) -> None:
        """SIGKILL: the crash the recovery code must survive."""
        if self.proc is None or self.proc.poll() is not None:
            raise BrokerError(f"{self.name} is not running, cannot kill it")
        self._exit_expected = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._note("killed with SIGKILL")

    def restart(self, timeout: float = 60.0) -> "Broker":
        """Clean stop (if running) and start again on the same directory and port."""
        self.stop()
        return self.start(timeout=timeout)

    def _note(self, text: str) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"===== harness: {text}\n".encode())

    def proc_status(self, field: str) -> int:
        """A numeric field (kB) of /proc/<pid>/status, e.g. VmRSS or VmSize."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise BrokerError(f"no {field} in /proc/{self.pid}/status")

    def unexpected_exit(self) -> str | None:
        """A note when the process has exited without the harness stopping it."""
        if self.proc is None or self._exit_expected:
            return None
        code = self.proc.poll()
        if code is None:
            return None
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        return (f"NOTE: {self.name} (pid {self.proc.pid}) exited by itself ({how}) while the test "
                "ran: a crash, or a signal sent from outside the test (e.g. pkill)")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, max_chars: int = 20000) -> str:
        text = self.log_text()
        if len(text) > max_chars:
            text = "...[truncated]...\n" + text[-max_chars:]
        note = self.unexpected_exit()
        head = f"{note}\n" if note else ""
        return f"{head}--- {self.name} stderr ({self.log_path}) ---\n{text}"


class ResponseDroppingProxy:
    """A loopback TCP proxy in front of a broker that, for the first `drop` Produce
    responses, closes the client's connection instead of forwarding the response.

    The broker has appended those batches, but the producer never hears so and
    retries them: an idempotent producer's retry must be answered with the original
    offsets and not appended twice. The broker must advertise the proxy's port
    (advertised.listeners) so that clients reconnect through it.
    """

    PRODUCE = 0

    def __init__(self, target_port: int, drop: int, listen_port: int | None = None):
        import threading
        self.target_port = target_port
        self.port = listen_port if listen_port is not None else free_port()
        self.drop_remaining = drop
        self.dropped = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", self.port))
        self._server.listen(64)
        self._server.settimeout(0.2)
        self._threads: list = []
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept_loop(self) -> None:
        import threading
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            api_by_corr: dict[int, int] = {}
            for fn in (self._pump_requests, self._pump_responses):
                t = threading.Thread(target=fn, args=(client, upstream, api_by_corr), daemon=True)
                t.start()
                self._threads.append(t)

    @staticmethod
    def _read_exact(sock: socket.socket, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = sock.recv(n - len(buf))
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _read_frame(self, sock: socket.socket) -> bytes | None:
        head = self._read_exact(sock, 4)
        if head is None:
            return None
        size = int.from_bytes(head, "big", signed=True)
        if size < 0 or size > 200 * 1024 * 1024:
            return None
        body = self._read_exact(sock, size)
        return None if body is None else head + body

    @staticmethod
    def _close(*socks: socket.socket) -> None:
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _pump_requests(self, client, upstream, api_by_corr) -> None:
        while True:
            frame = self._read_frame(client)
            if frame is None:
                break
            if len(frame) >= 12:
                api_key = int.from_bytes(frame[4:6], "big", signed=True)
                corr = int.from_bytes(frame[8:12], "big", signed=True)
                api_by_corr[corr] = api_key
            try:
                upstream.sendall(frame)
            except OSError:
                break
        self._close(client, upstream)

    def _pump_responses(self, client, upstream, api_by_corr) -> None:
        while True:
            frame = self._read_frame(upstream)
            if frame is None:
                break
            corr = int.from_bytes(frame[4:8], "big", signed=True) if len(frame) >= 8 else None
            if api_by_corr.pop(corr, None) == self.PRODUCE:
                with self._lock:
                    drop = self.drop_remaining > 0
                    if drop:
                        self.drop_remaining -= 1
                        self.dropped += 1
                if drop:
                    break
            try:
                client.sendall(frame)
            except OSError:
                break
        self._close(client, upstream)

    def close(self) -> None:
        self._stop.set()
        self._server.close()
