"""pytest configuration for the Java client suite (official kafka-clients 4.1.0).

The broker fixtures are compat/python's (kavka_fixtures). The Java side is one JVM per
test running `kavka.compat.Driver repl` (compat/java/src): the test writes one command per
line and reads JSON lines back; long-lived consumers report rebalance callbacks and records
as events. The classpath comes from $KAVKA_JAVA_CLASSPATH (set by scripts/java-clients.sh),
else from `scripts/java-clients.sh classpath` (which fetches the jars and compiles once).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "compat" / "python"))

from kavka_fixtures import *  # noqa: E402,F401,F403
from rawkafka import Conn, api_versions_v0  # noqa: E402

CONSUMER_GROUP_HEARTBEAT = 68

# Broker settings for every test: no initial rebalance delay, so a classic group forms at once.
GROUP_OVERRIDES = {"group.initial.rebalance.delay.ms": "0"}


@pytest.fixture(scope="session")
def java_classpath() -> str:
    cp = os.environ.get("KAVKA_JAVA_CLASSPATH")
    if cp:
        return cp
    try:
        out = subprocess.run(["bash", str(REPO / "scripts" / "java-clients.sh"), "classpath"],
                             check=True, capture_output=True, text=True, timeout=900)
    except subprocess.CalledProcessError as e:
        pytest.fail(f"scripts/java-clients.sh classpath failed:\n{e.stderr}", pytrace=False)
    return out.stdout.strip().splitlines()[-1]


class JavaError(AssertionError):
    pass


class JavaClient:
    """One `Driver repl` JVM talking to one bootstrap address."""

    def __init__(self, classpath: str, bootstrap: str, log_path: Path, log_level: str = "warn",
                 client_config: Path | None = None):
        """client_config: a Java properties file (e.g. `kavka certs`' <name>-client-ssl.properties)
        whose entries the driver adds to every client it creates (`--client-config`)."""
        self.bootstrap = bootstrap
        self.log_path = log_path
        self._log = open(log_path, "ab")
        extra = ["--client-config", str(client_config)] if client_config is not None else []
        self.proc = subprocess.Popen(
            ["java", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k",
             f"-Dkavka.log.level={log_level}", "-cp", classpath,
             "kavka.compat.Driver", "repl", "--bootstrap", bootstrap, *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            text=True, bufsize=1)
        self._lines: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        self._events_cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        ready = self._next_reply(timeout=60, kind="ready")
        self.version = ready["version"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                msg = {"type": "garbage", "line": line}
            if msg.get("type") == "event":
                with self._events_cv:
                    self.events.append(msg)
                    self._events_cv.notify_all()
            else:
                self._lines.put(msg)
        self._lines.put(None)
        with self._events_cv:
            self._events_cv.notify_all()

    def stderr_tail(self, n: int = 8000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return ""

    def _next_reply(self, timeout: float, kind: str = "reply") -> dict:
        try:
            msg = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise JavaError(f"no {kind} from the Java driver within {timeout}s\n"
                            f"--- java stderr ---\n{self.stderr_tail()}") from None
        if msg is None:
            raise JavaError(f"the Java driver exited (code {self.proc.poll()})\n"
                            f"--- java stderr ---\n{self.stderr_tail()}")
        if msg.get("type") != kind:
            raise JavaError(f"expected a {kind} line, got {msg}")
        return msg

    def call(self, cmd: str, timeout: float = 60, check: bool = True, **opts) -> dict:
        """Run one driver command; options become `--key value` (underscores -> dashes)."""
        words = [cmd]
        for k, v in opts.items():
            if v is None:
                continue
            if isinstance(v, bool):
                v = "true" if v else "false"
            words += [f"--{k.replace('_', '-')}", str(v)]
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join(words) + "\n")
        self.proc.stdin.flush()
        reply = self._next_reply(timeout)
        if check and not reply.get("ok"):
            raise JavaError(f"{cmd} failed: {reply.get('error')}\n"
                            f"--- java stderr ---\n{self.stderr_tail()}")
        return reply

    def wait_event(self, pred, timeout: float = 30, what: str = "event") -> dict:
        """The first event (in arrival order, including past ones) that satisfies pred."""
        deadline = time.monotonic() + timeout
        with self._events_cv:
            while True:
                for ev in self.events:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise JavaError(f"timed out after {timeout}s waiting for {what}; events so far:\n"
                                    + "\n".join(json.dumps(e) for e in self.events[-40:])
                                    + f"\n--- java stderr ---\n{self.stderr_tail()}")
                self._events_cv.wait(min(left, 0.5))

    def wait_until(self, cond, timeout: float = 30, what: str = "condition", poll: float = 0.2):
        """Poll cond() (which may call the driver) until it returns a truthy value."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = cond()
            if last:
                return last
            time.sleep(poll)
        raise JavaError(f"timed out after {timeout}s waiting for {what}; last value: {last}\n"
                        "events so far:\n" + "\n".join(json.dumps(e) for e in self.events[-40:])
                        + f"\n--- java stderr ---\n{self.stderr_tail()}")

    def records(self, name: str | None = None) -> list[list]:
        """Every record consumed so far (by one named consumer, or by all)."""
        with self._events_cv:
            out = []
            for ev in self.events:
                if ev["event"] == "records" and (name is None or ev["name"] == name):
                    out.extend(ev["records"])
            return out

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def java(request, java_classpath, tmp_path):
    """java(broker) -> a JavaClient session for that broker; all closed after the test.
    client_config: a properties file added to every client's settings (TLS, timeouts);
    bootstrap: another address of the broker than broker.bootstrap (e.g. localhost:PORT)."""
    started: list[JavaClient] = []
    request.node._kavka_java = started

    def make(broker, log_level: str = "warn", client_config: Path | None = None,
             bootstrap: str | None = None) -> JavaClient:
        c = JavaClient(java_classpath, bootstrap or broker.bootstrap,
                       tmp_path / f"java{len(started)}.log", log_level=log_level,
                       client_config=client_config)
        started.append(c)
        return c

    yield make
    for c in started:
        c.close()


@pytest.fixture
def gbroker(broker_factory):
    """A broker with group.initial.rebalance.delay.ms=0."""
    return broker_factory(**GROUP_OVERRIDES)


def broker_api_versions(broker) -> dict[int, tuple[int, int]]:
    with Conn(broker.port) as c:
        err, apis = api_versions_v0(c)
    assert err == 0, f"ApiVersions error {err}"
    return apis


# KIP-848 members reconcile one step per heartbeat; a short interval keeps the tests fast.
CONSUMER_GROUP_OVERRIDES = {"group.consumer.min.heartbeat.interval.ms": "500",
                            "group.consumer.heartbeat.interval.ms": "500"}


@pytest.fixture
def kip848_broker(broker_factory):
    """A broker with short consumer-group heartbeats, or a skip when it does not advertise
    ConsumerGroupHeartbeat (KIP-848)."""
    b = broker_factory(**GROUP_OVERRIDES, **CONSUMER_GROUP_OVERRIDES)
    if CONSUMER_GROUP_HEARTBEAT not in broker_api_versions(b):
        pytest.skip("broker does not advertise ConsumerGroupHeartbeat (API key 68): "
                    "group.protocol=consumer (KIP-848) is not implemented yet")
    return b


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for b in getattr(item, "_kavka_brokers", []):
            report.sections.append((f"kavka broker log: {b.name} ({report.when})",
                                    b.log_tail(int(os.environ.get("KAVKA_LOG_TAIL_CHARS", "20000")))))
        for i, c in enumerate(getattr(item, "_kavka_java", [])):
            report.sections.append((f"java driver {i} stderr ({report.when})", c.stderr_tail()))
