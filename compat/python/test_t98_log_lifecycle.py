"""Log lifecycle with real clients (issue 7): time and size retention delete whole closed segments
and move the log start offset; DeleteRecords through confluent-kafka's and kafka-python's admin
APIs; consumers from `earliest` start at the new log start, and one below it is reset by
`auto.offset.reset`; the log start survives a kill -9; DescribeLogDirs reports partition sizes.

Brokers check retention every 300 ms (`log.retention.check.interval.ms`) and topics roll segments
by time (`segment.ms`), so a test sees segments close and expire within seconds."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType

from kafka import TopicPartition as KpTopicPartition
from kclients import ck_admin, ck_create_topic, ck_produce, ck_producer, kp_admin

FAST_RETENTION = {"log.retention.check.interval.ms": "300"}
T = 20


def watermarks(broker, topic: str, partition: int = 0) -> tuple[int, int]:
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=T)
    finally:
        c.close()


def wait_until(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def produce_segment(producer, topic: str, values, timestamp_ms: int | None = None):
    """Produce one batch of records, then wait past segment.ms so the next produce rolls."""
    for v in values:
        kwargs = {"value": v.encode(), "partition": 0}
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        producer.produce(topic, **kwargs)
    assert producer.flush(T) == 0
    time.sleep(0.25)


def read_from_earliest(broker, topic: str, expect: int) -> list[tuple[int, str]]:
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"read-{time.time_ns()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    got: list[tuple[int, str]] = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + T
        while len(got) < expect and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            got.append((m.offset(), m.value().decode()))
    finally:
        c.close()
    return got


def test_time_retention_deletes_expired_segments(broker_factory, topic):
    broker = broker_factory(**FAST_RETENTION)
    ck_create_topic(broker, topic, config={"segment.ms": "100", "retention.ms": "60000"})
    p = ck_producer(broker, **{"linger.ms": 0})
    old = int(time.time() * 1000) - 3_600_000  # an hour old: past retention.ms
    produce_segment(p, topic, [f"old-{i}" for i in range(10)], old)
    produce_segment(p, topic, [f"new-{i}" for i in range(10)])
    produce_segment(p, topic, ["last"])  # rolls the segment holding new-*
    wait_until(lambda: watermarks(broker, topic)[0] == 10, 10, "the expired segment to go")
    # ListOffsets by time: a timestamp of the deleted records finds the first record still there.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "times"})
    try:
        [found] = c.offsets_for_times([TopicPartition(topic, 0, old)], timeout=T)
    finally:
        c.close()
    assert found.offset == 10, found
    got = read_from_earliest(broker, topic, 11)
    assert got[0] == (10, "new-0"), got[:3]
    assert [v for _, v in got] == [f"new-{i}" for i in range(10)] + ["last"]
    # The new log start is durable.
    del p
    broker.kill9()
    broker.start()
    assert watermarks(broker, topic) == (10, 21)


def test_size_retention_keeps_the_newest_segments(broker_factory, topic):
    broker = broker_factory(**FAST_RETENTION)
    ck_create_topic(broker, topic, config={"segment.ms": "100", "retention.bytes": "3000"})
    p = ck_producer(broker, **{"linger.ms": 0})
    for s in range(6):
        produce_segment(p, topic, [f"s{s}-{i}-" + "x" * 100 for i in range(10)])
    # Each closed segment is ~1.2 KB; Kafka keeps deleting the oldest while the log minus that
    # segment is still at least retention.bytes.
    wait_until(lambda: watermarks(broker, topic)[0] >= 30, 10, "size retention to delete segments")
    low, high = watermarks(broker, topic)
    assert high == 60 and low % 10 == 0 and low <= 40, (low, high)


def test_delete_records_confluent_and_kafka_python(broker, topic):
    ck_create_topic(broker, topic, partitions=2)
    p = ck_producer(broker)
    ck_produce(p, topic, [(None, f"a{i}".encode(), None) for i in range(20)], partition=0)
    ck_produce(p, topic, [(None, f"b{i}".encode(), None) for i in range(20)], partition=1)
    admin = ck_admin(broker)
    [deleted] = admin.delete_records([TopicPartition(topic, 0, 7)]).values()
    assert deleted.result(timeout=T).low_watermark == 7
    assert watermarks(broker, topic, 0) == (7, 20)
    # Beyond the high watermark: OFFSET_OUT_OF_RANGE, nothing changes.
    [beyond] = admin.delete_records([TopicPartition(topic, 0, 25)]).values()
    with pytest.raises(KafkaException) as err:
        beyond.result(timeout=T)
    assert err.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE
    kp = kp_admin(broker)
    try:
        result = kp.delete_records({KpTopicPartition(topic, 1): -1})  # -1: the high watermark
    finally:
        kp.close()
    [(tp, info)] = list(result.items())
    assert info["low_watermark"] == 20, info
    assert watermarks(broker, topic, 1) == (20, 20)
    got = read_from_earliest(broker, topic, 13)
    assert sorted(v for _, v in got) == sorted(f"a{i}" for i in range(7, 20))
    del p
    broker.kill9()
    broker.start()
    assert watermarks(broker, topic, 0) == (7, 20)


def test_consumer_below_log_start_is_reset(broker, topic):
    ck_create_topic(broker, topic)
    ck_produce(ck_producer(broker), topic, [(None, f"r{i}".encode(), None) for i in range(10)],
               partition=0)
    admin = ck_admin(broker)  # kept alive until the future completes
    [f] = admin.delete_records([TopicPartition(topic, 0, 5)]).values()
    f.result(timeout=T)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "below",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, 2)])  # below the log start: OFFSET_OUT_OF_RANGE
        m = None
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                break
        assert m is not None and not m.error() and m.offset() == 5, m
    finally:
        c.close()


def test_delete_records_refused_for_compacted_and_internal_topics(broker, topic):
    ck_create_topic(broker, topic, config={"cleanup.policy": "compact"})
    ck_produce(ck_producer(broker), topic, [(b"k", b"v", None)], partition=0)
    admin = ck_admin(broker)
    [f] = admin.delete_records([TopicPartition(topic, 0, 1)]).values()
    with pytest.raises(KafkaException) as err:
        f.result(timeout=T)
    assert err.value.args[0].code() == KafkaError.POLICY_VIOLATION


def test_describe_log_dirs_reports_partition_sizes(broker, topic):
    ck_create_topic(broker, topic, partitions=2)
    ck_produce(ck_producer(broker), topic, [(None, b"x" * 1000, None)] * 20, partition=1)
    kp = kp_admin(broker)
    try:
        dirs = kp.describe_log_dirs()
    finally:
        kp.close()
    text = repr(dirs)
    assert topic in text, text[:2000]
    # Find the partition sizes wherever kafka-python nests them.
    sizes = {}

    def walk(node):
        if isinstance(node, dict):
            if node.get("partition_index") is not None and "partition_size" in node:
                sizes.setdefault(node["partition_index"], 0)
                sizes[node["partition_index"]] += node["partition_size"]
            for v in node.values():
                walk(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v)
    walk(dirs)
    assert sizes.get(1, 0) >= 20_000 and sizes.get(0, -1) == 0, (sizes, text[:2000])


FAST_CLEANER = {**FAST_RETENTION, "log.cleaner.backoff.ms": "200"}
COMPACTED = {"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01",
             "delete.retention.ms": "500"}


def read_all(broker, topic: str, partition: int = 0) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record from the log start to the high watermark."""
    low, high = watermarks(broker, topic, partition)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"all-{time.time_ns()}",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    out = []
    try:
        c.assign([TopicPartition(topic, partition, low)])
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if not out or out[-1][0] >= high - 1 or low == high:
                        break
                    continue
                raise KafkaException(m.error())
            out.append((m.offset(), m.key(), m.value()))
            if m.offset() >= high - 1:
                break
    finally:
        c.close()
    return out


def test_compaction_keeps_the_latest_value_per_key(broker_factory, topic):
    broker = broker_factory(**FAST_CLEANER)
    ck_create_topic(broker, topic, config=COMPACTED)
    p = ck_producer(broker, **{"linger.ms": 0, "compression.type": "lz4"})
    latest: dict[str, str | None] = {}
    started_ms = int(time.time() * 1000) - 1
    for round_ in range(8):
        for k in range(20):
            key = f"k{k:02d}"
            value = None if (round_ == 6 and k % 5 == 0) else f"{key}-v{round_}"
            p.produce(topic, key=key.encode(), value=value.encode() if value else None, partition=0)
            latest[key] = value
        assert p.flush(T) == 0
        time.sleep(0.25)  # segment.ms: the next round starts a new segment
    # One more segment so the last round's segment is closed (the active one is never cleaned).
    p.produce(topic, key=b"zz", value=b"end", partition=0)
    assert p.flush(T) == 0
    time.sleep(0.25)
    # The active segment (never cleaned) holds only a key of its own.
    p.produce(topic, key=b"roll", value=b"r", partition=0)
    assert p.flush(T) == 0
    latest["zz"] = "end"
    latest["roll"] = "r"
    total_produced = 8 * 20 + 2

    def compacted():
        records = read_all(broker, topic)
        keys = [k for _, k, _ in records]
        return len(keys) == len(set(keys)) and len(records) < total_produced

    wait_until(compacted, 20, "the log to hold one record per key")
    records = read_all(broker, topic)
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(offsets) and offsets[-1] == total_produced - 1, offsets
    # ListOffsets by time across the gaps: the first record at or after the time of the (now
    # compacted away) first round is the first that survived.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "times"})
    try:
        [found] = c.offsets_for_times([TopicPartition(topic, 0, started_ms)], timeout=T)
    finally:
        c.close()
    assert found.offset == offsets[0] and offsets[0] > 0, (found, offsets[:5])
    view = {k.decode(): (v.decode() if v is not None else None) for _, k, v in records}
    # Every key's latest value; tombstones are either still there (as None) or gone.
    for key, value in latest.items():
        if value is None:
            assert view.get(key) is None, (key, view.get(key))
        else:
            assert view[key] == value, (key, view.get(key), value)
    # After delete.retention.ms the tombstones themselves go (a later cleaning pass).
    wait_until(lambda: all(v is not None for _, _, v in read_all(broker, topic)), 20,
               "tombstones to be removed after delete.retention.ms")
    del p
    broker.kill9()
    broker.start()
    again = {k.decode(): v.decode() for _, k, v in read_all(broker, topic)}
    assert again == {k: v for k, v in latest.items() if v is not None}


def test_compacted_topic_refuses_records_without_a_key(broker, topic):
    ck_create_topic(broker, topic, config={"cleanup.policy": "compact"})
    p = ck_producer(broker)
    results = ck_produce(p, topic, [(None, b"no key", None)], partition=0, raise_on_error=False)
    err = results[0][0]
    assert err is not None and err.code() == KafkaError.INVALID_RECORD, results
    ck_produce(p, topic, [(b"k", b"keyed", None)], partition=0)


def test_compaction_under_production_keeps_a_consistent_view(broker_factory, topic):
    """While a producer keeps updating keys and the cleaner keeps compacting, every pass of a reader
    over the log sees each record at the offset it was acknowledged at, each key's versions in
    increasing order, and at least every key's latest version acknowledged before the pass began."""
    import threading

    broker = broker_factory(**FAST_CLEANER)
    ck_create_topic(broker, topic, config={**COMPACTED, "delete.retention.ms": "86400000"})
    acked: dict[int, str] = {}  # offset -> value
    latest_acked: dict[str, int] = {}  # key -> version
    lock = threading.Lock()
    stop = threading.Event()
    errors: list = []

    def produce():
        p = ck_producer(broker, **{"linger.ms": 5})
        version = 0
        while not stop.is_set():
            version += 1
            for k in range(20):
                key, value = f"k{k:02d}", f"k{k:02d}:{version:06d}"

                def on_delivery(err, msg, key=key, version=version, value=value):
                    if err is not None:
                        errors.append(err)
                        return
                    with lock:
                        acked[msg.offset()] = value
                        latest_acked[key] = max(latest_acked.get(key, 0), version)
                p.produce(topic, key=key.encode(), value=value.encode(), partition=0,
                          on_delivery=on_delivery)
            p.poll(0)
            time.sleep(0.02)
        p.flush(T)

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    passes = 0
    deadline = time.monotonic() + 8
    try:
        while time.monotonic() < deadline:
            with lock:
                floor = dict(latest_acked)
            records = read_all(broker, topic)
            seen: dict[str, int] = {}
            with lock:
                snapshot = dict(acked)
            for offset, key, value in records:
                k, v = key.decode(), value.decode()
                assert snapshot.get(offset, value.decode()) == v, (
                    f"offset {offset} holds {v}, acknowledged as {snapshot.get(offset)}")
                version = int(v.split(":")[1])
                assert version > seen.get(k, 0), f"{k}: version {version} after {seen.get(k)}"
                seen[k] = version
            # The pass stops at the high watermark it saw first, but the cleaner may meanwhile drop a
            # record below it for a newer version written above it. So a key may show an older version
            # than `floor` only if a newer one was acknowledged after the pass's last offset; wait for
            # the delivery reports up to the current high watermark to know.
            last = records[-1][0] if records else -1
            _, high_now = watermarks(broker, topic)

            def reported_up_to_high():
                with lock:
                    return max(acked, default=-1) >= high_now - 1

            wait_until(reported_up_to_high, T, "delivery reports")
            with lock:
                newer_beyond: dict[str, int] = {}
                for offset, value in acked.items():
                    if offset > last:
                        k, v = value.split(":")
                        newer_beyond[k] = max(newer_beyond.get(k, 0), int(v))
            for k, version in floor.items():
                assert seen.get(k, 0) >= version or newer_beyond.get(k, 0) > version, (
                    f"{k}: latest acknowledged version {version} before the pass, the pass saw "
                    f"{seen.get(k)} in {len(records)} records up to offset {last}, and no newer "
                    f"version was acknowledged after it")
            passes += 1
    finally:
        stop.set()
        t.join(30)
    assert not errors, errors[:3]
    assert passes >= 3
    compactions = broker.log_path.read_text(errors="replace").count("log compacted")
    assert compactions >= 2, f"the cleaner compacted {compactions} times during production"
