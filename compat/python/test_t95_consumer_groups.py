"""Consumer groups over the classic rebalance protocol, driven by real clients (issue 3).

Group members that must be killable with SIGKILL run as separate Python processes (`Worker`): each
subscribes with confluent-kafka (librdkafka), reports its rebalance callbacks and the records it
processed as JSON lines on stdout, and takes commands ("close") on stdin. A member's ownership is
tracked from its own callbacks: for the eager protocol on_assign carries the full assignment and
on_revoke revokes everything; for cooperative-sticky both carry only the increment.

Brokers run with a short `group.initial.rebalance.delay.ms` so that a group forms quickly, and
members use short session/heartbeat intervals so that failure detection is observable in seconds.

The raw-protocol tests at the end (JoinGroup v5, SyncGroup v3, Heartbeat v3, LeaveGroup v3,
OffsetCommit v7) pin the error codes and state transitions of Kafka's ClassicGroup that clients only
show indirectly; test_group_records_land_in_kafkas_offsets_partition checks that group records land
in the `__consumer_offsets` partition Kafka would use (Utils.abs(groupId.hashCode()) % 50).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import (OFFSET_BEGINNING, Consumer, ConsumerGroupState, ConsumerGroupType,
                             KafkaError, KafkaException, TopicPartition)

import kafka
from kafka import TopicPartition as KpTopicPartition

from kclients import ck_admin, ck_create_topic, ck_produce, ck_producer, kp_admin
from rawkafka import Conn, Reader, kstring

SESSION_MS = 6000
HEARTBEAT_MS = 1000
# A rebalance that Kafka completes in well under a second on loopback may take several seconds on
# this shared 2-core machine; every wait below has this much slack on top of what Kafka needs.
SLACK_S = 20.0
FAST_GROUPS = {"group.initial.rebalance.delay.ms": "0"}


# ------------------------------------------------------------------------- member processes

WORKER_SRC = r'''
import json, os, queue, sys, threading, time
from confluent_kafka import Consumer, KafkaException

cfg = json.loads(sys.argv[1])
out_lock = threading.Lock()

def emit(ev, **kw):
    kw["ev"] = ev
    kw["t"] = time.time()
    line = json.dumps(kw)
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

# Callbacks carry increments for cooperative-sticky and for the KIP-848 consumer protocol.
cooperative = ("cooperative" in cfg["conf"].get("partition.assignment.strategy", "")
               or cfg["conf"].get("group.protocol") == "consumer")
owned = set()

def parts(ps):
    return sorted(p.partition for p in ps)

def on_assign(c, ps):
    global owned
    if cooperative:
        owned |= set(parts(ps))
    else:
        owned = set(parts(ps))
    emit("assign", parts=parts(ps), owned=sorted(owned), memberid=c.memberid())

def on_revoke(c, ps):
    global owned
    if cooperative:
        owned -= set(parts(ps))
    else:
        owned = set()
    emit("revoke", parts=parts(ps), owned=sorted(owned))

def on_lost(c, ps):
    global owned
    owned -= set(parts(ps))
    emit("lost", parts=parts(ps), owned=sorted(owned))

def on_error(err):
    emit("client_error", code=err.code(), name=err.name(), msg=err.str())

commands = queue.Queue()

def read_stdin():
    for line in sys.stdin:
        commands.put(line.strip())
    commands.put("eof")

threading.Thread(target=read_stdin, daemon=True).start()

conf = dict(cfg["conf"])
conf["error_cb"] = on_error
c = Consumer(conf)
c.subscribe([cfg["topic"]], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
emit("started", pid=os.getpid())
while True:
    try:
        cmd = commands.get_nowait()
    except queue.Empty:
        cmd = None
    if cmd in ("close", "eof"):
        emit("closing")
        c.close()
        emit("closed")
        sys.exit(0)
    m = c.poll(0.1)
    if m is None:
        continue
    if m.error():
        emit("poll_error", code=m.error().code(), name=m.error().name(), msg=m.error().str())
        continue
    # "Processing" a record is reporting it; the commit comes after, synchronously.
    emit("msg", p=m.partition(), o=m.offset(),
         v=m.value().decode() if m.value() is not None else None)
    if cfg.get("commit"):
        try:
            c.commit(message=m, asynchronous=False)
        except KafkaException as e:
            err = e.args[0]
            emit("commit_error", p=m.partition(), o=m.offset(), code=err.code(), name=err.name(),
                 msg=err.str())
'''


class Worker:
    """One group member in its own process (so that it can be SIGKILLed)."""

    def __init__(self, name: str, conf: dict, topic: str, logdir: Path, commit: bool = False):
        self.name = name
        self.events: list[dict] = []
        self._cv = threading.Condition()
        self.stderr_path = logdir / f"worker-{name}-{uuid.uuid4().hex[:6]}.stderr"
        self._errf = open(self.stderr_path, "wb")
        cfg = {"conf": conf, "topic": topic, "commit": commit}
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-c", WORKER_SRC, json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errf,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.started_at = time.monotonic()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                ev = json.loads(raw)
            except ValueError:
                ev = {"ev": "garbage", "line": raw.decode(errors="replace")}
            ev["mono"] = time.monotonic()
            with self._cv:
                self.events.append(ev)
                self._cv.notify_all()

    # -- state derived from the member's own reports
    def snapshot(self) -> list[dict]:
        with self._cv:
            return list(self.events)

    def owned(self) -> frozenset:
        for ev in reversed(self.snapshot()):
            if "owned" in ev:
                return frozenset(ev["owned"])
        return frozenset()

    def of_kind(self, *kinds: str, since: int = 0) -> list[dict]:
        return [e for e in self.snapshot()[since:] if e["ev"] in kinds]

    def rebalance_events(self, since: int = 0) -> list[dict]:
        return self.of_kind("assign", "revoke", "lost", since=since)

    def values(self) -> list[str]:
        return [e["v"] for e in self.of_kind("msg")]

    def mark(self) -> int:
        """An index into the event list: events after it happened after this call."""
        with self._cv:
            return len(self.events)

    # -- process control
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout: float = 30.0) -> int:
        """Ask the member to close() its consumer (LeaveGroup for a dynamic member)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"close\n")
        self.proc.stdin.flush()
        try:
            return self.proc.wait(timeout)
        finally:
            self._reader.join(5)

    def kill(self) -> None:
        """SIGKILL: no LeaveGroup, no commit; the broker only notices via the session timeout."""
        if self.alive():
            self.proc.kill()
        self.proc.wait()
        self._reader.join(5)

    def describe(self, tail_events: int = 8, stderr_chars: int = 1500) -> str:
        evs: list = []
        for e in self.snapshot():
            if e["ev"] == "msg":
                continue
            e = {k: v for k, v in e.items() if k not in ("t", "mono")}
            # A member retrying a failing request reports the same error many times.
            if evs and evs[-1][0] == e:
                evs[-1][1] += 1
            else:
                evs.append([e, 1])
        evs = [e if n == 1 else {**e, "repeated": n} for e, n in evs[-tail_events:]]
        try:
            err = self.stderr_path.read_text(errors="replace")[-stderr_chars:]
        except OSError:
            err = ""
        return (f"[{self.name} pid={self.proc.pid} alive={self.alive()} owned={sorted(self.owned())} "
                f"msgs={len(self.of_kind('msg'))}]\n  events: {evs}\n  stderr tail: {err!r}")


@pytest.fixture
def spawn(tmp_path):
    """Factory for Worker processes; any still running at the end of the test are SIGKILLed
    (only the processes this test started)."""
    made: list[Worker] = []

    def make(name: str, conf: dict, topic: str, commit: bool = False) -> Worker:
        w = Worker(name, conf, topic, tmp_path, commit=commit)
        made.append(w)
        return w

    yield make
    for w in made:
        if w.alive():
            w.kill()
        w._errf.close()


def member_conf(broker, group: str, name: str, **extra) -> dict:
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "client.id": name,
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": HEARTBEAT_MS,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "socket.timeout.ms": 20000,
        # The member's view of the protocol goes to its stderr file, shown when a wait fails.
        "debug": "cgrp",
    }
    conf.update(extra)
    # None removes a setting (e.g. debug=None for in-process consumers).
    return {k: v for k, v in conf.items() if v is not None}


def wait_until(pred, timeout: float, what: str, workers=()) -> float:
    """Poll `pred` until true; returns the seconds it took. On timeout fail with every member's
    recent reports."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic() - start
        time.sleep(0.1)
    state = "\n".join(w.describe() for w in workers)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{state}", pytrace=False)


def split_ok(workers, n_partitions: int, sizes) -> bool:
    """The members' own sets are disjoint, cover all partitions, and have the expected sizes."""
    sets = [w.owned() for w in workers]
    return (sorted(len(s) for s in sets) == sorted(sizes)
            and sum(len(s) for s in sets) == n_partitions
            and set().union(*sets) == set(range(n_partitions)))


def wait_split(workers, n_partitions: int, sizes, timeout: float, what: str = "") -> float:
    return wait_until(lambda: split_ok(workers, n_partitions, sizes), timeout,
                      f"partitions 0..{n_partitions - 1} split as {sorted(sizes)} {what}", workers)


# ------------------------------------------------------------------------- 1. split, join, kill

@pytest.mark.timeout(120)
def test_three_split_fourth_joins_killed_member_moves(broker_factory, topic, spawn):
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=6)
    group = "split-" + topic
    ws = [spawn(f"m{i}", member_conf(broker, group, f"m{i}"), topic) for i in range(3)]
    wait_split(ws, 6, [2, 2, 2], SLACK_S, "over three members")

    w4 = spawn("m3", member_conf(broker, group, "m3"), topic)
    wait_split(ws + [w4], 6, [1, 1, 2, 2], SLACK_S, "after a fourth member joined")

    victim = ws[1]
    victim_parts = victim.owned()
    survivors = [ws[0], ws[2], w4]
    victim.kill()
    took = wait_split(survivors, 6, [2, 2, 2], SESSION_MS / 1000 + SLACK_S,
                      "over the three survivors after one was SIGKILLed")
    # The killed member sent no LeaveGroup: Kafka keeps it until its session expires (counted from
    # its last heartbeat, at most one heartbeat interval before the kill).
    assert took >= (SESSION_MS - HEARTBEAT_MS) / 1000 - 0.5, (
        f"the killed member's partitions {sorted(victim_parts)} moved after {took:.1f}s, before "
        f"its session.timeout.ms={SESSION_MS} could have expired")


@pytest.mark.timeout(90)
def test_member_killed_as_rebalance_starts_is_dropped_at_its_session_timeout(broker_factory, topic,
                                                                              spawn):
    """A member that dies just as a rebalance starts never rejoins. Kafka keeps expiring heartbeats
    during PreparingRebalance, so the join completes once the dead member's session times out, not
    after the (much longer) rebalance timeout (librdkafka: max.poll.interval.ms, 300 s)."""
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=6)
    group = "midjoin-" + topic
    ws = [spawn(f"j{i}", member_conf(broker, group, f"j{i}"), topic) for i in range(3)]
    wait_split(ws, 6, [2, 2, 2], SLACK_S, "over three members")
    ws[0].kill()
    newcomer = spawn("j3", member_conf(broker, group, "j3"), topic)
    wait_split([ws[1], ws[2], newcomer], 6, [2, 2, 2], SESSION_MS / 1000 + SLACK_S,
                      "over the two survivors and the newcomer")


# ------------------------------------------------------------------------- 2. exactly once

@pytest.mark.timeout(120)
def test_exactly_once_with_sync_commits_and_clean_leave(broker_factory, topic, spawn):
    session_ms = 10000  # long, so that a rebalance caused by LeaveGroup is told apart from expiry
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=6)
    group = "eos-" + topic
    ws = [spawn(f"e{i}", member_conf(broker, group, f"e{i}", **{"session.timeout.ms": session_ms}),
                topic, commit=True) for i in range(3)]
    wait_split(ws, 6, [2, 2, 2], SLACK_S, "over three members")

    total = 1500
    ids = [f"id-{i:05d}" for i in range(total)]
    produced_upto = [0]
    producer_error: list[BaseException] = []

    def produce_all():
        try:
            p = ck_producer(broker, **{"linger.ms": 5})
            for start in range(0, total, 50):
                chunk = ids[start:start + 50]
                ck_produce(p, topic, [(v.encode(), v.encode(), None) for v in chunk])
                produced_upto[0] = start + len(chunk)
                time.sleep(0.1)  # ~3 s of production, spanning the leave below
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            producer_error.append(e)

    t = threading.Thread(target=produce_all, daemon=True)
    t.start()
    wait_until(lambda: sum(len(w.of_kind("msg")) for w in ws) >= 200, SLACK_S,
               "the group to consume the first records", ws)
    leaver = ws[0]
    assert leaver.close() == 0, leaver.describe()
    rest = ws[1:]
    took = wait_split(rest, 6, [3, 3], SLACK_S, "over the two remaining members")
    assert took < (session_ms - HEARTBEAT_MS) / 1000, (
        f"after a clean close() (LeaveGroup) the partitions moved only after {took:.1f}s: "
        f"like a session expiry (session.timeout.ms={session_ms}), not a leave")
    t.join(60)
    assert not producer_error, f"producer failed: {producer_error[0]!r}"
    assert produced_upto[0] == total

    def consumed():
        return [v for w in ws for v in w.values()]

    wait_until(lambda: set(consumed()) >= set(ids), SLACK_S,
               f"all {total} records to be consumed", ws)
    time.sleep(2)  # let any redelivery show up before counting
    got = consumed()
    dups = sorted({v for v in got if got.count(v) > 1})
    unknown = set(got) - set(ids)
    commit_errors = [e for w in ws for e in w.of_kind("commit_error")]
    assert not dups and not unknown, (
        f"{len(dups)} records consumed more than once (first {dups[:10]}), {len(unknown)} unknown; "
        f"commit errors seen by members: {commit_errors[:10]}\n"
        + "\n".join(w.describe() for w in ws))
    assert len(got) == total
    assert leaver.of_kind("msg") and all(w.of_kind("msg") for w in rest)


# ------------------------------------------------------------------------- 3. offsets survive restarts

def consume_in_group(broker, group: str, topic: str, count: int, timeout: float = 40.0):
    """Join `group`, process `count` records committing each synchronously, close (LeaveGroup).
    Returns [(partition, offset, value)]."""
    c = Consumer(member_conf(broker, group, "resumer", debug=None))
    got = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(m.error())
            got.append((m.partition(), m.offset(), m.value().decode()))
            c.commit(message=m, asynchronous=False)
        assert len(got) == count, f"consumed {len(got)} of {count} within {timeout:.0f}s"
    finally:
        c.close()
    return got


def committed_offsets(broker, group: str, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer(member_conf(broker, group, "reader", debug=None))
    try:
        return {t.partition: t.offset
                for t in c.committed([TopicPartition(topic, p) for p in range(partitions)],
                                     timeout=20)}
    finally:
        c.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_committed_offsets_survive_broker_restart(broker_factory, topic, how):
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=3)
    group = "restart-" + topic
    values = [f"r{i:03d}" for i in range(90)]
    ck_produce(ck_producer(broker), topic, [(v.encode(), v.encode(), None) for v in values])

    first = consume_in_group(broker, group, topic, 40)
    expect = {}
    for p, o, _ in first:
        expect[p] = max(expect.get(p, 0), o + 1)
    before = committed_offsets(broker, group, topic, 3)
    assert {p: o for p, o in before.items() if o >= 0} == expect

    if how == "sigterm":
        broker.restart()
    else:
        broker.kill9()
        broker.start()

    after = committed_offsets(broker, group, topic, 3)
    assert after == before, f"committed offsets changed across a {how} restart"
    second = consume_in_group(broker, group, topic, len(values) - len(first))
    first_seen: dict[int, int] = {}
    for p, o, _ in second:
        first_seen.setdefault(p, o)
    for p, o in first_seen.items():
        assert o == expect.get(p, 0), (
            f"after the {how} restart the group resumed partition {p} at offset {o}, "
            f"committed was {expect.get(p, 0)}")
    all_values = [v for _, _, v in first] + [v for _, _, v in second]
    assert sorted(all_values) == values, "records lost or consumed twice across the restart"

    # The group's commits after the restart land too, and survive a second crash.
    broker.kill9()
    broker.start()
    final = committed_offsets(broker, group, topic, 3)
    admin_consumer = Consumer(member_conf(broker, group + "-x", "wm", debug=None))
    try:
        ends = {p: admin_consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1]
                for p in range(3)}
    finally:
        admin_consumer.close()
    assert final == ends


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_group_membership_survives_broker_restart(broker_factory, topic, spawn, how):
    """Members, generation and assignment are in __consumer_offsets: after the coordinator restarts,
    the running members' heartbeats are accepted and nobody rebalances (Kafka reschedules the
    heartbeat expiry of every loaded member)."""
    # The members must reach the restarted broker before their own session runs out (librdkafka
    # then declares its partitions lost by itself): a longer session and a short reconnect backoff.
    session_ms = 10000
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=4)
    group = "survive-" + topic
    ws = [spawn(f"v{i}", member_conf(broker, group, f"v{i}", **{
        "session.timeout.ms": session_ms, "reconnect.backoff.max.ms": 500}), topic, commit=True)
        for i in range(2)]
    wait_split(ws, 4, [2, 2], SLACK_S, "over two members")
    marks = [w.mark() for w in ws]
    producer = ck_producer(broker)
    phase1 = [f"p1-{i:04d}" for i in range(200)]
    ck_produce(producer, topic, [(v.encode(), v.encode(), None) for v in phase1])

    def consumed():
        return [v for w in ws for v in w.values()]

    wait_until(lambda: set(consumed()) >= set(phase1), SLACK_S, "phase 1 to be consumed", ws)
    del producer  # not left reconnecting (and logging) while the broker is down
    if how == "sigterm":
        broker.stop()
    else:
        broker.kill9()
    time.sleep(1.5)
    broker.start()
    restarted = time.monotonic()
    producer = ck_producer(broker)
    phase2 = [f"p2-{i:04d}" for i in range(200)]
    ck_produce(producer, topic, [(v.encode(), v.encode(), None) for v in phase2])
    wait_until(lambda: set(consumed()) >= set(phase1 + phase2), SLACK_S,
               f"phase 2 to be consumed after the {how} restart", ws)
    # Past a full session timeout after the restart: loaded members must not expire either.
    time.sleep(max(0.0, restarted + session_ms / 1000 + 2 - time.monotonic()))
    for w, m in zip(ws, marks):
        assert not w.rebalance_events(since=m), (
            f"{w.name} was rebalanced by a {how} restart of the broker\n{w.describe()}")
    got = consumed()
    assert sorted(got) == sorted(phase1 + phase2), "records lost or consumed twice"


# ------------------------------------------------------------------------- 4. static membership

@pytest.mark.timeout(150)
def test_static_members_restart_without_rebalance(broker_factory, topic, spawn):
    session_ms = 10000
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=6)
    group = "static-" + topic

    def conf(i):
        return member_conf(broker, group, f"s{i}", **{"group.instance.id": f"instance-{i}",
                                                      "session.timeout.ms": session_ms})

    current = [spawn(f"s{i}", conf(i), topic) for i in range(3)]
    everyone = list(current)
    wait_split(current, 6, [2, 2, 2], SLACK_S, "over three static members")
    original = [w.owned() for w in current]
    # With no initial delay the group may form over several generations; only what happens after
    # the split counts.
    marks = {w.name: w.mark() for w in current}

    # Restart every member in turn (so the group leader is among them), each well within
    # session.timeout.ms: the new process takes over the instance's partitions, nobody rebalances.
    last_kill = time.monotonic()
    for i in range(3):
        old = current[i]
        old.kill()
        last_kill = time.monotonic()
        new = spawn(f"s{i}-restarted", conf(i), topic)
        marks[new.name] = 0
        everyone.append(new)
        current[i] = new
        wait_until(lambda: new.owned() == original[i], session_ms / 1000 - 1,
                   f"restarted instance-{i} to get {sorted(original[i])} back before its session "
                   "expired", current)
    # Wait past the session timeout of the replaced member ids: they must not expire into a
    # rebalance either.
    time.sleep(max(0.0, last_kill + session_ms / 1000 + 2 - time.monotonic()))
    for w in everyone:
        rb = w.rebalance_events(since=marks[w.name])
        expected = ["assign"] if w.name.endswith("-restarted") else []
        assert [e["ev"] for e in rb] == expected, (
            f"static member {w.name} saw a rebalance during restarts within the session "
            f"timeout: {[(e['ev'], e['parts']) for e in rb]}\n"
            + "\n".join(x.describe() for x in everyone))
    assert [w.owned() for w in current] == original

    # A static member that does not come back is removed when its session expires.
    gone = current[1]
    gone_parts = gone.owned()
    gone.kill()
    took = wait_split([current[0], current[2]], 6, [3, 3], session_ms / 1000 + SLACK_S,
                      "over the two static members left after one stayed down")
    assert took >= (session_ms - HEARTBEAT_MS) / 1000 - 0.5, (
        f"static member's partitions {sorted(gone_parts)} moved after {took:.1f}s, before its "
        f"session.timeout.ms={session_ms}")


@pytest.mark.timeout(120)
def test_batched_leave_group_removes_dead_static_members(broker_factory, topic, spawn):
    """kafka-python's admin remove_group_members: one LeaveGroup v3+ naming several
    group.instance.ids, so that dead static members go before their (long) session expires."""
    session_ms = 45000
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=6)
    group = "leave-" + topic
    ws = [spawn(f"b{i}", member_conf(broker, group, f"b{i}", **{
        "group.instance.id": f"inst-{i}", "session.timeout.ms": session_ms}), topic)
        for i in range(3)]
    wait_split(ws, 6, [2, 2, 2], SLACK_S, "over three static members")
    ws[0].kill()
    ws[1].kill()
    admin = kp_admin(broker)
    try:
        result = admin.remove_group_members(group, [
            kafka.admin.MemberToRemove(group_instance_id="inst-0"),
            kafka.admin.MemberToRemove(group_instance_id="inst-1"),
            kafka.admin.MemberToRemove(group_instance_id="no-such-instance"),
        ])
    finally:
        admin.close()
    errors = {k.group_instance_id if hasattr(k, "group_instance_id") else k: v.__name__
              for k, v in result.items()}
    assert errors == {"inst-0": "NoError", "inst-1": "NoError",
                      "no-such-instance": "UnknownMemberIdError"}, errors
    took = wait_split([ws[2]], 6, [6], SLACK_S, "on the one static member left")
    assert took < session_ms / 1000 - 5


@pytest.mark.timeout(90)
def test_second_process_with_same_instance_id_fences_the_first(broker_factory, topic, spawn):
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=4)
    group = "fence-" + topic
    conf = member_conf(broker, group, "f", **{"group.instance.id": "dup", "session.timeout.ms": 10000})
    first = spawn("first", conf, topic)
    wait_split([first], 4, [4], SLACK_S, "on the first static member")
    second = spawn("second", conf, topic)

    def fenced():
        return any(e.get("code") in (KafkaError.FENCED_INSTANCE_ID, KafkaError._FATAL)
                   and "fenced" in e.get("msg", "").lower()
                   for e in first.of_kind("poll_error", "client_error"))

    wait_until(lambda: second.owned() == {0, 1, 2, 3} and fenced(), SLACK_S,
               "the new process to take the instance over and the old one to be fenced "
               "(FENCED_INSTANCE_ID)", [first, second])
    assert [e["ev"] for e in second.rebalance_events()] == ["assign"]


# ------------------------------------------------------------------------- 5. cooperative-sticky

@pytest.mark.timeout(120)
def test_cooperative_sticky_keeps_unaffected_partitions(broker_factory, topic, spawn):
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=6)
    group = "coop-" + topic

    def start(i):
        return spawn(f"c{i}", member_conf(broker, group, f"c{i}", **{
            "partition.assignment.strategy": "cooperative-sticky"}), topic)

    ws = [start(0)]
    wait_split(ws, 6, [6], SLACK_S, "on the first member")

    for n in (2, 3):
        before = [w.owned() for w in ws]
        marks = [w.mark() for w in ws]
        ws.append(start(n - 1))
        wait_split(ws, 6, [6 // n] * n, SLACK_S, f"after member {n} joined")
        for w, had, m in zip(ws, before, marks):
            now = w.owned()
            revoked = {p for e in w.of_kind("revoke", "lost", since=m) for p in e["parts"]}
            assert now <= had, f"{w.name} gained {sorted(now - had)} while a member joined"
            assert revoked == had - now, (
                f"{w.name} had {sorted(had)}, kept {sorted(now)}, but revoked {sorted(revoked)}: "
                f"a cooperative rebalance revokes only the partitions that move\n{w.describe()}")
            assert not w.of_kind("lost", since=m)
        assert not [e for e in ws[-1].of_kind("revoke", "lost") if e["parts"]], ws[-1].describe()

    # A clean leave: the others only gain partitions.
    before = [w.owned() for w in ws]
    marks = [w.mark() for w in ws]
    assert ws[1].close() == 0
    rest = [ws[0], ws[2]]
    wait_split(rest, 6, [3, 3], SLACK_S, "after a member left")
    for w, had, m in zip([ws[0], ws[2]], [before[0], before[2]], [marks[0], marks[2]]):
        assert had <= w.owned()
        assert not [e for e in w.of_kind("revoke", "lost", since=m) if e["parts"]], w.describe()


@pytest.mark.timeout(90)
def test_cooperative_sticky_survivors_only_gain_when_a_member_dies(broker_factory, topic, spawn):
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=6)
    group = "coopkill-" + topic
    ws = [spawn(f"k{i}", member_conf(broker, group, f"k{i}", **{
        "partition.assignment.strategy": "cooperative-sticky"}), topic) for i in range(3)]
    wait_split(ws, 6, [2, 2, 2], SLACK_S, "over three cooperative members")
    before = [w.owned() for w in ws]
    marks = [w.mark() for w in ws]
    ws[0].kill()
    wait_split(ws[1:], 6, [3, 3], SESSION_MS / 1000 + SLACK_S, "over the two survivors")
    for w, had, m in zip(ws[1:], before[1:], marks[1:]):
        assert had <= w.owned(), f"{w.name} lost partitions: had {sorted(had)}, now {sorted(w.owned())}"
        assert not [e for e in w.of_kind("revoke", "lost", since=m) if e["parts"]], w.describe()


@pytest.mark.timeout(60)
def test_group_picks_the_protocol_every_member_supports(broker_factory, topic, spawn):
    """Members list assignors in order of preference; the coordinator picks one that all support."""
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=6)
    group = "proto-" + topic
    ws = [spawn("p0", member_conf(broker, group, "p0", **{
              "partition.assignment.strategy": "range,roundrobin"}), topic),
          spawn("p1", member_conf(broker, group, "p1", **{
              "partition.assignment.strategy": "roundrobin"}), topic)]
    wait_split(ws, 6, [3, 3], SLACK_S, "over two members")
    admin = ck_admin(broker)  # kept referenced until the future resolves
    d = admin.describe_consumer_groups([group])[group].result(20)
    assert d.partition_assignor == "roundrobin"
    # roundrobin over one topic deals partitions alternately: neither member holds a 3-run.
    assert all(sorted(w.owned()) not in ([0, 1, 2], [3, 4, 5]) for w in ws), [w.owned() for w in ws]


@pytest.mark.timeout(60)
def test_group_max_size_refuses_an_extra_member(broker_factory, topic, spawn):
    broker = broker_factory(**{"group.initial.rebalance.delay.ms": "0", "group.max.size": "2"})
    ck_create_topic(broker, topic, partitions=2)
    group = "full-" + topic
    ws = [spawn(f"f{i}", member_conf(broker, group, f"f{i}"), topic) for i in range(2)]
    wait_split(ws, 2, [1, 1], SLACK_S, "over two members")
    extra = spawn("f2", member_conf(broker, group, "f2"), topic)

    def refused():
        return any(e.get("code") == KafkaError.GROUP_MAX_SIZE_REACHED
                   for e in extra.of_kind("poll_error", "client_error"))

    wait_until(refused, SLACK_S, "GROUP_MAX_SIZE_REACHED for a third member", [extra])
    assert not extra.owned() and split_ok(ws, 2, [1, 1])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("visitor_first", [False, True], ids=["same-metadata", "owned-partitions"])
def test_cooperative_static_members_restart_without_rebalance(broker_factory, topic, spawn,
                                                               visitor_first):
    """Static cooperative-sticky members restarted in turn (so the group leader is among them) get
    their partitions back and nobody rebalances. A dynamic member joins and leaves first, so every
    static member's latest JoinGroup lists the partitions it owned, while its restarted process owns
    none: the subscription bytes differ, the selected protocol does not, and Kafka only rebalances
    on the latter. Below JoinGroup v9 Kafka also names the previous leader id to a rejoining static
    leader, so that it does not run the assignor (over an empty member list)."""
    session_ms = 10000
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=6)
    group = "coopstatic-" + topic

    def conf(i):
        return member_conf(broker, group, f"cs{i}", **{
            "group.instance.id": f"coop-instance-{i}", "session.timeout.ms": session_ms,
            "partition.assignment.strategy": "cooperative-sticky"})

    current = [spawn(f"cs{i}", conf(i), topic) for i in range(3)]
    wait_split(current, 6, [2, 2, 2], SLACK_S, "over three static cooperative members")
    if visitor_first:
        visitor = spawn("visitor", member_conf(broker, group, "visitor", **{
            "partition.assignment.strategy": "cooperative-sticky"}), topic)
        wait_split(current + [visitor], 6, [1, 1, 2, 2], SLACK_S, "with a dynamic visitor")
        assert visitor.close() == 0
        wait_split(current, 6, [2, 2, 2], SLACK_S, "after the visitor left")
    time.sleep(1)
    original = [w.owned() for w in current]
    marks = {w.name: w.mark() for w in current}
    everyone = list(current)
    for i in range(3):
        current[i].kill()
        new = spawn(f"cs{i}-restarted", conf(i), topic)
        marks[new.name] = 0
        everyone.append(new)
        current[i] = new
        wait_until(lambda: new.owned() == original[i] or not new.alive(), session_ms / 1000 - 1,
                   f"restarted coop-instance-{i} to get {sorted(original[i])} back", current)
        assert new.alive(), (
            f"the restarted coop-instance-{i} process died (exit {new.proc.returncode}) after "
            f"rejoining\n{new.describe(stderr_chars=800)}")
    time.sleep(2)
    for w in everyone:
        # librdkafka calls the cooperative callbacks (with empty lists) on every rebalance, so any
        # event here means the group went through a new generation.
        moved = [(e["ev"], e["parts"]) for e in w.rebalance_events(since=marks[w.name])]
        expected = [("assign", sorted(original[int(w.name[2])]))] if "restarted" in w.name else []
        assert moved == expected, (
            f"{w.name} saw {moved} while static members restarted\n"
            + "\n".join(x.describe() for x in everyone))


# ------------------------------------------------------------------------- 6. kafka-python group

@pytest.fixture
def kafka_python_coordinator_log(tmp_path):
    """kafka-python's group coordinator log (DEBUG) in a file, shown when a wait fails; the suite
    otherwise silences the `kafka` loggers."""
    import logging
    path = tmp_path / "kafka-python-coordinator.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s %(message)s"))
    loggers = [logging.getLogger(n) for n in ("kafka.coordinator", "kafka.consumer.group")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.addHandler(handler)
    yield path
    for lg, level in saved:
        lg.removeHandler(handler)
        lg.setLevel(level)
    handler.close()


@pytest.mark.timeout(120)
def test_kafka_python_group_splits_and_consumes_all(broker_factory, topic,
                                                     kafka_python_coordinator_log):
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=4)
    group = "kp-" + topic
    producer = ck_producer(broker)
    phase1 = [f"a{i:03d}" for i in range(100)]
    ck_produce(producer, topic, [(v.encode(), v.encode(), None) for v in phase1])

    stop = threading.Event()
    members = []

    class Member:
        def __init__(self, name):
            self.name = name
            self.records: list[tuple[int, int, str]] = []
            self.assignment: frozenset = frozenset()
            self.error: BaseException | None = None
            self.thread = threading.Thread(target=self.run, daemon=True, name=f"Thread-{name}")

        def run(self):
            try:
                c = kafka.KafkaConsumer(
                    bootstrap_servers=broker.bootstrap, group_id=group, client_id=self.name,
                    enable_auto_commit=False, auto_offset_reset="earliest",
                    session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
                    request_timeout_ms=30000)
                c.subscribe([topic])
                try:
                    while not stop.is_set():
                        # A long poll timeout on purpose: in kafka-python 3.0.12 a poll that times out
                        # while its JoinGroup is in flight leaves the heartbeat disabled once that join
                        # completes (join_group_async returns without _enable_heartbeat), so the member's
                        # session expires and it keeps fetching outside the group. poll() returns as soon
                        # as records arrive or a heartbeat is due, so this does not slow the test.
                        batch = c.poll(timeout_ms=10000)
                        for _tp, msgs in batch.items():
                            for m in msgs:
                                self.records.append((m.partition, m.offset, m.value.decode()))
                        if batch:
                            c.commit()
                        self.assignment = frozenset(tp.partition for tp in c.assignment())
                finally:
                    c.close()
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                self.error = e

        def owned(self):
            return self.assignment

        def describe(self):
            try:
                log = kafka_python_coordinator_log.read_text().splitlines()[-30:]
            except OSError:
                log = []
            return (f"[{self.name} assignment={sorted(self.assignment)} "
                    f"records={len(self.records)} error={self.error!r}]\n    "
                    + "\n    ".join(log))

    try:
        for i in range(2):
            members.append(Member(f"kp{i}"))
            members[-1].thread.start()
        wait_until(lambda: split_ok(members, 4, [2, 2]) or any(m.error for m in members),
                   SLACK_S + 10, "two kafka-python members to split 4 partitions", members)
        assert not any(m.error for m in members), [m.describe() for m in members]
        split = [m.assignment for m in members]
        mark = [len(m.records) for m in members]
        phase2 = [f"b{i:03d}" for i in range(100)]
        ck_produce(producer, topic, [(v.encode(), v.encode(), None) for v in phase2])
        everything = set(phase1 + phase2)
        wait_until(lambda: {r[2] for m in members for r in m.records} >= everything, SLACK_S,
                   "all records to be consumed by the kafka-python group", members)
        time.sleep(1)
    finally:
        stop.set()
        for m in members:
            m.thread.join(30)
    assert not any(m.error for m in members), [m.describe() for m in members]
    got = [r[2] for m in members for r in m.records]
    assert sorted(got) == sorted(everything), "records consumed twice or lost"
    for m, parts, k in zip(members, split, mark):
        late = m.records[k:]
        assert late, f"{m.name} consumed nothing after the split"
        assert {r[0] for r in late} <= parts, f"{m.name} read partitions outside {sorted(parts)}"


# ------------------------------------------------------------------------- 7. admin view

@pytest.mark.timeout(120)
def test_admin_describe_list_and_delete_non_empty(broker_factory, topic, spawn):
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=6)
    group = "adm-" + topic
    ws = [spawn(f"a{i}", member_conf(broker, group, f"a{i}", **(
        {"group.instance.id": "adm-static"} if i == 1 else {})), topic) for i in range(2)]
    wait_split(ws, 6, [3, 3], SLACK_S, "over two members")
    admin = ck_admin(broker)

    def describe():
        return admin.describe_consumer_groups([group])[group].result(20)

    wait_until(lambda: describe().state == ConsumerGroupState.STABLE, 10,
               "DescribeGroups to report Stable", ws)
    d = describe()
    assert d.group_id == group and not d.is_simple_consumer_group
    assert d.partition_assignor == "range"
    assert len(d.members) == 2
    by_client = {m.client_id: m for m in d.members}
    assert set(by_client) == {"a0", "a1"}
    for w in ws:
        m = by_client[w.name]
        assigned = {(t.topic, t.partition) for t in m.assignment.topic_partitions}
        assert assigned == {(topic, p) for p in w.owned()}, (w.name, assigned, w.owned())
        assert m.member_id == w.of_kind("assign")[-1]["memberid"]
    assert by_client["a1"].group_instance_id == "adm-static"
    assert by_client["a0"].group_instance_id in (None, "")

    listed = admin.list_consumer_groups().result(20).valid
    assert group in [g.group_id for g in listed]
    stable = admin.list_consumer_groups(states={ConsumerGroupState.STABLE}).result(20).valid
    assert group in [g.group_id for g in stable]
    empty = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(20).valid
    assert group not in [g.group_id for g in empty]
    # ListGroups v5 type filter (KIP-848): a classic group is listed as classic only.
    classic = admin.list_consumer_groups(types={ConsumerGroupType.CLASSIC}).result(20).valid
    assert [(g.group_id, g.type) for g in classic if g.group_id == group] == [
        (group, ConsumerGroupType.CLASSIC)]
    consumer = admin.list_consumer_groups(types={ConsumerGroupType.CONSUMER}).result(20).valid
    assert group not in [g.group_id for g in consumer]

    # kafka-python's view of the same group (DescribeGroups decoded by another client).
    kadmin = kp_admin(broker)
    try:
        kd = kadmin.describe_groups([group])[group]
        assert kd["error"] is None and kd["group_state"] == "Stable", kd
        assert kd["protocol_type"] == "consumer" and kd["protocol_data"] == "range", kd
        assert sorted(m["client_id"] for m in kd["members"]) == ["a0", "a1"], kd
    finally:
        kadmin.close()

    with pytest.raises(KafkaException) as e:
        admin.delete_consumer_groups([group])[group].result(20)
    assert e.value.args[0].code() == KafkaError.NON_EMPTY_GROUP

    # Once every member is gone the group is Empty and can be deleted. The static member does not
    # send LeaveGroup on close(), so it is removed by its session expiry.
    for w in ws:
        assert w.close() == 0
    wait_until(lambda: describe().state == ConsumerGroupState.EMPTY, SESSION_MS / 1000 + SLACK_S,
               "the group to become Empty after its members closed", ws)
    assert not describe().members
    admin.delete_consumer_groups([group])[group].result(20)
    assert group not in [g.group_id for g in admin.list_consumer_groups().result(20).valid]


@pytest.mark.timeout(90)
def test_offset_delete_refuses_topics_the_group_subscribes_to(broker_factory, topic, spawn):
    """OffsetDelete on a live consumer group: Kafka answers GROUP_SUBSCRIBED_TO_TOPIC for every
    partition of a topic the members subscribe to (from their subscription metadata) and deletes
    the offsets of other topics."""
    broker = broker_factory(**FAST_GROUPS)
    other = topic + "-other"
    ck_create_topic(broker, topic, partitions=1)
    ck_create_topic(broker, other, partitions=1)
    group = "odel-" + topic
    ck_produce(ck_producer(broker), topic, [(None, b"x", None)] * 5)
    # While the group is empty, a plain commit (generation -1) puts an offset on the other topic.
    c = Consumer(member_conf(broker, group, "simple", debug=None))
    try:
        c.commit(offsets=[TopicPartition(other, 0, 3)], asynchronous=False)
    finally:
        c.close()
    w = spawn("odel", member_conf(broker, group, "odel"), topic, commit=True)
    wait_split([w], 1, [1], SLACK_S, "on the only member")
    wait_until(lambda: len(w.of_kind("msg")) == 5, SLACK_S, "the member to consume", [w])
    admin = kp_admin(broker)
    try:
        res = admin.delete_group_offsets(group, [KpTopicPartition(topic, 0),
                                                 KpTopicPartition(other, 0)])
        got = {tp.topic: err.__name__ for tp, err in res.items()}
        assert got == {topic: "GroupSubscribedToTopicError", other: "NoError"}, got
        left = admin.list_group_offsets({group: None})[group]
        assert {tp.topic: om.offset for tp, om in left.items()} == {topic: 5}, left
    finally:
        admin.close()


# ------------------------------------------------------------------------- broker-side settings

@pytest.mark.timeout(90)
def test_initial_rebalance_delay_forms_one_generation(broker_factory, topic, spawn):
    """With group.initial.rebalance.delay.ms the coordinator waits for more members before the
    first assignment of an empty group, so members started together are assigned once."""
    delay_ms = 4000
    broker = broker_factory(**{"group.initial.rebalance.delay.ms": str(delay_ms)})
    ck_create_topic(broker, topic, partitions=6)
    group = "delay-" + topic
    ws = [spawn(f"d{i}", member_conf(broker, group, f"d{i}"), topic) for i in range(3)]
    wait_split(ws, 6, [2, 2, 2], 3 * delay_ms / 1000 + SLACK_S, "over three members")
    for w in ws:
        assert [(e["ev"], len(e["parts"])) for e in w.rebalance_events()] == [("assign", 2)], (
            f"{w.name} went through more than one generation\n{w.describe()}")
    first_start = min(w.of_kind("started")[0]["mono"] for w in ws)
    last_start = max(w.of_kind("started")[0]["mono"] for w in ws)
    assigned = max(w.of_kind("assign")[0]["mono"] for w in ws)
    took = assigned - first_start
    assert took >= delay_ms / 1000 - 0.5, f"first assignment after {took:.1f}s, delay {delay_ms}ms"
    # Kafka (InitialDelayedJoin / tryCompleteInitialRebalanceElseSchedule) re-arms the delay once
    # per window in which a new member arrived, not once per member: members that all join within
    # the first window are assigned after two windows, however many they are.
    if last_start - first_start < delay_ms / 1000 - 1.5:
        assert took < 2 * delay_ms / 1000 + 1.5, (
            f"three members that joined within {last_start - first_start:.1f}s of each other were "
            f"assigned {took:.1f}s after the first joined; Kafka completes the initial join after "
            f"two {delay_ms} ms windows (the delay is extended per window with a new member, not per "
            "member)")


@pytest.mark.timeout(60)
def test_session_timeout_outside_broker_bounds_rejected(broker_factory, topic, spawn):
    broker = broker_factory(**{"group.initial.rebalance.delay.ms": "0",
                               "group.min.session.timeout.ms": "8000",
                               "group.max.session.timeout.ms": "20000"})
    ck_create_topic(broker, topic, partitions=1)
    low = spawn("low", member_conf(broker, "bounds-low-" + topic, "low"), topic)  # 6000 < 8000
    high = spawn("high", member_conf(broker, "bounds-high-" + topic, "high",
                                     **{"session.timeout.ms": 25000}), topic)
    ok = spawn("ok", member_conf(broker, "bounds-ok-" + topic, "ok",
                                 **{"session.timeout.ms": 9000}), topic)

    def rejected(w):
        return any(e.get("code") == KafkaError.INVALID_SESSION_TIMEOUT
                   for e in w.of_kind("poll_error", "client_error"))

    wait_until(lambda: rejected(low) and rejected(high), SLACK_S,
               "INVALID_SESSION_TIMEOUT for session timeouts outside the broker's bounds",
               [low, high])
    wait_until(lambda: ok.owned() == {0}, SLACK_S, "the in-bounds member to be assigned", [ok])
    assert not low.owned() and not high.owned()


# ------------------------------------------------------------------------- raw protocol edge cases

JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 11, 12, 13, 14
NONE, ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL, UNKNOWN_MEMBER_ID = 0, 22, 23, 25
REBALANCE_IN_PROGRESS, MEMBER_ID_REQUIRED, FENCED_INSTANCE_ID = 27, 79, 82


def kbytes(b: bytes | None) -> bytes:
    return struct.pack(">i", -1) if b is None else struct.pack(">i", len(b)) + b


def read_bytes(r: Reader) -> bytes | None:
    n = r.take("i")
    if n < 0:
        return None
    b = r.data[r.pos:r.pos + n]
    r.pos += n
    return b


def subscription(topic: str) -> bytes:
    """ConsumerProtocolSubscription v0: the consumer protocol's member metadata."""
    return struct.pack(">hi", 0, 1) + kstring(topic) + kbytes(None)


def assignment(topic: str, partitions: list[int]) -> bytes:
    """ConsumerProtocolAssignment v0."""
    return (struct.pack(">hi", 0, 1) + kstring(topic) + struct.pack(">i", len(partitions))
            + b"".join(struct.pack(">i", p) for p in partitions) + kbytes(None))


def join_v5(conn: Conn, group: str, member_id: str = "", instance_id: str | None = None,
            protocols=(("range", b""),), session_ms: int = 10000, rebalance_ms: int = 3000) -> dict:
    body = (kstring(group) + struct.pack(">ii", session_ms, rebalance_ms) + kstring(member_id)
            + kstring(instance_id) + kstring("consumer") + struct.pack(">i", len(protocols))
            + b"".join(kstring(name) + kbytes(meta) for name, meta in protocols))
    r = Reader(conn.request(JOIN_GROUP, 5, body))
    _throttle, err, gen = r.take("ihi")
    out = {"error": err, "generation": gen, "protocol": r.string(), "leader": r.string(),
           "member_id": r.string(), "members": []}
    for _ in range(r.take("i")):
        out["members"].append((r.string(), r.string(), read_bytes(r)))
    return out


def sync_v3(conn: Conn, group: str, generation: int, member_id: str,
            assignments: dict[str, bytes] | None = None, instance_id: str | None = None):
    assignments = assignments or {}
    body = (kstring(group) + struct.pack(">i", generation) + kstring(member_id) + kstring(instance_id)
            + struct.pack(">i", len(assignments))
            + b"".join(kstring(m) + kbytes(a) for m, a in assignments.items()))
    r = Reader(conn.request(SYNC_GROUP, 3, body))
    _throttle, err = r.take("ih")
    return err, read_bytes(r)


def heartbeat_v3(conn: Conn, group: str, generation: int, member_id: str,
                 instance_id: str | None = None) -> int:
    body = kstring(group) + struct.pack(">i", generation) + kstring(member_id) + kstring(instance_id)
    r = Reader(conn.request(HEARTBEAT, 3, body))
    return r.take("ih")[1]


def leave_v3(conn: Conn, group: str, members: list[tuple[str, str | None]]):
    body = (kstring(group) + struct.pack(">i", len(members))
            + b"".join(kstring(m) + kstring(i) for m, i in members))
    r = Reader(conn.request(LEAVE_GROUP, 3, body))
    _throttle, err = r.take("ih")
    out = []
    for _ in range(r.take("i")):
        out.append((r.string(), r.string(), r.take("h")))
    return err, out


def commit_v7(conn: Conn, group: str, generation: int, member_id: str, topic: str, offset: int,
              instance_id: str | None = None) -> int:
    """OffsetCommit v7 of one offset for partition 0; returns the partition's error code."""
    body = (kstring(group) + struct.pack(">i", generation) + kstring(member_id) + kstring(instance_id)
            + struct.pack(">i", 1) + kstring(topic) + struct.pack(">i", 1)
            + struct.pack(">iqi", 0, offset, -1) + kstring(None))
    r = Reader(conn.request(8, 7, body))
    r.take("i")  # throttle
    assert r.take("i") == 1
    r.string()
    assert r.take("i") == 1
    return r.take("ih")[1]


def find_coordinator_ready(broker, group: str, timeout: float = 20.0) -> None:
    """FindCoordinator v1 until the group's coordinator answers (creates __consumer_offsets)."""
    deadline = time.monotonic() + timeout
    while True:
        with Conn(broker.port) as c:
            r = Reader(c.request(10, 1, kstring(group) + struct.pack(">b", 0)))
            _throttle, err = r.take("ih")
        if err == NONE:
            return
        assert time.monotonic() < deadline, f"FindCoordinator error {err}"
        time.sleep(0.2)


@pytest.mark.timeout(90)
def test_raw_join_sync_heartbeat_errors_and_rebalance_timeout(broker_factory, topic):
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=2)
    group = "raw-" + topic
    find_coordinator_ready(broker, group)
    sub = subscription(topic)
    a_conn, b_conn, x_conn = Conn(broker.port, timeout=30), Conn(broker.port, timeout=30), Conn(broker.port)
    kadmin = kp_admin(broker)

    def state():
        return kadmin.describe_groups([group])[group]["group_state"]

    try:
        # KIP-394: a dynamic member's first JoinGroup (v4+) only gets a member id.
        first = join_v5(a_conn, group, protocols=(("range", sub),))
        assert first["error"] == MEMBER_ID_REQUIRED and first["member_id"], first
        a = first["member_id"]
        joined = join_v5(a_conn, group, member_id=a, protocols=(("range", sub),))
        assert joined["error"] == NONE and joined["leader"] == a and joined["member_id"] == a, joined
        assert joined["protocol"] == "range" and joined["members"] == [(a, None, sub)], joined
        gen = joined["generation"]
        assert gen >= 1

        # SyncGroup: wrong member, wrong generation, then the leader's assignment comes back.
        assert sync_v3(x_conn, group, gen, "not-a-member")[0] == UNKNOWN_MEMBER_ID
        assert sync_v3(x_conn, group, gen + 5, a)[0] == ILLEGAL_GENERATION
        mine = assignment(topic, [0, 1])
        assert sync_v3(a_conn, group, gen, a, {a: mine}) == (NONE, mine)
        assert state() == "Stable"

        assert heartbeat_v3(a_conn, group, gen, a) == NONE
        assert heartbeat_v3(x_conn, group, gen + 5, a) == ILLEGAL_GENERATION
        # OffsetCommit is checked against the membership like Kafka's ClassicGroup does.
        assert commit_v7(x_conn, group, gen, a, topic, 1) == NONE
        assert commit_v7(x_conn, group, gen + 5, a, topic, 2) == ILLEGAL_GENERATION
        assert commit_v7(x_conn, group, gen, "not-a-member", topic, 2) == UNKNOWN_MEMBER_ID
        assert commit_v7(x_conn, group, -1, "", topic, 2) == UNKNOWN_MEMBER_ID  # group not empty
        assert heartbeat_v3(x_conn, group, gen, "not-a-member") == UNKNOWN_MEMBER_ID

        # A member that offers no protocol in common with the group is refused.
        other = join_v5(x_conn, group, member_id="", protocols=(("roundrobin", sub),))
        if other["error"] == MEMBER_ID_REQUIRED:
            other = join_v5(x_conn, group, member_id=other["member_id"],
                            protocols=(("roundrobin", sub),))
        assert other["error"] == INCONSISTENT_GROUP_PROTOCOL, other

        # B joins: the group prepares a rebalance, A learns it from its heartbeat but never
        # rejoins, so after A's rebalance timeout (3 s) A is dropped and B's join completes.
        b_first = join_v5(b_conn, group, protocols=(("range", sub),))
        assert b_first["error"] == MEMBER_ID_REQUIRED
        b = b_first["member_id"]
        result: dict = {}

        def join_b():
            t0 = time.monotonic()
            result["join"] = join_v5(b_conn, group, member_id=b, protocols=(("range", sub),),
                                     rebalance_ms=3000)
            result["took"] = time.monotonic() - t0

        t = threading.Thread(target=join_b, daemon=True)
        t.start()
        time.sleep(0.5)
        assert heartbeat_v3(a_conn, group, gen, a) == REBALANCE_IN_PROGRESS
        # While the group prepares the rebalance a member may still commit with its generation
        # (what an eager client does in its revoke callback).
        assert commit_v7(x_conn, group, gen, a, topic, 3) == NONE
        assert state() == "PreparingRebalance"
        assert group in [g["group_id"] for g in kadmin.list_groups(
            states_filter=[kafka.admin.GroupState.PREPARING_REBALANCE])]
        t.join(30)
        assert "join" in result, "B's JoinGroup did not complete within 30 s"
        jb = result["join"]
        assert jb["error"] == NONE and jb["leader"] == b, jb
        assert [m[0] for m in jb["members"]] == [b], jb
        assert jb["generation"] == gen + 1, jb
        assert 2.0 <= result["took"] < 15, (
            f"B's JoinGroup completed after {result['took']:.1f}s; the group must wait for A up to "
            "A's rebalance timeout (3 s), then drop it")
        assert heartbeat_v3(a_conn, group, gen, a) in (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION)
        assert heartbeat_v3(a_conn, group, gen + 1, a) == UNKNOWN_MEMBER_ID
        # Joined but not yet synced (CompletingRebalance): heartbeats are fine, commits must wait.
        assert heartbeat_v3(b_conn, group, gen + 1, b) == NONE
        assert state() == "CompletingRebalance"
        assert commit_v7(x_conn, group, gen + 1, b, topic, 4) == REBALANCE_IN_PROGRESS
        theirs = assignment(topic, [0, 1])
        assert sync_v3(b_conn, group, gen + 1, b, {b: theirs}) == (NONE, theirs)
        assert commit_v7(x_conn, group, gen + 1, b, topic, 5) == NONE

        # Batched LeaveGroup (v3+): a known member and an unknown instance, answered per member.
        err, members = leave_v3(x_conn, group, [(b, None), ("", "no-such-instance")])
        assert err == NONE
        assert sorted((m, i, e) for m, i, e in members) == sorted(
            [(b, None, NONE), ("", "no-such-instance", UNKNOWN_MEMBER_ID)]), members
        assert heartbeat_v3(b_conn, group, gen + 1, b) == UNKNOWN_MEMBER_ID
        assert state() == "Empty"
    finally:
        kadmin.close()
        for c in (a_conn, b_conn, x_conn):
            c.close()


@pytest.mark.timeout(60)
def test_raw_static_member_replaced_and_old_id_fenced(broker_factory, topic):
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=1)
    group = "raw-static-" + topic
    find_coordinator_ready(broker, group)
    sub = subscription(topic)
    with Conn(broker.port, timeout=30) as c:
        # Static members get their member id without the MEMBER_ID_REQUIRED round trip.
        j = join_v5(c, group, instance_id="i1", protocols=(("range", sub),))
        assert j["error"] == NONE and j["leader"] == j["member_id"], j
        old, gen = j["member_id"], j["generation"]
        assert j["members"] == [(old, "i1", sub)], j
        mine = assignment(topic, [0])
        assert sync_v3(c, group, gen, old, {old: mine}, instance_id="i1") == (NONE, mine)

        # The same instance rejoins (a restarted process): new member id, same generation (no
        # rebalance of a Stable group), and SyncGroup hands back the existing assignment.
        j2 = join_v5(c, group, instance_id="i1", protocols=(("range", sub),))
        assert j2["error"] == NONE and j2["member_id"] != old, j2
        new = j2["member_id"]
        assert j2["generation"] == gen, j2
        # Below JoinGroup v9 (no skip_assignment) Kafka does not make the rejoining static leader
        # compute an assignment: the response names the previous leader id and carries no members
        # (GroupMetadataManager.updateStaticMemberThenRebalanceOrCompleteJoin). A client told it
        # leads with an empty member list runs its assignor over nobody.
        assert j2["members"] == [], j2
        assert j2["leader"] == old, (
            f"JoinGroup v5 answer to a rejoining static leader names leader {j2['leader']!r}; Kafka "
            f"answers the previous leader id {old!r} below v9 so the client acts as a follower")
        assert sync_v3(c, group, gen, new, instance_id="i1") == (NONE, mine)

        assert heartbeat_v3(c, group, gen, old, instance_id="i1") == FENCED_INSTANCE_ID
        assert heartbeat_v3(c, group, gen, new, instance_id="i1") == NONE
        err, members = leave_v3(c, group, [(old, "i1")])
        assert err == NONE and members == [(old, "i1", FENCED_INSTANCE_ID)], members
        err, members = leave_v3(c, group, [("", "i1")])
        assert err == NONE and members == [("", "i1", NONE)], members
        assert heartbeat_v3(c, group, gen, new, instance_id="i1") == UNKNOWN_MEMBER_ID


# ------------------------------------------------------------------------- __consumer_offsets layout

def java_string_hash(s: str) -> int:
    """String.hashCode(): h = 31 * h + c over UTF-16 code units, in 32-bit two's complement."""
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i:i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition_for(group: str, partitions: int = 50) -> int:
    # Kafka: Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions, where Utils.abs is
    # Math.abs except that Integer.MIN_VALUE gives 0 (Math.abs would leave it negative).
    h = java_string_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


@pytest.mark.timeout(60)
def test_raw_static_rejoin_with_new_subscription_bytes_keeps_generation(broker_factory, topic):
    """A restarted client's subscription bytes differ from its previous incarnation's (it owns
    nothing yet; Java clients also put their generation in them). Kafka rebalances a Stable group on
    a static rejoin only if the group's selected protocol would change."""
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=1)
    group = "raw-static-bytes-" + topic
    find_coordinator_ready(broker, group)
    owned_sub = struct.pack(">hi", 0, 1) + kstring(topic) + kbytes(b"owned:0")
    fresh_sub = struct.pack(">hi", 0, 1) + kstring(topic) + kbytes(b"owned:")
    with Conn(broker.port, timeout=30) as c:
        j = join_v5(c, group, instance_id="i1", protocols=(("range", owned_sub),))
        assert j["error"] == NONE, j
        gen = j["generation"]
        mine = assignment(topic, [0])
        assert sync_v3(c, group, gen, j["member_id"], {j["member_id"]: mine},
                       instance_id="i1") == (NONE, mine)
        j2 = join_v5(c, group, instance_id="i1", protocols=(("range", fresh_sub),))
        assert j2["error"] == NONE, j2
        assert j2["generation"] == gen, (
            "a static member rejoining a Stable group with the same protocol but new subscription "
            f"bytes started generation {j2['generation']} (was {gen}): a rebalance Kafka does not do")
        assert sync_v3(c, group, gen, j2["member_id"], instance_id="i1") == (NONE, mine)


@pytest.mark.timeout(90)
def test_group_records_land_in_kafkas_offsets_partition(broker_factory, topic, spawn):
    broker = broker_factory(**FAST_GROUPS)
    ck_create_topic(broker, topic, partitions=2)
    # "zz-top" hashes negative (-688085688 -> partition 38; `& 0x7fffffff` would give 10) and
    # "polygenelubricants" to Integer.MIN_VALUE (-> 0); "g1" (3242 -> 42) is a plain case and the
    # last one is not ASCII (String.hashCode works on UTF-16 units, not UTF-8 bytes).
    groups = ["g1", "zz-top", "polygenelubricants", "grp-n\u00e9gatif"]
    ck_produce(ck_producer(broker), topic, [(None, b"x", None)] * 10)  # so that commits happen
    for g in groups:
        w = spawn(g[:8], member_conf(broker, g, "placer"), topic, commit=True)
        wait_split([w], 2, [2], SLACK_S, f"on the only member of {g}")
        wait_until(lambda: len(w.of_kind("msg")) == 10, SLACK_S, f"{g} to consume", [w])
        assert w.close() == 0
    c = Consumer(member_conf(broker, "reader-" + topic, "reader", debug=None))
    seen_in: dict[str, set[int]] = {g: set() for g in groups}
    try:
        # One pass over all 50 partitions from the beginning, until nothing new arrives.
        c.assign([TopicPartition("__consumer_offsets", p, OFFSET_BEGINNING) for p in range(50)])
        deadline = time.monotonic() + 30
        idle_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - idle_since < 3:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            idle_since = time.monotonic()
            r = Reader(m.key() or b"\x00\x00")
            if r.take("h") in (0, 1, 2):  # OffsetCommitKey v0/v1, GroupMetadataKey v2
                g = r.string()
                if g in seen_in:
                    seen_in[g].add(m.partition())
    finally:
        c.close()
    for g in groups:
        expected = offsets_partition_for(g)
        assert seen_in[g] == {expected}, (
            f"records of group {g!r} are in __consumer_offsets partitions {sorted(seen_in[g])}; "
            f"Kafka puts them in Utils.abs(hashCode) % 50 = {expected}")


@pytest.mark.timeout(60)
def test_raw_leader_dies_between_join_and_sync(broker_factory, topic):
    """Followers wait in SyncGroup for the leader's assignment; if the leader dies instead, its
    session expires and the waiting followers get REBALANCE_IN_PROGRESS (they rejoin), rather than
    hanging until their own request times out."""
    broker = broker_factory(**{"group.initial.rebalance.delay.ms": "0",
                               "group.min.session.timeout.ms": "1000"})
    ck_create_topic(broker, topic, partitions=1)
    group = "raw-sync-" + topic
    find_coordinator_ready(broker, group)
    sub = subscription(topic)
    a_conn, b_conn = Conn(broker.port, timeout=30), Conn(broker.port, timeout=30)
    try:
        a = join_v5(a_conn, group, protocols=(("range", sub),))["member_id"]
        j = join_v5(a_conn, group, member_id=a, protocols=(("range", sub),), session_ms=2000)
        assert j["error"] == NONE and j["leader"] == a, j
        gen = j["generation"]
        assert sync_v3(a_conn, group, gen, a, {a: assignment(topic, [0])})[0] == NONE

        b = join_v5(b_conn, group, protocols=(("range", sub),))["member_id"]
        results: dict = {}

        def run(name, fn):
            def go():
                results[name] = fn()
            t = threading.Thread(target=go, daemon=True)
            t.start()
            return t

        tb = run("join_b", lambda: join_v5(b_conn, group, member_id=b, protocols=(("range", sub),),
                                            session_ms=10000))
        time.sleep(0.3)
        ta = run("join_a", lambda: join_v5(a_conn, group, member_id=a, protocols=(("range", sub),),
                                            session_ms=2000))
        ta.join(15)
        tb.join(15)
        ja, jb = results.get("join_a"), results.get("join_b")
        assert ja and jb and ja["error"] == NONE and jb["error"] == NONE, results
        assert ja["generation"] == jb["generation"] == gen + 1
        leader = ja["leader"]
        assert leader == jb["leader"] and leader in (a, b)
        follower_conn, follower, dead = (b_conn, b, a) if leader == a else (a_conn, a, b)
        if leader == b:
            pytest.skip("the group picked the new member as leader; this test needs the old one")
        t0 = time.monotonic()
        ts = run("sync_follower", lambda: sync_v3(follower_conn, group, gen + 1, follower))
        ts.join(20)
        took = time.monotonic() - t0
        assert "sync_follower" in results, (
            "the follower's SyncGroup was still waiting 20 s after the leader (session 2 s) died")
        assert results["sync_follower"][0] == REBALANCE_IN_PROGRESS, results["sync_follower"]
        assert took < 10, f"follower released after {took:.1f}s"
        again = join_v5(follower_conn, group, member_id=follower, protocols=(("range", sub),),
                        session_ms=10000)
        assert again["error"] == NONE and again["leader"] == follower, again
        assert [m[0] for m in again["members"]] == [follower] and dead != follower
    finally:
        a_conn.close()
        b_conn.close()
