"""The operator command line (issue 6, contract: the CLI spec): `kavka topics`, `console-producer`,
`console-consumer`, `consumer-groups`, `configs`, `acls`, `users`, `cluster status`, `perf produce` and
`perf consume`, run as subprocesses of the `kavka` binary ($KAVKA_BIN, else target/release/kavka)
against real brokers.

Layout of this file (pytest runs it top to bottom, which keeps at most one cluster alive at a time):
- `--help` of every subcommand names every option of the spec; clap usage errors exit 2.
- Single-node tests (one `broker_factory` broker per test, a few commands on it):
  topics, console-producer, console-consumer, consumer-groups (describe/lag, members/state,
  reset-offsets in every mode, delete), configs (topics, brokers, --entity-default), cluster status,
  perf produce/consume, acls + users on a SASL_PLAINTEXT node with the StandardAuthorizer (admin and
  users through --command-config / --producer.config / --consumer.config with sasl.jaas.config), an
  SSL node driven with the property files of `kavka certs client`.
- Error paths: unknown / existing topic, unknown group, unreachable bootstrap server for every
  subcommand (exit 1, one `Error:` line, well under 30 s), a silent server with request.timeout.ms,
  bad property files (missing, bad security.protocol, wrong keystore password, malformed line, bad
  JAAS line, bad number), producers auto-creating topics when the broker does.
- THREE-NODE TESTS (`test_cluster3_*`, at the end of the file, one module-scoped `kavka cluster up
  --nodes 3`): topics --describe with RF 3 compared with the client's metadata, a node killed with
  SIGKILL (leader moves, --under-replicated-partitions / --unavailable-partitions, `Offline:`,
  cluster status counting them and showing the node fenced), then restarted until every ISR is full;
  console tools and group lag on an RF 3 topic. (test_t84_walkthrough.py runs examples/walkthrough.sh,
  the operator's first session, on another 3-node cluster.)

Every command's output is checked for a Rust panic or backtrace (RUST_BACKTRACE=1 is set). Checks of
the spec's exact wording (error messages, optional fields) are soft: a test records each one that
fails, carries on, and fails at its end listing all of them, so that one run shows every deviation.
The whole file takes about two minutes.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from kavka_harness import free_port, kavka_certs, node_store_settings, port_accepts
from kclients import ck_admin, ck_read_partition

# Groups join and leave quickly (KIP-848 heartbeats every second, classic groups without delay).
FAST_GROUPS = {
    "group.initial.rebalance.delay.ms": "0",
    "group.consumer.min.session.timeout.ms": "2000",
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.heartbeat.interval.ms": "500",
    "group.consumer.heartbeat.interval.ms": "1000",
}

PANIC_MARKERS = ("panicked at", "stack backtrace", "RUST_BACKTRACE", "thread 'main'",
                 "thread 'tokio")


# ====================================================================== running the binary


class Run:
    """One finished `kavka ...` command."""

    def __init__(self, args, rc, out, err, elapsed):
        self.args, self.rc, self.out, self.err, self.elapsed = args, rc, out, err, elapsed

    def __repr__(self):
        return (f"`kavka {' '.join(self.args)}` exited {self.rc} after {self.elapsed:.1f}s\n"
                f"--- stdout ---\n{self.out[-4000:]}\n--- stderr ---\n{self.err[-4000:]}")

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.out.splitlines() if ln.strip()]

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]


def cli_env(extra: dict | None = None) -> dict:
    return {**os.environ, "RUST_BACKTRACE": "1", "NO_COLOR": "1", "TZ": "UTC", **(extra or {})}


def kavka(kavka_bin, *args, input: str | None = None, timeout: float = 60) -> Run:
    args = [str(a) for a in args]
    start = time.monotonic()
    try:
        p = subprocess.run([str(kavka_bin), *args], input=input if input is not None else "",
                           capture_output=True, text=True, timeout=timeout, env=cli_env())
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise AssertionError(f"`kavka {' '.join(args)}` did not finish within {timeout}s\n"
                             f"--- stdout ---\n{out[-3000:]}\n--- stderr ---\n{err[-3000:]}") from None
    r = Run(args, p.returncode, p.stdout, p.stderr, time.monotonic() - start)
    assert_no_panic(r)
    return r


def assert_no_panic(r: Run) -> None:
    for marker in PANIC_MARKERS:
        assert marker not in r.out and marker not in r.err, f"a Rust panic/backtrace:\n{r!r}"


def ok(r: Run) -> Run:
    assert r.rc == 0, f"expected exit 0:\n{r!r}"
    return r


class SoftChecks:
    """Checks of the spec's exact wording and layout that do not stop a test when they fail, so that
    one run reports every deviation; the test fails at its end (`soft_done()`) with all of them."""

    def __init__(self):
        self.problems: list[str] = []
        self.reported = False

    def add(self, problem: str) -> None:
        self.problems.append(problem)

    def done(self) -> None:
        self.reported = True
        assert not self.problems, (f"{len(self.problems)} check(s) failed:\n\n"
                                   + "\n\n".join(self.problems))


_SOFT = SoftChecks()
_ADMIN: list = []


@pytest.fixture(autouse=True)
def _soft_checks():
    global _SOFT
    _SOFT = SoftChecks()
    yield _SOFT
    _ADMIN.clear()
    if _SOFT.problems and not _SOFT.reported:
        pytest.fail("soft checks that failed before the test stopped:\n\n" + "\n\n".join(_SOFT.problems),
                    pytrace=False)


def soft_done() -> None:
    _SOFT.done()


def check(cond, message: str) -> bool:
    """A soft assertion: records `message` when `cond` is false."""
    if not cond:
        _SOFT.add(message)
    return bool(cond)


def fails(r: Run, pattern: str | None = None, code: int = 1, hard: bool = False) -> str | None:
    """Exit `code`, exactly one non-empty stderr line starting with `Error: ` (matching `pattern`).
    A failed exit code stops the test; the wording of the line is a soft check unless `hard`."""
    assert r.rc == code, f"expected exit {code}:\n{r!r}"
    lines = r.err_lines
    problems = []
    if len(lines) != 1:
        problems.append("expected exactly one stderr line")
    error = [ln for ln in lines if ln.startswith("Error: ")]
    if not error:
        problems.append("no stderr line starts with 'Error: '")
    elif pattern is not None and not re.search(pattern, error[0]):
        problems.append(f"the error does not match {pattern!r}")
    if problems:
        message = "; ".join(problems) + f":\n{r!r}"
        if hard:
            raise AssertionError(message)
        _SOFT.add(message)
    return error[0] if error else None


def wait_until(what: str, check, timeout: float = 30.0, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
            last = value
        except AssertionError as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def props(path: Path, **settings) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    return path


# ====================================================================== parsing the output

PART_LINE = re.compile(
    r"^\tTopic: (?P<topic>\S+)\tPartition: (?P<partition>\d+)\tLeader: (?P<leader>\d+|none)"
    r"\tReplicas: (?P<replicas>[\d,]*)\tIsr: (?P<isr>[\d,]*)(?P<rest>(\t.*)?)$")


def header_re(topic: str, partitions: int, rf: int) -> re.Pattern:
    return re.compile(rf"^Topic: {re.escape(topic)}\tTopicId: (?P<id>[A-Za-z0-9_-]{{22}})"
                      rf"\tPartitionCount: {partitions}\tReplicationFactor: {rf}"
                      r"\tConfigs: ?(?P<configs>\S*)$")


def ids(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse_partition_lines(out: str) -> dict:
    """{(topic, partition): {leader, replicas, isr, offline, line}} of the describe output;
    fails on a partition line that does not have the spec's layout."""
    parts = {}
    for line in out.splitlines():
        if not line.startswith("\t"):
            continue
        m = PART_LINE.match(line)
        assert m, f"partition line not in the spec's layout: {line!r}"
        extra = dict(f.split(": ", 1) for f in m["rest"].split("\t") if ": " in f)
        parts[(m["topic"], int(m["partition"]))] = {
            "leader": None if m["leader"] == "none" else int(m["leader"]),
            "replicas": ids(m["replicas"]), "isr": ids(m["isr"]),
            "offline": ids(extra.get("Offline", "")), "line": line}
    return parts


def parse_table(out: str, header: list[str]) -> list[dict]:
    """Rows of a space-separated table whose header line splits into `header`."""
    lines = [ln for ln in out.splitlines() if ln.strip()]
    idx = [i for i, ln in enumerate(lines) if ln.split() == header]
    assert idx, f"no header {' '.join(header)} in:\n{out}"
    rows = []
    for ln in lines[idx[0] + 1:]:
        cells = ln.split()
        assert len(cells) == len(header), f"row {ln!r} does not have {len(header)} columns:\n{out}"
        rows.append(dict(zip(header, cells)))
    return rows


DESCRIBE_HEADER = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                   "CONSUMER-ID", "HOST", "CLIENT-ID"]
RESET_HEADER = ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]


def group_rows(r: Run) -> dict:
    return {(row["TOPIC"], int(row["PARTITION"])): row
            for row in parse_table(r.out, DESCRIBE_HEADER)}


def reset_rows(r: Run) -> dict:
    return {(row["TOPIC"], int(row["PARTITION"])): int(row["NEW-OFFSET"])
            for row in parse_table(r.out, RESET_HEADER)}


# ====================================================================== client helpers


def java_murmur2_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner for a keyed record: toPositive(murmur2(key)) % partitions."""
    m, h = 0x5BD1E995, (0x9747B28C ^ len(key)) & 0xFFFFFFFF
    n4 = len(key) // 4
    for i in range(n4):
        k = int.from_bytes(key[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail, rem = key[4 * n4:], len(key) % 4
    if rem == 3:
        h ^= tail[2] << 16
    if rem >= 2:
        h ^= tail[1] << 8
    if rem >= 1:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


def produce(conf: dict, topic: str, records) -> list[tuple[int, int]]:
    """records: (key, value, partition or None, timestamp ms or None); returns (partition, offset)."""
    p = Producer({"socket.timeout.ms": 20000, **conf})
    reports: list = [None] * len(records)

    def cb(i):
        def done(err, msg):
            reports[i] = err or (msg.partition(), msg.offset())
        return done
    for i, (key, value, partition, ts) in enumerate(records):
        kw = {"key": key, "value": value, "on_delivery": cb(i)}
        if partition is not None:
            kw["partition"] = partition
        if ts is not None:
            kw["timestamp"] = ts
        p.produce(topic, **kw)
    assert p.flush(30) == 0
    bad = [r for r in reports if not isinstance(r, tuple)]
    assert not bad, bad
    return reports


def committed(conf: dict, group: str, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer({**conf, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
    finally:
        c.close()
    return {tp.partition: tp.offset for tp in tps}


def commit(conf: dict, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commits offsets for a group without joining it (a simple consumer group)."""
    c = Consumer({**conf, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                 asynchronous=False)
    finally:
        c.close()


def end_offsets(conf: dict, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer({**conf, "group.id": "probe-" + uuid.uuid4().hex[:6]})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=20, cached=False)[1]
                for p in range(partitions)}
    finally:
        c.close()


def keep(admin):
    """Keeps the last AdminClient alive: a temporary one is destroyed before its futures resolve."""
    _ADMIN[:] = [admin]
    return admin


def conf_of(broker) -> dict:
    return {"bootstrap.servers": broker.bootstrap}


# ====================================================================== --help

SPEC_OPTIONS = {
    ("topics",): ["--bootstrap-server", "--command-config", "--create", "--topic", "--partitions",
                  "--replication-factor", "--config", "--if-not-exists", "--list",
                  "--exclude-internal", "--describe", "--under-replicated-partitions",
                  "--unavailable-partitions", "--alter", "--delete"],
    ("console-producer",): ["--bootstrap-server", "--topic", "--property", "--producer-property",
                            "--producer.config", "--command-config", "--compression-codec",
                            "--request-required-acks", "--sync"],
    ("console-consumer",): ["--bootstrap-server", "--topic", "--from-beginning", "--group",
                            "--partition", "--offset", "--max-messages", "--timeout-ms",
                            "--property", "--consumer-property", "--consumer.config"],
    ("consumer-groups",): ["--bootstrap-server", "--command-config", "--list", "--describe",
                           "--group", "--members", "--state", "--delete", "--reset-offsets",
                           "--topic", "--all-topics", "--to-earliest", "--to-latest", "--to-offset",
                           "--to-datetime", "--shift-by", "--dry-run", "--execute"],
    ("configs",): ["--bootstrap-server", "--command-config", "--entity-type", "--entity-name",
                   "--entity-default", "--describe", "--all", "--alter", "--add-config",
                   "--delete-config"],
    ("acls",): ["--bootstrap-server", "--command-config", "--add", "--remove", "--list",
                "--allow-principal", "--deny-principal", "--allow-host", "--deny-host",
                "--operation", "--topic", "--group", "--cluster", "--transactional-id",
                "--resource-pattern-type", "--force"],
    ("users",): ["--bootstrap-server", "--command-config", "--alter", "--entity-name",
                 "--add-config", "--delete-config", "--describe"],
    ("cluster", "status"): ["--bootstrap-server", "--command-config"],
    ("perf", "produce"): ["--bootstrap-server", "--topic", "--num-records", "--record-size",
                          "--payload-file", "--throughput", "--producer-props", "--producer.config",
                          "--print-metrics"],
    ("perf", "consume"): ["--bootstrap-server", "--topic", "--num-records", "--messages", "--group",
                          "--timeout", "--consumer.config"],
}


def test_help_of_every_subcommand_names_every_spec_option(kavka_bin):
    missing = {}
    for sub, options in SPEC_OPTIONS.items():
        r = kavka(kavka_bin, *sub, "--help", timeout=20)
        if r.rc != 0:
            missing[" ".join(sub)] = f"--help exited {r.rc}: {r.err.strip()[:200]}"
            continue
        text = r.out + r.err
        lost = [o for o in options if not re.search(re.escape(o) + r"(?![\w.-])", text)]
        if lost:
            missing[" ".join(sub)] = lost
    top = ok(kavka(kavka_bin, "--help", timeout=20)).out
    for sub in ("topics", "console-producer", "console-consumer", "consumer-groups", "configs",
                "acls", "users", "perf"):
        if not re.search(rf"^\s+{re.escape(sub)}(\s|$)", top, re.M):
            missing.setdefault("kavka --help", []).append(sub)
    assert not missing, f"options/subcommands of the spec missing from --help: {missing}"
    # clap usage errors exit 2
    for sub in (("topics",), ("consumer-groups",), ("perf", "produce")):
        r = kavka(kavka_bin, *sub, "--no-such-option", timeout=20)
        assert r.rc == 2, f"a usage error should exit 2:\n{r!r}"
    soft_done()


# ====================================================================== topics


def test_topics_create_list_describe_alter_delete(broker_factory, kavka_bin):
    b = broker_factory(**{"auto.create.topics.enable": "false", **FAST_GROUPS})
    bs = ("--bootstrap-server", b.bootstrap)
    t = "orders-" + uuid.uuid4().hex[:6]

    r = ok(kavka(kavka_bin, "topics", *bs, "--create", "--topic", t, "--partitions", 3,
                 "--replication-factor", 1, "--config", "retention.ms=3600000",
                 "--config", "cleanup.policy=compact"))
    assert r.lines == [f"Created topic {t}."], r
    md = ck_admin(b).list_topics(timeout=20)
    assert len(md.topics[t].partitions) == 3
    res = ConfigResource(ConfigResource.Type.TOPIC, t)
    cfg = keep(ck_admin(b)).describe_configs([res])[res].result(20)
    assert cfg["retention.ms"].value == "3600000" and cfg["cleanup.policy"].value == "compact"

    # existing topic
    fails(kavka(kavka_bin, "topics", *bs, "--create", "--topic", t), rf"^Error: topic '{t}' already exists$")
    r = ok(kavka(kavka_bin, "topics", *bs, "--create", "--topic", t, "--if-not-exists"))
    assert r.out == "" and r.err_lines == [], r
    # a replication factor the single broker cannot satisfy
    fails(kavka(kavka_bin, "topics", *bs, "--create", "--topic", t + "-rf3",
                "--replication-factor", 3))

    # defaults: one partition (num.partitions=1)
    ok(kavka(kavka_bin, "topics", *bs, "--create", "--topic", "a-one"))
    ok(kavka(kavka_bin, "topics", *bs, "--create", "--topic", "a-two", "--partitions", 2))
    ok(kavka(kavka_bin, "topics", *bs, "--create", "--topic", "b-one"))

    # __consumer_offsets exists once a group committed
    commit(conf_of(b), "topics-g", "a-one", {0: 0})
    r = ok(kavka(kavka_bin, "topics", *bs, "--list"))
    assert r.lines == sorted(r.lines), f"--list is not sorted:\n{r!r}"
    assert {t, "a-one", "a-two", "b-one", "__consumer_offsets"} <= set(r.lines), r
    assert set(r.lines) <= {t, "a-one", "a-two", "b-one", "__consumer_offsets"}, r
    r = ok(kavka(kavka_bin, "topics", *bs, "--list", "--exclude-internal"))
    assert r.lines == sorted([t, "a-one", "a-two", "b-one"]), r
    r = ok(kavka(kavka_bin, "topics", *bs, "--list", "--topic", "a-.*"))
    assert r.lines == ["a-one", "a-two"], r

    # describe: the exact layout
    broker_id = next(iter(md.brokers))
    r = ok(kavka(kavka_bin, "topics", *bs, "--describe", "--topic", t))
    lines = r.out.splitlines()
    assert len([ln for ln in lines if ln.strip()]) == 4, r
    m = header_re(t, 3, 1).match(lines[0])
    assert m, f"header line not in the spec's layout: {lines[0]!r}\n{r!r}"
    assert sorted(m["configs"].split(",")) == ["cleanup.policy=compact", "retention.ms=3600000"], r
    tid = keep(ck_admin(b)).describe_topics(TopicCollection([t]))[t].result(20).topic_id
    # Kafka prints a Uuid in URL-safe base64 without padding; librdkafka's str() uses the standard
    # alphabet
    java_id = str(tid).replace("+", "-").replace("/", "_").rstrip("=")
    assert m["id"] == java_id, f"TopicId {m['id']} is not the topic's id {java_id}"
    for p in range(3):
        assert lines[1 + p] == (f"\tTopic: {t}\tPartition: {p}\tLeader: {broker_id}"
                                f"\tReplicas: {broker_id}\tIsr: {broker_id}"), r
    r = ok(kavka(kavka_bin, "topics", *bs, "--describe", "--topic", "a-one"))
    assert header_re("a-one", 1, 1).match(r.out.splitlines()[0]), r
    assert header_re("a-one", 1, 1).match(r.out.splitlines()[0])["configs"] == "", r
    # all topics, with and without internal ones
    r = ok(kavka(kavka_bin, "topics", *bs, "--describe"))
    heads = [ln.split("\t")[0] for ln in r.out.splitlines() if ln.startswith("Topic: ")]
    assert f"Topic: {t}" in heads and "Topic: __consumer_offsets" in heads, r
    parse_partition_lines(r.out)
    r = ok(kavka(kavka_bin, "topics", *bs, "--describe", "--exclude-internal"))
    heads = [ln.split("\t")[0] for ln in r.out.splitlines() if ln.startswith("Topic: ")]
    assert sorted(heads) == sorted(f"Topic: {x}" for x in (t, "a-one", "a-two", "b-one")), r
    # nothing is under-replicated or unavailable on a healthy node (once __consumer_offsets,
    # created by the commit above, has a leader for every partition: seen leaderless for a moment)
    for flag in ("--under-replicated-partitions", "--unavailable-partitions"):
        wait_until(f"describe {flag} empty", lambda: ok(kavka(
            kavka_bin, "topics", *bs, "--describe", flag)).lines == [], timeout=15)
    fails(kavka(kavka_bin, "topics", *bs, "--describe", "--topic", "no-such-topic"),
          r"^Error: topic 'no-such-topic' does not exist$")

    # alter: more partitions; fewer is an error
    r = ok(kavka(kavka_bin, "topics", *bs, "--alter", "--topic", t, "--partitions", 5))
    assert r.out == "", r
    assert len(ck_admin(b).list_topics(timeout=20).topics[t].partitions) == 5
    fails(kavka(kavka_bin, "topics", *bs, "--alter", "--topic", t, "--partitions", 2))
    fails(kavka(kavka_bin, "topics", *bs, "--alter", "--topic", "no-such-topic", "--partitions", 4),
          r"does not exist")

    # delete
    r = ok(kavka(kavka_bin, "topics", *bs, "--delete", "--topic", t))
    assert r.out == "", r
    wait_until("the topic gone from --list",
               lambda: t not in ok(kavka(kavka_bin, "topics", *bs, "--list")).lines, timeout=15)
    fails(kavka(kavka_bin, "topics", *bs, "--delete", "--topic", t), rf"^Error: topic '{t}' does not exist$")
    soft_done()


# ====================================================================== console-producer


def test_console_producer_keys_partitions_codecs(broker_factory, kavka_bin):
    b = broker_factory(**{"auto.create.topics.enable": "false"})
    bs = ("--bootstrap-server", b.bootstrap)
    admin = ck_admin(b)
    t, ref = "readings", "readings-ref"
    for name in (t, ref):
        admin.create_topics([NewTopic(name, 3, 1)])[name].result(20)

    rooms = ["kitchen", "bedroom", "hall", "garage", "attic", "cellar", "office", "bath"]
    readings = [(rooms[i % len(rooms)], f"{18 + i * 0.5:.1f}") for i in range(40)]
    stdin = "".join(f"{k}:{v}\n" for k, v in readings)
    r = ok(kavka(kavka_bin, "console-producer", *bs, "--topic", t, "--property", "parse.key=true",
                 "--property", "key.separator=:"))
    # (no stdin above: nothing produced, exit 0 at EOF)
    assert sum(end_offsets(conf_of(b), t, 3).values()) == 0, r
    ok(kavka(kavka_bin, "console-producer", *bs, "--topic", t, "--property", "parse.key=true",
             "--property", "key.separator=:", input=stdin))
    recs = [rec for p in range(3) for rec in ck_read_partition(b, t, p)]
    assert len(recs) == 40, recs
    by_key: dict[bytes, set] = {}
    for rec in recs:
        by_key.setdefault(rec.key, set()).add(rec.partition)
    assert set(by_key) == {k.encode() for k in rooms}, by_key
    for key, parts in by_key.items():
        assert len(parts) == 1, f"key {key!r} landed in partitions {parts}"
        assert parts == {java_murmur2_partition(key, 3)}, (key, parts)
    # the same partitions as the Java client's partitioner (librdkafka's murmur2_random)
    ref_parts = produce({**conf_of(b), "partitioner": "murmur2_random"}, ref,
                        [(k.encode(), b"x", None, None) for k in rooms])
    for k, (p, _) in zip(rooms, ref_parts):
        assert by_key[k.encode()] == {p}, f"key {k}: CLI partition {by_key[k.encode()]}, Java's {p}"
    # values, in order per key
    for k in rooms:
        got = [rec.value.decode() for rec in sorted(recs, key=lambda x: x.offset)
               if rec.key == k.encode()]
        assert got == [v for kk, v in readings if kk == k], (k, got)

    # default separator TAB with parse.key; without parse.key the whole line is the value
    t2 = "plain-lines"
    admin.create_topics([NewTopic(t2, 1, 1)])[t2].result(20)
    ok(kavka(kavka_bin, "console-producer", *bs, "--topic", t2, "--property", "parse.key=true",
             input="k1\tv1\nk2\tv2:with:colons\n"))
    ok(kavka(kavka_bin, "console-producer", *bs, "--topic", t2, input="no key\ta\tb\n"))
    got = [(rec.key, rec.value) for rec in ck_read_partition(b, t2, 0)]
    assert got == [(b"k1", b"v1"), (b"k2", b"v2:with:colons"), (None, b"no key\ta\tb")], got

    # codecs, acks, --sync, --producer-property
    t3 = "codecs"
    admin.create_topics([NewTopic(t3, 1, 1)])[t3].result(20)
    expected = []
    for codec, acks in (("gzip", "all"), ("snappy", "1"), ("lz4", "-1"), ("zstd", "0"),
                        ("none", "1")):
        lines = [f"{codec}-{acks}-{i}" for i in range(5)]
        extra = ["--sync"] if codec == "lz4" else []
        r = kavka(kavka_bin, "console-producer", *bs, "--topic", t3, "--compression-codec", codec,
                  "--request-required-acks", acks, "--producer-property", "linger.ms=5", *extra,
                  input="".join(x + "\n" for x in lines))
        if check(r.rc == 0, f"expected exit 0:\n{r!r}"):
            expected += lines
    got = [rec.value.decode() for rec in ck_read_partition(b, t3, 0)]
    assert got == expected, got

    # unknown topic with auto-creation off
    fails(kavka(kavka_bin, "console-producer", *bs, "--topic", "no-such-topic", input="x\n"))
    soft_done()


def test_producers_auto_create_topics_when_the_broker_does(broker, kavka_bin):
    """With auto.create.topics.enable=true (the default) an unknown topic is created by the first
    Metadata request of a producer, as for Kafka's console producer and perf test."""
    bs = ("--bootstrap-server", broker.bootstrap)
    r = kavka(kavka_bin, "console-producer", *bs, "--topic", "auto-console", input="x\ny\n")
    if check(r.rc == 0, f"console-producer did not auto-create its topic:\n{r!r}"):
        assert [x.value for x in ck_read_partition(broker, "auto-console", 0)] == [b"x", b"y"]
    r = kavka(kavka_bin, "perf", "produce", *bs, "--topic", "auto-perf", "--num-records", 50,
              "--record-size", 10, "--throughput", -1)
    if check(r.rc == 0, f"perf produce did not auto-create its topic:\n{r!r}"):
        assert PRODUCE_SUMMARY.match(r.lines[-1]), r
    soft_done()


# ====================================================================== console-consumer


def test_console_consumer(broker_factory, kavka_bin):
    b = broker_factory(**{"auto.create.topics.enable": "false", **FAST_GROUPS})
    bs = ("--bootstrap-server", b.bootstrap)
    t = "events"
    keep(ck_admin(b)).create_topics([NewTopic(t, 2, 1)])[t].result(20)
    t0 = (int(time.time()) - 600) * 1000
    recs = [(f"k{i}".encode(), f"v{i}".encode(), i % 2, t0 + i * 1000) for i in range(10)]
    produced = produce(conf_of(b), t, recs)
    meta = {rec[1].decode(): (rec[0].decode(), part, off, rec[3])
            for rec, (part, off) in zip(recs, produced)}

    # --from-beginning --max-messages: exactly N values
    r = ok(kavka(kavka_bin, "console-consumer", *bs, "--topic", t, "--from-beginning",
                 "--max-messages", 6, "--timeout-ms", 20000))
    assert len(r.lines) == 6 and set(r.lines) <= set(meta), r
    # everything, stopping on --timeout-ms with Kafka's summary on stderr
    r = ok(kavka(kavka_bin, "console-consumer", *bs, "--topic", t, "--from-beginning",
                 "--timeout-ms", 3000))
    assert sorted(r.lines) == sorted(meta), r
    assert "Processed a total of 10 messages" in r.err, r
    # print.* properties: CreateTime, Partition, Offset, key, value separated by TABs (the default
    # key.separator)
    every = ("--property", "print.timestamp=true", "--property", "print.partition=true",
             "--property", "print.offset=true", "--property", "print.key=true")
    r = ok(kavka(kavka_bin, "console-consumer", *bs, "--topic", t, "--from-beginning",
                 "--max-messages", 10, "--timeout-ms", 20000, *every))
    assert len(r.lines) == 10, r
    for line in r.lines:
        m = re.fullmatch(r"CreateTime:(\d+)\tPartition:(\d+)\tOffset:(\d+)\t([^\t]+)\t(\S+)", line)
        assert m, f"line not in the spec's layout: {line!r}"
        key, part, off, ts = meta[m[5]]
        assert (int(m[1]), int(m[2]), int(m[3]), m[4]) == (ts, part, off, key), line
    # another key.separator: as Kafka's DefaultMessageFormatter, it separates every printed column
    r = ok(kavka(kavka_bin, "console-consumer", *bs, "--topic", t, "--from-beginning",
                 "--max-messages", 10, "--timeout-ms", 20000, *every, "--property", "key.separator=|"))
    assert len(r.lines) == 10, r
    for line in r.lines:
        m = re.fullmatch(r"CreateTime:(\d+)\|Partition:(\d+)\|Offset:(\d+)\|([^|]+)\|(\S+)", line)
        assert m, f"line not in Kafka's layout with key.separator=|: {line!r}"
        key, part, off, ts = meta[m[5]]
        assert (int(m[1]), int(m[2]), int(m[3]), m[4]) == (ts, part, off, key), line
    # --partition / --offset
    p1 = sorted((off, v) for v, (_, part, off, _) in meta.items() if part == 1)
    r = ok(kavka(kavka_bin, "console-consumer", *bs, "--topic", t, "--partition", 1,
                 "--offset", 2, "--max-messages", 2, "--timeout-ms", 20000))
    assert r.lines == [v for off, v in p1 if off in (2, 3)], r
    r = ok(kavka(kavka_bin, "console-consumer", *bs, "--topic", t, "--partition", 1,
                 "--offset", "earliest", "--timeout-ms", 3000))
    assert r.lines == [v for _, v in p1], r
    r = ok(kavka(kavka_bin, "console-consumer", *bs, "--topic", t, "--partition", 1,
                 "--offset", "latest", "--timeout-ms", 2000))
    assert r.lines == [] and "Processed a total of 0 messages" in r.err, r
    # without --from-beginning and without a group: only new records (none arrive)
    r = ok(kavka(kavka_bin, "console-consumer", *bs, "--topic", t, "--timeout-ms", 2000))
    assert r.lines == [], r
    # without --group nothing is committed: no group appears
    groups = ok(kavka(kavka_bin, "consumer-groups", *bs, "--list")).lines
    assert groups == [], f"a consumer without --group left groups behind: {groups}"

    # --group: commits, and a second run continues after the committed offsets
    r1 = ok(kavka(kavka_bin, "console-consumer", *bs, "--topic", t, "--group", "billing",
                  "--from-beginning", "--timeout-ms", 4000))
    assert sorted(r1.lines) == sorted(meta), r1
    assert committed(conf_of(b), "billing", t, 2) == end_offsets(conf_of(b), t, 2)
    more = [(b"late", f"late{i}".encode(), i % 2, None) for i in range(4)]
    produce(conf_of(b), t, more)
    r2 = ok(kavka(kavka_bin, "console-consumer", *bs, "--topic", t, "--group", "billing",
                  "--from-beginning", "--timeout-ms", 4000))
    assert sorted(r2.lines) == [f"late{i}" for i in range(4)], r2
    # --max-messages with a group: the next run starts at the offsets committed by the first and
    # reads on from there; nothing printed twice
    pp = ("--property", "print.partition=true", "--property", "print.offset=true")
    r3 = ok(kavka(kavka_bin, "console-consumer", *bs, "--topic", t, "--group", "audit",
                  "--from-beginning", "--max-messages", 5, "--timeout-ms", 20000, *pp))
    after_r3 = committed(conf_of(b), "audit", t, 2)
    r4 = ok(kavka(kavka_bin, "console-consumer", *bs, "--topic", t, "--group", "audit",
                  "--from-beginning", "--timeout-ms", 4000, *pp))

    def positions(r):
        out = []
        for line in r.lines:
            m = re.fullmatch(r"Partition:(\d+)\tOffset:(\d+)\t(\S+)", line)
            assert m, f"line not in the spec's layout: {line!r}\n{r!r}"
            out.append((int(m[1]), int(m[2])))
        return out
    seen3, seen4 = positions(r3), positions(r4)
    assert len(seen3) == 5 and not set(seen3) & set(seen4), (r3, r4)
    ends = end_offsets(conf_of(b), t, 2)
    for p in (0, 1):
        printed = [o + 1 for q, o in seen3 if q == p]
        if printed:
            assert after_r3[p] >= max(printed), \
                f"partition {p}: committed {after_r3[p]} is before what the first run printed\n{r3!r}"
        start = after_r3[p] if after_r3[p] >= 0 else 0  # no commit: --from-beginning applies
        assert sorted(o for q, o in seen4 if q == p) == list(range(start, ends[p])), \
            f"partition {p}: the second run did not read on from the committed {after_r3[p]}\n{r4!r}"
    assert {"billing", "audit"} <= set(ok(kavka(kavka_bin, "consumer-groups", *bs, "--list")).lines)

    fails(kavka(kavka_bin, "console-consumer", *bs, "--topic", "no-such-topic", "--from-beginning",
                "--timeout-ms", 3000))
    soft_done()


# ====================================================================== consumer-groups


def test_consumer_groups_describe_reset_delete(broker_factory, kavka_bin):
    b = broker_factory(**{"auto.create.topics.enable": "false", **FAST_GROUPS})
    bs = ("--bootstrap-server", b.bootstrap)
    conf = conf_of(b)
    t, other = "payments", "refunds"
    admin = ck_admin(b)
    for name, n in ((t, 2), (other, 1)):
        admin.create_topics([NewTopic(name, n, 1)])[name].result(20)
    t0 = (int(time.time()) - 3600) * 1000
    # partition 0: 5 records at t0, t0+1s, ...; partition 1: 3 records at t0, t0+1s, t0+2s
    produce(conf, t, [(None, b"p0-%d" % i, 0, t0 + i * 1000) for i in range(5)]
            + [(None, b"p1-%d" % i, 1, t0 + i * 1000) for i in range(3)])
    produce(conf, other, [(None, b"o-%d" % i, 0, None) for i in range(4)])
    g = "ledger"
    commit(conf, g, t, {0: 2, 1: 3})
    commit(conf, g, other, {0: 1})

    # list and describe with lag
    assert g in ok(kavka(kavka_bin, "consumer-groups", *bs, "--list")).lines
    r = ok(kavka(kavka_bin, "consumer-groups", *bs, "--describe", "--group", g))
    assert r.lines[0] == f"Consumer group '{g}' has no active members.", r
    rows = group_rows(r)
    want = {(t, 0): ("2", "5", "3"), (t, 1): ("3", "3", "0"), (other, 0): ("1", "4", "3")}
    assert set(rows) == set(want), r
    for key, (cur, end, lag) in want.items():
        row = rows[key]
        assert row["GROUP"] == g and (row["CURRENT-OFFSET"], row["LOG-END-OFFSET"], row["LAG"]) \
            == (cur, end, lag), f"{key}: {row}\n{r!r}"
        assert (row["CONSUMER-ID"], row["HOST"], row["CLIENT-ID"]) == ("-", "-", "-"), row
    fails(kavka(kavka_bin, "consumer-groups", *bs, "--describe", "--group", "no-such-group"),
          r"^Error: consumer group 'no-such-group' does not exist$")

    def reset(*mode, execute=False, scope=("--topic", t)):
        r = ok(kavka(kavka_bin, "consumer-groups", *bs, "--reset-offsets", "--group", g, *scope,
                     *mode, "--execute" if execute else "--dry-run"))
        return reset_rows(r)

    def now():
        return committed(conf, g, t, 2)

    # dry run: printed, not committed
    assert reset("--to-earliest") == {(t, 0): 0, (t, 1): 0}
    assert now() == {0: 2, 1: 3}
    assert reset("--to-earliest", execute=True) == {(t, 0): 0, (t, 1): 0}
    assert now() == {0: 0, 1: 0}
    assert reset("--to-latest") == {(t, 0): 5, (t, 1): 3} and now() == {0: 0, 1: 0}
    assert reset("--to-latest", execute=True) == {(t, 0): 5, (t, 1): 3}
    assert now() == {0: 5, 1: 3}
    assert reset("--to-offset", 1) == {(t, 0): 1, (t, 1): 1} and now() == {0: 5, 1: 3}
    assert reset("--to-offset", 1, execute=True) == {(t, 0): 1, (t, 1): 1}
    assert now() == {0: 1, 1: 1}
    assert reset("--shift-by", 2) == {(t, 0): 3, (t, 1): 3} and now() == {0: 1, 1: 1}
    assert reset("--shift-by", 2, execute=True) == {(t, 0): 3, (t, 1): 3}
    assert now() == {0: 3, 1: 3}
    # shifting past either end is clamped to the log, as Kafka does
    assert reset("--shift-by", -10) == {(t, 0): 0, (t, 1): 0}
    assert reset("--shift-by", 10) == {(t, 0): 5, (t, 1): 3}
    when = datetime.fromtimestamp((t0 + 2000) / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000")
    assert reset("--to-datetime", when) == {(t, 0): 2, (t, 1): 2} and now() == {0: 3, 1: 3}
    assert reset("--to-datetime", when, execute=True) == {(t, 0): 2, (t, 1): 2}
    assert now() == {0: 2, 1: 2}
    # one partition only; all topics
    assert reset("--to-offset", 0, execute=True, scope=("--topic", f"{t}:1")) == {(t, 1): 0}
    assert now() == {0: 2, 1: 0}
    assert reset("--to-latest", scope=("--all-topics",)) == {(t, 0): 5, (t, 1): 3, (other, 0): 4}
    r = ok(kavka(kavka_bin, "consumer-groups", *bs, "--describe", "--group", g))
    rows = group_rows(r)
    assert [(rows[k]["CURRENT-OFFSET"], rows[k]["LAG"]) for k in ((t, 0), (t, 1), (other, 0))] \
        == [("2", "3"), ("0", "3"), ("1", "3")], r

    # a live member: --members, --state, and --execute refused while it is there
    live = "live-" + uuid.uuid4().hex[:4]
    proc = subprocess.Popen([str(kavka_bin), "console-consumer", *bs, "--topic", t, "--group", live,
                             "--from-beginning", "--timeout-ms", "15000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        def stable():
            r = ok(kavka(kavka_bin, "consumer-groups", *bs, "--describe", "--group", live, "--state"))
            rows = parse_table(r.out, ["GROUP", "COORDINATOR", "(ID)", "ASSIGNMENT-STRATEGY",
                                       "STATE", "#MEMBERS"])
            return r if rows and rows[0]["STATE"] == "Stable" and rows[0]["#MEMBERS"] == "1" else None
        wait_until("the console consumer's group Stable with one member", stable, timeout=20)
        r = ok(kavka(kavka_bin, "consumer-groups", *bs, "--describe", "--group", live, "--members"))
        members = parse_table(r.out, ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"])
        assert len(members) == 1 and members[0]["#PARTITIONS"] == "2", r
        r = ok(kavka(kavka_bin, "consumer-groups", *bs, "--describe", "--group", live))
        assert "has no active members" not in r.out, r
        rows = group_rows(r)
        assert {rows[(t, p)]["CONSUMER-ID"] for p in (0, 1)} == {members[0]["CONSUMER-ID"]}, r
        fails(kavka(kavka_bin, "consumer-groups", *bs, "--reset-offsets", "--group", live,
                    "--topic", t, "--to-earliest", "--execute"),
              # Kafka's wording (ResetOffsets refuses a group with members).
              r"can only be reset if the group '[^']+' is inactive, but the current state is "
              r"Stable \(1 members?\)")
        out, err = proc.communicate(timeout=40)
        assert proc.returncode == 0 and len([x for x in out.splitlines() if x]) == 8, (out, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    r = wait_until("the group empty after the consumer left",
                   lambda: (lambda r: r if "has no active members" in r.out else None)(
                       ok(kavka(kavka_bin, "consumer-groups", *bs, "--describe", "--group", live))),
                   timeout=20)
    rows = group_rows(r)
    assert [(rows[(t, p)]["CURRENT-OFFSET"], rows[(t, p)]["LAG"]) for p in (0, 1)] \
        == [("5", "0"), ("3", "0")], r

    # delete
    r = ok(kavka(kavka_bin, "consumer-groups", *bs, "--delete", "--group", g))
    assert r.lines == [f"Deletion of requested consumer groups ('{g}') was successful."], r
    assert g not in ok(kavka(kavka_bin, "consumer-groups", *bs, "--list")).lines
    fails(kavka(kavka_bin, "consumer-groups", *bs, "--describe", "--group", g),
          rf"^Error: consumer group '{g}' does not exist$")
    fails(kavka(kavka_bin, "consumer-groups", *bs, "--delete", "--group", g))
    soft_done()


# ====================================================================== configs


def test_configs_topics_and_brokers(broker_factory, kavka_bin):
    b = broker_factory()
    bs = ("--bootstrap-server", b.bootstrap)
    t = "conf-topic"
    keep(ck_admin(b)).create_topics([NewTopic(t, 1, 1, config={"retention.ms": "3600000"})])[t].result(20)
    ent = ("--entity-type", "topics", "--entity-name", t)

    r = ok(kavka(kavka_bin, "configs", *bs, *ent, "--describe"))
    assert r.lines[0] == f"Dynamic configs for topic {t} are:", r
    assert len(r.lines) == 2 and re.match(
        r"^  retention\.ms=3600000 sensitive=false synonyms=\{.*\}$", r.lines[1]), r
    r = ok(kavka(kavka_bin, "configs", *bs, *ent, "--alter",
                 "--add-config", "retention.ms=7200000,max.message.bytes=200000"))
    assert r.lines == [f"Completed updating config for topic {t}."], r
    res = ConfigResource(ConfigResource.Type.TOPIC, t)
    cfg = keep(ck_admin(b)).describe_configs([res])[res].result(20)
    assert (cfg["retention.ms"].value, cfg["max.message.bytes"].value) == ("7200000", "200000")
    r = ok(kavka(kavka_bin, "configs", *bs, *ent, "--describe"))
    assert sorted(ln.split()[0] for ln in r.lines[1:]) == ["max.message.bytes=200000",
                                                           "retention.ms=7200000"], r
    r = ok(kavka(kavka_bin, "configs", *bs, *ent, "--alter", "--delete-config", "retention.ms"))
    assert r.lines == [f"Completed updating config for topic {t}."], r
    r = ok(kavka(kavka_bin, "configs", *bs, *ent, "--describe"))
    assert [ln.split()[0] for ln in r.lines[1:]] == ["max.message.bytes=200000"], r
    r = ok(kavka(kavka_bin, "configs", *bs, *ent, "--describe", "--all"))
    assert r.lines[0] == f"All configs for topic {t} are:", r
    names = {ln.split("=")[0].strip() for ln in r.lines[1:]}
    assert {"cleanup.policy", "retention.ms", "segment.bytes", "max.message.bytes"} <= names, r
    assert any(re.match(r"^  cleanup\.policy=delete sensitive=false synonyms=\{.*\}$", ln)
               for ln in r.lines), r
    fails(kavka(kavka_bin, "configs", *bs, *ent, "--alter", "--add-config", "no.such.config=1"))
    fails(kavka(kavka_bin, "configs", *bs, *ent, "--alter", "--add-config", "retention.ms=soon"))
    fails(kavka(kavka_bin, "configs", *bs, "--entity-type", "topics", "--entity-name", "no-such-topic",
                "--describe"), r"no-such-topic")

    # brokers: one node, and the cluster-wide default
    bid = str(next(iter(ck_admin(b).list_topics(timeout=20).brokers)))
    bent = ("--entity-type", "brokers", "--entity-name", bid)
    r = ok(kavka(kavka_bin, "configs", *bs, *bent, "--alter", "--add-config", "log.cleaner.threads=2"))
    assert len(r.lines) == 1 and r.lines[0].startswith("Completed updating config for broker"), r
    r = ok(kavka(kavka_bin, "configs", *bs, *bent, "--describe"))
    assert re.match(r"^Dynamic configs for broker \S+ are:$", r.lines[0]), r
    assert any(re.match(r"^  log\.cleaner\.threads=2 sensitive=false synonyms=\{.*\}$", ln)
               for ln in r.lines), r
    r = ok(kavka(kavka_bin, "configs", *bs, "--entity-type", "brokers", "--entity-default", "--alter",
                 "--add-config", "log.retention.ms=86400000"))
    r = ok(kavka(kavka_bin, "configs", *bs, "--entity-type", "brokers", "--entity-default",
                 "--describe"))
    assert any(re.match(r"^  log\.retention\.ms=86400000 sensitive=false", ln) for ln in r.lines), r
    res = ConfigResource(ConfigResource.Type.BROKER, bid)
    cfg = keep(ck_admin(b)).describe_configs([res])[res].result(20)
    assert cfg["log.cleaner.threads"].value == "2" and cfg["log.retention.ms"].value == "86400000"
    r = ok(kavka(kavka_bin, "configs", *bs, *bent, "--alter", "--delete-config", "log.cleaner.threads"))
    r = ok(kavka(kavka_bin, "configs", *bs, *bent, "--describe"))
    assert not any("log.cleaner.threads=" in ln for ln in r.lines), r
    # not a dynamic broker key
    fails(kavka(kavka_bin, "configs", *bs, *bent, "--alter", "--add-config", "node.id=5"))
    soft_done()


# ====================================================================== cluster status (1 node)


def test_cluster_status_single_node(broker, kavka_bin):
    r = ok(kavka(kavka_bin, "cluster", "status", "--bootstrap-server", broker.bootstrap))
    cluster_id = keep(ck_admin(broker)).describe_cluster().result(20).cluster_id
    assert cluster_id and cluster_id in r.out, r
    assert broker.bootstrap in r.out, r
    assert "Under-replicated partitions: 0" in r.lines, r
    assert "Offline partitions: 0" in r.lines, r
    assert re.search(r"controller", r.out, re.I) and re.search(r"high.?watermark", r.out, re.I), r
    soft_done()


# ====================================================================== perf


PRODUCE_SUMMARY = re.compile(
    r"^(?P<n>\d+) records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), [\d.]+ ms avg latency, "
    r"[\d.]+ ms max latency, \d+ ms 50th, \d+ ms 95th, \d+ ms 99th, \d+ ms 99\.9th\.$")
CONSUME_HEADER = ["start.time", "end.time", "data.consumed.in.MB", "MB.sec",
                  "data.consumed.in.nMsg", "nMsg.sec"]


def consume_perf_line(r: Run) -> dict:
    header = [ln for ln in r.lines if ln.startswith("start.time")]
    assert len(header) == 1, r
    names = [x.strip() for x in header[0].split(",")]
    assert names[:6] == CONSUME_HEADER, r
    data = r.lines[r.lines.index(header[0]) + 1:]
    assert len(data) == 1, r
    return dict(zip(names, (x.strip() for x in data[0].split(","))))


def test_perf_produce_and_consume(broker_factory, kavka_bin, tmp_path):
    b = broker_factory(**FAST_GROUPS)
    bs = ("--bootstrap-server", b.bootstrap)
    t = "perf"
    keep(ck_admin(b)).create_topics([NewTopic(t, 2, 1)])[t].result(20)
    r = ok(kavka(kavka_bin, "perf", "produce", *bs, "--topic", t, "--num-records", 3000,
                 "--record-size", 100, "--throughput", -1,
                 "--producer-props", "acks=all", "compression.type=lz4", timeout=120))
    out_lines = [ln for ln in r.out.replace("\r", "\n").splitlines() if ln.strip()]
    summary = [ln for ln in out_lines if PRODUCE_SUMMARY.match(ln)]
    assert len(summary) == 1 and PRODUCE_SUMMARY.match(summary[0])["n"] == "3000", r
    assert out_lines[-1] == summary[0], f"the summary is not the last line:\n{r!r}"
    assert sum(end_offsets(conf_of(b), t, 2).values()) == 3000
    assert {len(x.value) for x in ck_read_partition(b, t, 0)[:50]} == {100}

    # --payload-file: records are lines of the file; --throughput limits the rate
    payload = tmp_path / "payload.txt"
    lines = ["alpha", "bravo-bravo", "charlie charlie charlie"]
    payload.write_text("\n".join(lines) + "\n")
    t2 = "perf-payload"
    keep(ck_admin(b)).create_topics([NewTopic(t2, 1, 1)])[t2].result(20)
    r = ok(kavka(kavka_bin, "perf", "produce", *bs, "--topic", t2, "--num-records", 600,
                 "--payload-file", payload, "--throughput", 300, timeout=120))
    assert PRODUCE_SUMMARY.match(r.lines[-1]) and r.lines[-1].startswith("600 records sent"), r
    assert r.elapsed >= 1.5, f"600 records at 300/s took only {r.elapsed:.2f}s"
    assert {x.value.decode() for x in ck_read_partition(b, t2, 0)} <= set(lines)
    fails(kavka(kavka_bin, "perf", "produce", *bs, "--topic", t2, "--num-records", 10,
                "--payload-file", tmp_path / "missing.txt", "--throughput", -1))

    # perf consume: the header and one line; --messages is an alias of --num-records
    r = ok(kavka(kavka_bin, "perf", "consume", *bs, "--topic", t, "--num-records", 3000,
                 "--timeout", 30000, timeout=90))
    row = consume_perf_line(r)
    assert int(row["data.consumed.in.nMsg"]) == 3000, r
    assert abs(float(row["data.consumed.in.MB"]) - 3000 * 100 / 1024 / 1024) < 0.01, r
    r = ok(kavka(kavka_bin, "perf", "consume", *bs, "--topic", t, "--messages", 1000,
                 "--group", "perf-g", timeout=90))
    assert int(consume_perf_line(r)["data.consumed.in.nMsg"]) == 1000, r
    soft_done()


# ====================================================================== errors: unreachable, bad files


UNREACHABLE_COMMANDS = [
    ("topics", "--list"),
    ("topics", "--create", "--topic", "x"),
    ("topics", "--describe"),
    ("console-producer", "--topic", "x"),
    ("console-consumer", "--topic", "x", "--from-beginning", "--timeout-ms", "3000"),
    ("consumer-groups", "--list"),
    ("consumer-groups", "--describe", "--group", "g"),
    ("configs", "--entity-type", "topics", "--entity-name", "x", "--describe"),
    ("acls", "--list"),
    ("users", "--describe"),
    ("cluster", "status"),
    ("perf", "produce", "--topic", "x", "--num-records", "10", "--record-size", "10",
     "--throughput", "-1"),
    ("perf", "consume", "--topic", "x", "--num-records", "10"),
]


def test_unreachable_bootstrap_server_for_every_subcommand(kavka_bin, tmp_path):
    def one(cmd):
        n = 2 if cmd[0] in ("cluster", "perf") else 1
        return kavka(kavka_bin, *cmd[:n], "--bootstrap-server", "127.0.0.1:1", *cmd[n:],
                     input="a\n", timeout=45)
    with ThreadPoolExecutor(len(UNREACHABLE_COMMANDS)) as pool:
        results = list(pool.map(one, UNREACHABLE_COMMANDS))
    problems = []
    for cmd, r in zip(UNREACHABLE_COMMANDS, results):
        try:
            fails(r, r"^Error: cannot reach any bootstrap server \(127\.0\.0\.1:1: ")
            assert r.elapsed < 20, f"took {r.elapsed:.1f}s"
        except AssertionError as e:
            problems.append(f"{' '.join(cmd)}: {e}")
    assert not problems, "\n\n".join(problems)
    soft_done()


def test_silent_server_honours_request_timeout(kavka_bin, tmp_path):
    """A server that accepts TCP connections but never answers: the command gives up after
    request.timeout.ms of its property file (2 s here), and after the 10 s default without it."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    port = srv.getsockname()[1]
    cfg = props(tmp_path / "fast.properties", **{"request.timeout.ms": "2000"})
    try:
        with ThreadPoolExecutor(3) as pool:
            fast = pool.submit(kavka, kavka_bin, "topics", "--bootstrap-server", f"127.0.0.1:{port}",
                               "--list", "--command-config", cfg, timeout=40)
            fast_c = pool.submit(kavka, kavka_bin, "console-consumer", "--bootstrap-server",
                                 f"127.0.0.1:{port}", "--topic", "x", "--consumer.config", cfg,
                                 timeout=40)
            default = pool.submit(kavka, kavka_bin, "consumer-groups", "--bootstrap-server",
                                  f"127.0.0.1:{port}", "--list", timeout=40)
            fast, fast_c, default = fast.result(), fast_c.result(), default.result()
    finally:
        srv.close()
    for r in (fast, fast_c):
        fails(r)
        assert r.elapsed < 8, f"request.timeout.ms=2000 not honoured:\n{r!r}"
    fails(default)
    assert 5 <= default.elapsed < 20, f"the default timeout is 10 s:\n{default!r}"
    soft_done()


def test_bad_property_files(broker, kavka_bin, tmp_path, kavka_certs_dir):
    bs = ("--bootstrap-server", broker.bootstrap)
    missing = tmp_path / "missing.properties"
    bad_protocol = props(tmp_path / "bad-protocol.properties", **{"security.protocol": "TLS_PLEASE"})
    bad_mech = props(tmp_path / "bad-mechanism.properties", **{
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "GSSAPI-NOPE",
        "sasl.jaas.config": 'org.apache.kafka.common.security.plain.PlainLoginModule required '
                            'username="a" password="b";'})
    good = (kavka_certs_dir / "app-client-ssl.properties").read_text()
    wrong_pw = tmp_path / "wrong-keystore-password.properties"
    wrong_pw.write_text(re.sub(r"(?m)^ssl\.keystore\.password=.*$", "ssl.keystore.password=wrong-pw",
                               re.sub(r"(?m)^ssl\.key\.password=.*$", "ssl.key.password=wrong-pw", good)))
    missing_store = tmp_path / "missing-keystore.properties"
    missing_store.write_text(re.sub(r"(?m)^ssl\.keystore\.location=.*$",
                                    f"ssl.keystore.location={tmp_path / 'nope.p12'}", good))
    cases = [
        (("topics", *bs, "--list", "--command-config"), ""),
        (("console-producer", *bs, "--topic", "x", "--producer.config"), "a\n"),
        (("console-consumer", *bs, "--topic", "x", "--timeout-ms", "2000", "--consumer.config"), ""),
        (("consumer-groups", *bs, "--list", "--command-config"), ""),
        (("perf", "produce", *bs, "--topic", "x", "--num-records", "1", "--record-size", "1",
          "--throughput", "-1", "--producer.config"), ""),
        (("perf", "consume", *bs, "--topic", "x", "--num-records", "1", "--consumer.config"), ""),
    ]
    malformed = tmp_path / "malformed.properties"
    malformed.write_text("client.id=\\u12\n")  # a broken \\uxxxx escape
    bad_jaas = props(tmp_path / "bad-jaas.properties", **{
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.jaas.config": "x"})
    bad_timeout = props(tmp_path / "bad-timeout.properties", **{"request.timeout.ms": "soon"})
    # the spec's cases name the file; an unknown mechanism or a missing key store: one Error line
    files = ((missing, True), (bad_protocol, True), (wrong_pw, True), (malformed, True),
             (bad_jaas, True), (bad_timeout, True), (bad_mech, False), (missing_store, False))
    jobs = [(base, stdin, f, named) for base, stdin in cases for f, named in files]

    def one(job):
        base, stdin, f, named = job
        r = kavka(kavka_bin, *base, f, input=stdin, timeout=30)
        try:
            fails(r, "^Error: " + re.escape(str(f)) + ": " if named else None)
            assert r.elapsed < 10, f"took {r.elapsed:.1f}s"
        except AssertionError as e:
            return f"{f.name} with {' '.join(base[:2])}: {e}"
        return None
    with ThreadPoolExecutor(6) as pool:
        problems = [p for p in pool.map(one, jobs) if p]
    assert not problems, "\n\n".join(problems)
    # nothing secret in the message
    r = kavka(kavka_bin, "topics", *bs, "--list", "--command-config", wrong_pw)
    assert "wrong-pw" not in r.err, r
    soft_done()


@pytest.fixture
def kavka_certs_dir(kavka_bin, tmp_path) -> Path:
    d = tmp_path / "certs"
    kavka_certs(kavka_bin, d, "ca")
    kavka_certs(kavka_bin, d, "node", "--name", "n1", "--ip", "127.0.0.1", "--dns", "localhost")
    kavka_certs(kavka_bin, d, "client", "--name", "app")
    return d


# ====================================================================== SSL with `kavka certs` files


def test_ssl_with_kavka_certs_property_files(broker_factory, kavka_bin, kavka_certs_dir, tmp_path):
    d = kavka_certs_dir
    port = free_port()
    b = broker_factory(port=port, **{"listeners": f"SSL://127.0.0.1:{port}",
                                     "ssl.client.auth": "required",
                                     **node_store_settings(d, "n1"), **FAST_GROUPS})
    bs = ("--bootstrap-server", b.bootstrap)
    client = d / "app-client-ssl.properties"
    assert client.exists()
    t = "secure"
    r = ok(kavka(kavka_bin, "topics", *bs, "--command-config", client, "--create", "--topic", t,
                 "--partitions", 2))
    assert r.lines == [f"Created topic {t}."], r
    ok(kavka(kavka_bin, "console-producer", *bs, "--producer.config", client, "--topic", t,
             "--property", "parse.key=true", "--property", "key.separator=:",
             input="a:1\nb:2\nc:3\n"))
    r = ok(kavka(kavka_bin, "console-consumer", *bs, "--consumer.config", client, "--topic", t,
                 "--from-beginning", "--group", "tls-g", "--max-messages", 3, "--timeout-ms", 20000,
                 "--property", "print.key=true"))
    assert sorted(r.lines) == ["a\t1", "b\t2", "c\t3"], r
    r = ok(kavka(kavka_bin, "consumer-groups", *bs, "--command-config", client, "--describe",
                 "--group", "tls-g"))
    assert {row["LAG"] for row in group_rows(r).values()} == {"0"}, r
    r = ok(kavka(kavka_bin, "perf", "produce", *bs, "--topic", t, "--num-records", 100,
                 "--record-size", 10, "--throughput", -1, "--producer.config", client))
    assert r.lines[-1].startswith("100 records sent"), r
    ok(kavka(kavka_bin, "cluster", "status", *bs, "--command-config", client))
    # the TLS listener refuses a client without a certificate, and one that speaks plaintext
    no_cert = tmp_path / "no-cert.properties"
    no_cert.write_text("".join(ln + "\n" for ln in client.read_text().splitlines()
                               if not ln.startswith(("ssl.keystore", "ssl.key."))))
    r = kavka(kavka_bin, "topics", *bs, "--command-config", no_cert, "--list", timeout=40)
    fails(r)
    assert r.elapsed < 20, r
    r = kavka(kavka_bin, "topics", *bs, "--list", timeout=40)
    fails(r)
    assert r.elapsed < 20, r
    soft_done()


# ====================================================================== SASL + ACLs + users

USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
PLAIN_JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
              + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")


def sasl_props(path: Path, user: str, password: str, mechanism: str = "PLAIN") -> Path:
    module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if mechanism == "PLAIN"
              else "org.apache.kafka.common.security.scram.ScramLoginModule")
    return props(path, **{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
                          "sasl.jaas.config":
                              f'{module} required username="{user}" password="{password}";'})


def test_acls_and_users_with_sasl_command_config(broker_factory, kavka_bin, tmp_path):
    ports = {"SASLPLAIN": free_port(), "INTERNAL": free_port(), "CONTROLLER": free_port()}
    data = tmp_path / "sasl-data"
    data.mkdir()
    (data / "meta.properties").write_text("version=1\ncluster.id=kavkaCliSaslAcl000001\nnode.id=1\n")
    conf = {
        "process.roles": "broker,controller", "node.id": "1", "log.dirs": str(data),
        "listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in ports.items()),
        "advertised.listeners": f"SASLPLAIN://127.0.0.1:{ports['SASLPLAIN']},"
                                f"INTERNAL://127.0.0.1:{ports['INTERNAL']}",
        "listener.security.protocol.map":
            "SASLPLAIN:SASL_PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL", "controller.listener.names": "CONTROLLER",
        "controller.quorum.voters": f"1@127.0.0.1:{ports['CONTROLLER']}",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.saslplain.plain.sasl.jaas.config": PLAIN_JAAS,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        # the node reaches itself over the PLAINTEXT listeners as User:ANONYMOUS
        "super.users": "User:admin;User:ANONYMOUS",
        "offsets.topic.replication.factor": "1",
        "auto.create.topics.enable": "false",
        **FAST_GROUPS,
    }
    b = broker_factory(port=ports["SASLPLAIN"], set_listener_and_dirs=False, **conf)
    bs = ("--bootstrap-server", b.bootstrap)
    admin = sasl_props(tmp_path / "admin.properties", "admin", "admin-secret")
    alice = sasl_props(tmp_path / "alice.properties", "alice", "alice-secret")
    wrong = sasl_props(tmp_path / "wrong.properties", "alice", "not-her-password")
    A = ("--command-config", admin)
    t = "temperature"

    ok(kavka(kavka_bin, "topics", *bs, *A, "--create", "--topic", t, "--partitions", 2))
    ok(kavka(kavka_bin, "topics", *bs, *A, "--create", "--topic", "secret-plans"))
    ok(kavka(kavka_bin, "console-producer", *bs, "--producer.config", admin, "--topic", t,
             input="a\nb\nc\n"))
    # a wrong password: one Error line, quickly, without the password
    r = kavka(kavka_bin, "topics", *bs, "--command-config", wrong, "--list", timeout=40)
    fails(r, r"(?i)auth")
    assert r.elapsed < 20 and "not-her-password" not in r.err, r

    # acls --add / --list
    ok(kavka(kavka_bin, "acls", *bs, *A, "--add", "--allow-principal", "User:alice",
             "--operation", "Read", "--operation", "Describe", "--topic", t))
    ok(kavka(kavka_bin, "acls", *bs, *A, "--add", "--allow-principal", "User:alice",
             "--operation", "Read", "--group", "app"))
    r = ok(kavka(kavka_bin, "acls", *bs, *A, "--list", "--topic", t))
    head = (f"Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name={t}, "
            f"patternType=LITERAL)`:")
    assert [ln.rstrip() for ln in r.lines if not ln.startswith("\t")] == [head], r
    assert sorted(ln for ln in r.lines if ln.startswith("\t")) == sorted([
        "\t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)",
        "\t(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW)"]), r
    r = ok(kavka(kavka_bin, "acls", *bs, *A, "--list"))
    assert "resourceType=GROUP, name=app, patternType=LITERAL" in r.out and head in r.out, r
    ck = AdminClient({"bootstrap.servers": b.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                      "sasl.mechanism": "PLAIN", "sasl.username": "admin",
                      "sasl.password": "admin-secret"})
    from confluent_kafka.admin import (AclBindingFilter, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    bindings = ck.describe_acls(AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
        AclPermissionType.ANY)).result(20)
    assert len(bindings) == 3, bindings

    # alice reads with her group, cannot write, cannot see or manage ACLs
    wait_until("alice's ACLs in force", lambda: ok(kavka(
        kavka_bin, "topics", *bs, "--command-config", alice, "--list")).lines == [t], timeout=15)
    r = ok(kavka(kavka_bin, "console-consumer", *bs, "--consumer.config", alice, "--topic", t,
                 "--group", "app", "--from-beginning", "--max-messages", 3, "--timeout-ms", 20000))
    assert sorted(r.lines) == ["a", "b", "c"], r
    fails(kavka(kavka_bin, "console-producer", *bs, "--producer.config", alice, "--topic", t,
                input="forged\n"), r"(?i)authoriz")
    fails(kavka(kavka_bin, "acls", *bs, "--command-config", alice, "--list"), r"(?i)authoriz")
    r = ok(kavka(kavka_bin, "topics", *bs, "--command-config", alice, "--list"))
    assert r.lines == [t], f"alice sees only the topic she may describe:\n{r!r}"

    # deny, prefixed patterns, hosts, the cluster resource
    ok(kavka(kavka_bin, "acls", *bs, *A, "--add", "--deny-principal", "User:alice", "--deny-host",
             "*", "--operation", "Read", "--topic", "temp", "--resource-pattern-type", "prefixed"))
    r = ok(kavka(kavka_bin, "acls", *bs, *A, "--list", "--topic", "temp",
                 "--resource-pattern-type", "prefixed"))
    assert "ResourcePattern(resourceType=TOPIC, name=temp, patternType=PREFIXED)" in r.out, r
    assert "\t(principal=User:alice, host=*, operation=READ, permissionType=DENY)" in r.lines, r
    r = wait_until("the DENY in force", lambda: (lambda r: r if r.rc != 0 else None)(kavka(
        kavka_bin, "console-consumer", *bs, "--consumer.config", alice, "--topic", t,
        "--partition", 0, "--offset", "earliest", "--timeout-ms", 5000)), timeout=20)
    fails(r, r"(?i)authoriz")
    ok(kavka(kavka_bin, "acls", *bs, *A, "--add", "--allow-principal", "User:bob", "--allow-host",
             "127.0.0.1", "--operation", "Describe", "--cluster"))
    r = ok(kavka(kavka_bin, "acls", *bs, *A, "--list", "--cluster"))
    assert "resourceType=CLUSTER, name=kafka-cluster, patternType=LITERAL" in r.out, r
    assert "\t(principal=User:bob, host=127.0.0.1, operation=DESCRIBE, permissionType=ALLOW)" \
        in r.lines, r
    ok(kavka(kavka_bin, "acls", *bs, *A, "--add", "--allow-principal", "User:bob",
             "--operation", "Write", "--transactional-id", "tx-1"))
    r = ok(kavka(kavka_bin, "acls", *bs, *A, "--list", "--transactional-id", "tx-1"))
    assert "resourceType=TRANSACTIONAL_ID, name=tx-1, patternType=LITERAL" in r.out, r

    # --remove
    ok(kavka(kavka_bin, "acls", *bs, *A, "--remove", "--force", "--deny-principal", "User:alice",
             "--deny-host", "*", "--operation", "Read", "--topic", "temp",
             "--resource-pattern-type", "prefixed"))
    ok(kavka(kavka_bin, "acls", *bs, *A, "--remove", "--force", "--allow-principal", "User:alice",
             "--operation", "Describe", "--topic", t))
    r = ok(kavka(kavka_bin, "acls", *bs, *A, "--list", "--topic", t))
    assert [ln for ln in r.lines if ln.startswith("\t")] == [
        "\t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)"], r
    r = ok(kavka(kavka_bin, "acls", *bs, *A, "--list", "--topic", "temp",
                 "--resource-pattern-type", "prefixed"))
    assert "permissionType=DENY" not in r.out, r

    # users: SCRAM credentials
    r = ok(kavka(kavka_bin, "users", *bs, *A, "--alter", "--entity-name", "carol", "--add-config",
                 "SCRAM-SHA-512=[password=carol-512],SCRAM-SHA-256=[iterations=8192,password=carol-256]"))
    r = ok(kavka(kavka_bin, "users", *bs, *A, "--describe", "--entity-name", "carol"))
    line = [ln for ln in r.lines if ln.startswith("SCRAM credential configs for user-principal 'carol' are ")]
    assert len(line) == 1, r
    assert "SCRAM-SHA-512=iterations=4096" in line[0] and "SCRAM-SHA-256=iterations=8192" in line[0], r
    r = ok(kavka(kavka_bin, "users", *bs, *A, "--describe"))
    assert "user-principal 'carol'" in r.out, r
    carol512 = sasl_props(tmp_path / "carol512.properties", "carol", "carol-512", "SCRAM-SHA-512")
    carol256 = sasl_props(tmp_path / "carol256.properties", "carol", "carol-256", "SCRAM-SHA-256")
    wait_until("carol's SCRAM-SHA-512 login", lambda: kavka(
        kavka_bin, "topics", *bs, "--command-config", carol512, "--list").rc == 0, timeout=15)
    ok(kavka(kavka_bin, "topics", *bs, "--command-config", carol512, "--list"))
    ok(kavka(kavka_bin, "topics", *bs, "--command-config", carol256, "--list"))
    ok(kavka(kavka_bin, "users", *bs, *A, "--alter", "--entity-name", "carol",
             "--delete-config", "SCRAM-SHA-512"))
    r = ok(kavka(kavka_bin, "users", *bs, *A, "--describe", "--entity-name", "carol"))
    assert "SCRAM-SHA-512" not in r.out and "SCRAM-SHA-256=iterations=8192" in r.out, r
    r = wait_until("carol's SCRAM-SHA-512 login refused", lambda: (lambda r: r if r.rc != 0 else None)(
        kavka(kavka_bin, "topics", *bs, "--command-config", carol512, "--list", timeout=40)),
        timeout=20)
    fails(r, r"(?i)auth")
    assert "carol-512" not in r.err, r
    # iterations below 4096 are refused
    fails(kavka(kavka_bin, "users", *bs, *A, "--alter", "--entity-name", "dave", "--add-config",
                "SCRAM-SHA-256=[iterations=1000,password=x]"))
    # configs --entity-type users (Kafka's way to the same credentials)
    ok(kavka(kavka_bin, "configs", *bs, *A, "--entity-type", "users", "--entity-name", "erin",
             "--alter", "--add-config", "SCRAM-SHA-256=[password=erin-pw]"))
    erin = sasl_props(tmp_path / "erin.properties", "erin", "erin-pw", "SCRAM-SHA-256")
    wait_until("erin's SCRAM-SHA-256 login", lambda: kavka(
        kavka_bin, "topics", *bs, "--command-config", erin, "--list").rc == 0, timeout=15)
    soft_done()


def test_acls_without_authorizer(broker, kavka_bin):
    fails(kavka(kavka_bin, "acls", "--bootstrap-server", broker.bootstrap, "--list"),
          r"no authorizer is configured \(SECURITY_DISABLED\)")
    fails(kavka(kavka_bin, "acls", "--bootstrap-server", broker.bootstrap, "--add",
                "--allow-principal", "User:alice", "--operation", "Read", "--topic", "t"),
          r"SECURITY_DISABLED")
    soft_done()


# ====================================================================== THREE-NODE TESTS
# Everything below runs against one `kavka cluster up --nodes 3` (module scope), started by the
# first test that needs it and stopped when the module ends: keep these tests last in the file.


def free_port_block(count: int, controller_offset: int = 100) -> int:
    """A base port such that base..base+count-1 and base+offset.. are all free."""
    for _ in range(200):
        base = random.randrange(20000, 40000)
        ports = [base + i for i in range(count)] + [base + controller_offset + i for i in range(count)]
        socks = []
        try:
            for p in ports:
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError("no free port block")


class NodeLog:
    """Adapter so that kavka_fixtures' failure hook attaches a cluster node's log."""

    def __init__(self, name: str, path: Path):
        self.name, self.path = name, path

    def log_tail(self, max_chars: int = 20000) -> str:
        try:
            text = self.path.read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        return f"--- {self.name} ({self.path}) ---\n{text[-max_chars:]}"


class LocalCluster:
    def __init__(self, kavka_bin: Path, root: Path):
        self.bin = kavka_bin
        self.dir = root / "cluster"
        self.base = free_port_block(3)
        self.proc: subprocess.Popen | None = None
        self.restarted: dict[int, subprocess.Popen] = {}
        self.bootstrap = ""
        self.out = root / "cluster-up.out"
        self.err = root / "cluster-up.err"

    def port(self, node: int) -> int:
        return self.base + node - 1

    def start(self):
        self.proc = subprocess.Popen(
            [str(self.bin), "cluster", "up", "--nodes", "3", "--dir", str(self.dir),
             "--base-port", str(self.base)],
            stdout=open(self.out, "w"), stderr=open(self.err, "w"), stdin=subprocess.DEVNULL,
            env=cli_env())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            m = re.search(r"^bootstrap\.servers=(\S+)$", self.out.read_text(), re.M)
            if m:
                self.bootstrap = m[1]
                return
            assert self.proc.poll() is None, f"cluster up exited:\n{self.err.read_text()[-4000:]}"
            time.sleep(0.3)
        raise AssertionError(f"cluster up not ready in 120 s:\n{self.err.read_text()[-4000:]}")

    def pid(self, node: int) -> int:
        return int((self.dir / f"node-{node}" / "pid").read_text().strip())

    def kill9(self, node: int) -> None:
        pid = self.pid(node)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if "State:\tZ" in Path(f"/proc/{pid}/status").read_text():
                    break
            except OSError:
                break
            time.sleep(0.1)

    def restart(self, node: int) -> None:
        nd = self.dir / f"node-{node}"
        with open(nd / "kavka.log", "ab") as log:
            p = subprocess.Popen([str(self.bin), "broker", "--config", str(nd / "server.properties")],
                                 stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=cli_env())
        (nd / "pid").write_text(f"{p.pid}\n")
        self.restarted[node] = p
        wait_until(f"node {node} listening", lambda: port_accepts(self.port(node)), timeout=60)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for p in self.restarted.values():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def logs(self) -> list[NodeLog]:
        return [NodeLog(f"node-{i}", self.dir / f"node-{i}" / "kavka.log") for i in (1, 2, 3)] \
            + [NodeLog("cluster-up stderr", self.err)]


@pytest.fixture(scope="module")
def cluster3(kavka_bin, tmp_path_factory):
    c = LocalCluster(kavka_bin, tmp_path_factory.mktemp("cli-cluster3"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def cluster3_logs(request, cluster3):
    setattr(request.node, "_kavka_brokers", cluster3.logs())
    return cluster3


def describe(kavka_bin, bootstrap, *extra) -> Run:
    return ok(kavka(kavka_bin, "topics", "--bootstrap-server", bootstrap, "--describe", *extra))


def test_cluster3_describe_failover_and_status(cluster3_logs, kavka_bin):
    c = cluster3_logs
    bs = ("--bootstrap-server", c.bootstrap)
    t, solo = "temperature", "solo"
    r = ok(kavka(kavka_bin, "topics", *bs, "--create", "--topic", t, "--partitions", 3,
                 "--replication-factor", 3))
    assert r.lines == [f"Created topic {t}."], r
    ok(kavka(kavka_bin, "topics", *bs, "--create", "--topic", solo, "--partitions", 3,
             "--replication-factor", 1))
    admin = AdminClient({"bootstrap.servers": c.bootstrap})

    def full():
        r = describe(kavka_bin, c.bootstrap, "--topic", t)
        parts = parse_partition_lines(r.out)
        return r if len(parts) == 3 and all(len(p["isr"]) == 3 for p in parts.values()) else None
    r = wait_until("every ISR full", full, timeout=30)
    lines = r.out.splitlines()
    m = header_re(t, 3, 3).match(lines[0])
    assert m, f"header line not in the spec's layout: {lines[0]!r}"
    parts = parse_partition_lines(r.out)
    assert sorted(p for _, p in parts) == [0, 1, 2], r
    md = admin.list_topics(t, timeout=20).topics[t].partitions
    for (_, p), d in parts.items():
        assert sorted(d["replicas"]) == [1, 2, 3] and sorted(d["isr"]) == [1, 2, 3], d["line"]
        assert d["leader"] == md[p].leader and d["replicas"] == list(md[p].replicas), \
            (d["line"], md[p])
        assert d["offline"] == [], d["line"]
    for flag in ("--under-replicated-partitions", "--unavailable-partitions"):
        assert describe(kavka_bin, c.bootstrap, flag).lines == [], flag

    r = ok(kavka(kavka_bin, "cluster", "status", *bs))
    cluster_id = admin.describe_cluster().result(20).cluster_id
    assert cluster_id in r.out, r
    for node in (1, 2, 3):
        assert f"127.0.0.1:{c.port(node)}" in r.out, r
    assert "Under-replicated partitions: 0" in r.lines and "Offline partitions: 0" in r.lines, r
    assert re.search(r"(?i)high.?watermark", r.out) and re.search(r"(?i)epoch", r.out), r
    assert re.search(r"(?i)voter", r.out) and re.search(r"(?i)lag", r.out), r

    # kill -9 the leader of temperature-0 (a node holding an RF1 partition of `solo` too)
    solo_parts = parse_partition_lines(describe(kavka_bin, c.bootstrap, "--topic", solo).out)
    hosts = {d["replicas"][0] for d in solo_parts.values()}
    p0 = next((p for p in range(3) if parts[(t, p)]["leader"] in hosts), None)
    assert p0 is not None, f"no leader of {t} holds a partition of {solo}: {solo_parts}"
    victim = parts[(t, p0)]["leader"]
    solo_victim = sorted(p for (_, p), d in solo_parts.items() if d["replicas"] == [victim])
    c.kill9(victim)
    try:
        check_failover(c, kavka_bin, t, solo, p0, victim, solo_victim)
    finally:
        if victim not in c.restarted:
            c.restart(victim)
        # the next test needs the whole cluster back
        wait_until("every ISR full after the restart", lambda: (
            describe(kavka_bin, c.bootstrap, "--under-replicated-partitions").lines == []
            and describe(kavka_bin, c.bootstrap, "--unavailable-partitions").lines == []),
            timeout=90)
    parts = parse_partition_lines(describe(kavka_bin, c.bootstrap, "--topic", t).out)
    assert all(sorted(d["isr"]) == [1, 2, 3] for d in parts.values()), parts
    r = ok(kavka(kavka_bin, "cluster", "status", *bs))
    assert "Under-replicated partitions: 0" in r.lines and "Offline partitions: 0" in r.lines, r
    soft_done()


def check_failover(c, kavka_bin, t, solo, p0, victim, solo_victim):
    """What describe and cluster status show while node `victim` is down."""
    bs = ("--bootstrap-server", c.bootstrap)

    def moved():
        parts = parse_partition_lines(describe(kavka_bin, c.bootstrap, "--topic", t).out)
        d = parts[(t, p0)]
        return parts if d["leader"] not in (None, victim) and victim not in d["isr"] else None
    parts = wait_until(f"a new leader for {t}-{p0} (node {victim} killed)", moved, timeout=60)
    assert all(victim not in d["isr"] for d in parts.values()), parts

    r = describe(kavka_bin, c.bootstrap, "--under-replicated-partitions")
    under = parse_partition_lines(r.out)
    assert {(t, 0), (t, 1), (t, 2)} <= set(under), r
    assert not [ln for ln in r.lines if not ln.startswith("\t")], f"topic lines printed:\n{r!r}"
    for key in ((t, 0), (t, 1), (t, 2)):
        check(under[key]["offline"] == [victim],
              f"expected an `Offline: {victim}` field: {under[key]['line']!r}")
    r = describe(kavka_bin, c.bootstrap, "--unavailable-partitions")
    unavailable = parse_partition_lines(r.out)
    assert sorted(unavailable) == [(solo, p) for p in solo_victim], r
    for d in unavailable.values():
        assert d["leader"] is None and "\tLeader: none\t" in d["line"], d["line"]
        check(d["offline"] == [victim], f"expected an `Offline: {victim}` field: {d['line']!r}")

    r = ok(kavka(kavka_bin, "cluster", "status", *bs))
    m_under = re.search(r"^Under-replicated partitions: (\d+)$", r.out, re.M)
    m_off = re.search(r"^Offline partitions: (\d+)$", r.out, re.M)
    assert m_under and m_off, r
    n_under = int(m_under[1])
    assert n_under >= 3 and int(m_off[1]) == len(solo_victim), r
    for p in range(3):
        assert re.search(rf"(?m)\b{t}-{p}\b", r.out), f"{t}-{p} not named:\n{r!r}"
    for p in solo_victim:
        assert re.search(rf"(?m)\b{solo}-{p}\b", r.out), f"{solo}-{p} not named:\n{r!r}"
    victim_lines = [ln for ln in r.lines if f"127.0.0.1:{c.port(victim)}" in ln]
    assert victim_lines and any(
        re.search(r"(?i)\bfenced\b", ln)
        and not re.search(r"(?i)(not|un)[ -]?fenced|fenced[=:]\s*(false|no)", ln)
        for ln in victim_lines), f"node {victim} not shown fenced:\n{r!r}"

    # restart it (the caller waits until every ISR is full again)
    c.restart(victim)


def test_cluster3_console_tools_and_group_lag(cluster3_logs, kavka_bin):
    """RF3 topic: produce with acks=all through the console producer, describe the group's lag after
    consuming part of it, then the rest."""
    c = cluster3_logs
    bs = ("--bootstrap-server", c.bootstrap)
    t = "metrics-rf3"
    ok(kavka(kavka_bin, "topics", *bs, "--create", "--topic", t, "--partitions", 3,
             "--replication-factor", 3, "--config", "min.insync.replicas=2"))
    r = describe(kavka_bin, c.bootstrap, "--topic", t)
    assert "min.insync.replicas=2" in header_re(t, 3, 3).match(r.out.splitlines()[0])["configs"], r
    keys = ["a", "b", "c", "d", "e", "f"]
    ok(kavka(kavka_bin, "console-producer", *bs, "--topic", t, "--request-required-acks", "all",
             "--property", "parse.key=true", "--property", "key.separator=:",
             input="".join(f"{keys[i % 6]}:{i}\n" for i in range(60))))
    ends = end_offsets({"bootstrap.servers": c.bootstrap}, t, 3)
    assert sum(ends.values()) == 60
    for k in keys:
        p = java_murmur2_partition(k.encode(), 3)
        assert ends[p] >= 10, (k, p, ends)
    r = ok(kavka(kavka_bin, "console-consumer", *bs, "--topic", t, "--group", "rf3-g",
                 "--from-beginning", "--timeout-ms", 10000))
    assert sorted(map(int, r.lines)) == list(range(60)), r
    r = ok(kavka(kavka_bin, "consumer-groups", *bs, "--describe", "--group", "rf3-g"))
    rows = group_rows(r)
    assert {p: (int(rows[(t, p)]["CURRENT-OFFSET"]), int(rows[(t, p)]["LOG-END-OFFSET"]),
                int(rows[(t, p)]["LAG"])) for p in range(3)} == {p: (e, e, 0) for p, e in ends.items()}, r
    ok(kavka(kavka_bin, "consumer-groups", *bs, "--reset-offsets", "--group", "rf3-g", "--topic", t,
             "--shift-by", -2, "--execute"))
    r = ok(kavka(kavka_bin, "consumer-groups", *bs, "--describe", "--group", "rf3-g"))
    assert {int(row["LAG"]) for row in group_rows(r).values()} == {2}, r
    r = ok(kavka(kavka_bin, "console-consumer", *bs, "--topic", t, "--group", "rf3-g",
                 "--timeout-ms", 10000))
    assert len(r.lines) == 6, r
    soft_done()
