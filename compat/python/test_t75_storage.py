"""Storage behaviour visible from outside: segment rolling by size and time, timestamp
types, the on-disk layout the issue specifies (<topic>-<partition>/<base offset>.log)."""

from __future__ import annotations

import time

from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME

from kclients import ck_consume, ck_create_topic, ck_produce, ck_producer, ck_read_partition


def segment_files(broker, topic, partition=0):
    return sorted((broker.data_dir / f"{topic}-{partition}").glob("*.log"))


def test_segments_roll_on_size_with_base_offset_names(broker_factory, topic):
    b = broker_factory(**{"log.segment.bytes": str(1024 * 1024)})
    ck_create_topic(b, topic)
    p = ck_producer(b, **{"linger.ms": 20})
    ck_produce(p, topic, [(None, b"s" * 10_000) for _ in range(400)], partition=0)  # ~4 MB
    segs = segment_files(b, topic)
    assert len(segs) >= 3, f"4 MB in 1 MiB segments gave {len(segs)} segment files"
    bases = [int(s.stem) for s in segs]
    assert bases[0] == 0 and bases == sorted(bases) and len(set(bases)) == len(bases)
    assert all(len(s.stem) == 20 for s in segs), "Kafka names segments by 20-digit base offset"
    assert len(ck_read_partition(b, topic, 0)) == 400


def test_segments_roll_on_time(broker_factory, topic):
    b = broker_factory(**{"log.roll.ms": "1000"})
    ck_create_topic(b, topic)
    p = ck_producer(b)
    ck_produce(p, topic, [(None, b"first")], partition=0)
    time.sleep(1.5)
    ck_produce(p, topic, [(None, b"second")], partition=0)
    segs = segment_files(b, topic)
    assert len(segs) >= 2, f"log.roll.ms=1000 did not roll: {[s.name for s in segs]}"
    assert [r.value for r in ck_read_partition(b, topic, 0)] == [b"first", b"second"]


def test_broker_level_log_append_time(broker_factory, topic):
    b = broker_factory(**{"log.message.timestamp.type": "LogAppendTime"})
    ck_create_topic(b, topic)
    t0 = int(time.time() * 1000)
    p = ck_producer(b)
    p.produce(topic, value=b"x", partition=0, timestamp=1_000_000_000_000)
    assert p.flush(20) == 0
    [r] = ck_consume(b, topic, 0, 1)
    assert r.timestamp >= t0 - 1000, "broker-level LogAppendTime not applied"


def test_create_time_is_kept(broker, topic):
    ck_create_topic(broker, topic)
    p = ck_producer(broker)
    ts = int(time.time() * 1000) - 3_600_000
    p.produce(topic, value=b"x", partition=0, timestamp=ts)
    assert p.flush(20) == 0
    from kclients import ck_consumer, TopicPartition
    c = ck_consumer(broker)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        msgs = []
        deadline = time.monotonic() + 20
        while not msgs and time.monotonic() < deadline:
            msgs = [m for m in c.consume(1, 0.5) if not m.error()]
    finally:
        c.close()
    assert msgs and msgs[0].timestamp() == (TIMESTAMP_CREATE_TIME, ts)
    assert TIMESTAMP_LOG_APPEND_TIME != TIMESTAMP_CREATE_TIME
