"""Crash test: kill -9 the broker under an acks=all idempotent producer, restart it on the
same data directory and port, repeat; then every acknowledged record must be in the log
at its acknowledged offset, and no record may appear twice.

KAVKA_CRASH_CYCLES sets the number of kill/restart cycles (default 5, 3 when CI=true);
KAVKA_CRASH_SEED the seed of the random kill timing.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

from crash_producer import value_for
from kclients import ck_consume, ck_consumer, ck_create_topic

HERE = Path(__file__).resolve().parent
PARTITIONS = 3


def cycles() -> int:
    default = 3 if os.environ.get("CI") == "true" else 5
    return int(os.environ.get("KAVKA_CRASH_CYCLES", default))


class AckLog:
    """Incrementally parsed output of crash_producer.py."""

    def __init__(self, path: Path):
        self.path = path
        self.pos = 0
        self.acked: list[tuple[int, int, str]] = []
        self.failed: list[str] = []
        self.done: str | None = None

    def refresh(self) -> None:
        if not self.path.exists():
            return
        with open(self.path) as f:
            f.seek(self.pos)
            data = f.read()
        end = data.rfind("\n") + 1  # only whole lines
        self.pos += len(data[:end].encode())
        for line in data[:end].splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "OK":
                p, o, v = rest.split(" ", 2)
                self.acked.append((int(p), int(o), v))
            elif kind == "ERR":
                self.failed.append(rest)
            elif kind == "DONE":
                self.done = rest


def wait_for_acks(ack: AckLog, proc, at_least: int, timeout: float, broker) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ack.refresh()
        if len(ack.acked) >= at_least:
            return
        if proc.poll() is not None:
            raise AssertionError(f"producer exited early with {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError(
        f"only {len(ack.acked)} acknowledgements (wanted {at_least}) within {timeout}s; "
        f"{len(ack.failed)} failures, first: {ack.failed[:3]}")


def read_partition(broker, topic, partition) -> list[tuple[int, bytes]]:
    c = ck_consumer(broker)
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=20, cached=False)
    finally:
        c.close()
    assert lo == 0, f"partition {partition} log start offset {lo}, nothing was deleted"
    if hi == 0:
        return []
    recs = ck_consume(broker, topic, partition, hi, timeout=120)
    return [(r.offset, r.value) for r in recs[:hi]]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_kill9_loses_no_acknowledged_record(broker_factory, topic, tmp_path, client):
    # Smallest segments Kafka 4 allows (1 MiB, KIP-1030), so that crashes also hit segment
    # rolls and recovery of older segments.
    broker = broker_factory(**{"log.segment.bytes": str(1024 * 1024)})
    ck_create_topic(broker, topic, partitions=PARTITIONS)
    out = tmp_path / "acks.txt"
    stop = tmp_path / "stop"
    plog = open(tmp_path / "producer-stderr.log", "wb")
    proc = subprocess.Popen([sys.executable, str(HERE / "crash_producer.py"), broker.bootstrap,
                             topic, str(out), str(stop), client], stdout=plog, stderr=plog)
    ack = AckLog(out)
    rng = random.Random(int(os.environ.get("KAVKA_CRASH_SEED", "20261122")))
    try:
        wait_for_acks(ack, proc, 1000, 60, broker)
        for cycle in range(cycles()):
            time.sleep(rng.uniform(0.2, 1.5))  # kill at a random point mid-stream
            ack.refresh()
            broker.kill9()
            time.sleep(rng.uniform(0.0, 0.5))
            broker.start()
            if cycle % 2 == 1:
                # crash again during or right after recovery: recovery must be restartable
                time.sleep(rng.uniform(0.0, 0.2))
                broker.kill9()
                broker.start()
            # the producer must make progress again after every restart
            wait_for_acks(ack, proc, len(ack.acked) + 1000, 120, broker)
        stop.touch()
        proc.wait(timeout=330)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        plog.close()
    ack.refresh()
    assert ack.done is not None, "producer did not finish: " + (
        tmp_path / "producer-stderr.log").read_text()[-3000:]

    logs = {p: read_partition(broker, topic, p) for p in range(PARTITIONS)}
    segments = {p: len(list((broker.data_dir / f"{topic}-{p}").glob("*.log")))
                for p in range(PARTITIONS)}
    print(f"crash test ({client}): {cycles()} kill -9 cycles, {len(ack.acked)} acknowledged, "
          f"{len(ack.failed)} failed, log sizes {[len(r) for r in logs.values()]}, "
          f"segments per partition {segments}, producer: {ack.done}")
    by_offset = {p: dict(recs) for p, recs in logs.items()}

    # 1. every acknowledged record is at its acknowledged offset
    missing = []
    for p, o, v in ack.acked:
        got = by_offset[p].get(o)
        if got != value_for(int(v)):
            missing.append((p, o, v, got[:20] if got else got))
    assert not missing, (f"{len(missing)} of {len(ack.acked)} acknowledged records not at their "
                         f"offset, first (partition, offset, value, found): {missing[:5]}")

    # 2. no duplicates anywhere
    seen: dict[bytes, tuple[int, int]] = {}
    dups = []
    for p, recs in logs.items():
        offsets = [o for o, _ in recs]
        assert offsets == list(range(len(recs))), f"partition {p}: offsets not contiguous"
        for o, v in recs:
            if v in seen:
                dups.append((v[:20], seen[v], (p, o)))
            seen[v] = (p, o)
    assert not dups, f"{len(dups)} duplicated records, first: {dups[:5]}"

    # 3. nothing in the log that the producer was told had failed... or never sent
    acked_values = {value_for(int(v)) for _, _, v in ack.acked}
    failed_values = {value_for(int(f.split(" ", 1)[0])) for f in ack.failed}
    strangers = [v for v in seen if v not in acked_values and v not in failed_values]
    assert not strangers, (f"{len(strangers)} records in the log were never produced: "
                           f"{[s[:20] for s in strangers[:5]]}")

    # 4. an idempotent acks=all producer should not have lost any delivery to broker errors
    assert not ack.failed, f"{len(ack.failed)} deliveries failed, first: {ack.failed[:5]}"
    assert len(ack.acked) >= 1000 * (cycles() + 1)
