"""Produce and consume through confluent-kafka (librdkafka) and kafka-python.

Every combination reads back exactly what was written, at the offsets the producer
was told, in order.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from kclients import (CODECS, ck_consume, ck_create_topic, ck_produce, ck_producer, kp_consume,
                      kp_produce, kp_producer)

CLIENTS = ["confluent", "kafka-python"]


def produce(client, broker, topic, records, partition=None, **conf):
    """Produce with either client; returns [(partition, offset)] in send order."""
    if client == "confluent":
        p = ck_producer(broker, **conf)
        res = ck_produce(p, topic, records, partition=partition)
        return [(r[1], r[2]) for r in res]
    p = kp_producer(broker, **conf)
    try:
        md = kp_produce(p, topic, records, partition=partition)
    finally:
        p.close(timeout=10)
    return [(m.partition, m.offset) for m in md]


def consume(client, broker, topic, partition, count, start=0, **conf):
    if client == "confluent":
        return ck_consume(broker, topic, partition, count, start=start, **conf)
    return kp_consume(broker, topic, partition, count, start=start, **conf)


def keyed_records(n):
    recs = []
    for i in range(n):
        key = None if i % 10 == 3 else f"key-{i}".encode()
        value = {4: b"", 5: None}.get(i % 10, f"value-{i}-".encode() + os.urandom(8).hex().encode())
        headers = [("h1", f"v{i}".encode()), ("dup", b"a"), ("dup", b"b"), ("empty", b""),
                   ("bin", bytes(range(256)))]
        recs.append((key, value, headers))
    return recs


def assert_same(records, got, offsets, partition=0):
    assert len(got) == len(records)
    for i, (rec, g) in enumerate(zip(records, got)):
        assert g.partition == partition, f"record {i}"
        assert g.offset == offsets[i], f"record {i}: read at {g.offset}, acknowledged at {offsets[i]}"
        assert g.key == rec[0], f"record {i}: key"
        assert g.value == rec[1], f"record {i}: value"
        if len(rec) > 2:
            assert g.headers == rec[2], f"record {i}: headers"


@pytest.mark.parametrize("producer,consumer", list(itertools.product(CLIENTS, CLIENTS)))
def test_keys_headers_roundtrip(broker, topic, producer, consumer):
    ck_create_topic(broker, topic, partitions=1)
    records = keyed_records(200)
    acks = produce(producer, broker, topic, records, partition=0)
    offsets = [o for _, o in acks]
    assert offsets == list(range(200)), "offsets of a fresh partition are 0..n-1 in send order"
    got = consume(consumer, broker, topic, 0, 200)
    assert_same(records, got, offsets)


@pytest.mark.parametrize("client", CLIENTS)
def test_consume_from_middle(broker, topic, client):
    ck_create_topic(broker, topic)
    records = [(None, f"m{i}".encode()) for i in range(100)]
    produce("confluent", broker, topic, records, partition=0)
    got = consume(client, broker, topic, 0, 50, start=50)
    assert [g.offset for g in got[:50]] == list(range(50, 100))
    assert [g.value for g in got[:50]] == [r[1] for r in records[50:]]


def log_bytes(broker, topic, partition=0) -> int:
    """Bytes in the partition's segment files (the layout the issue specifies)."""
    pdir = Path(broker.data_dir) / f"{topic}-{partition}"
    assert pdir.is_dir(), f"partition directory {pdir} missing; data dir has {os.listdir(broker.data_dir)}"
    return sum(f.stat().st_size for f in pdir.glob("*.log"))


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", CLIENTS)
def test_compression(broker, topic, client, codec):
    ck_create_topic(broker, topic)
    n = 2000
    # Very compressible values, so a broker that stores what it received keeps the log
    # far smaller than the raw data; one that silently decompresses (or a client that
    # silently stopped compressing, KAFKA-18659) does not.
    records = [(f"k{i}".encode(), (f"record {i:06d} " + "abcdefgh" * 60).encode(),
                [("codec", codec.encode())]) for i in range(n)]
    raw = sum(len(r[1]) for r in records)
    if client == "confluent":
        conf = {"compression.type": codec, "linger.ms": 50, "batch.num.messages": 1000}
    else:
        conf = {"compression_type": codec, "linger_ms": 50, "batch_size": 256 * 1024}
    acks = produce(client, broker, topic, records, partition=0, **conf)
    assert [o for _, o in acks] == list(range(n))
    stored = log_bytes(broker, topic)
    assert stored < raw / 4, f"{codec}: log holds {stored} bytes for {raw} raw bytes: not compressed"
    # Both clients must decode what either client compressed.
    for reader in CLIENTS:
        got = consume(reader, broker, topic, 0, n)
        assert_same(records, got, list(range(n)))


@pytest.mark.parametrize("client", CLIENTS)
def test_large_batch_5000_records(broker, topic, client):
    ck_create_topic(broker, topic)
    n = 5000
    records = [(f"k{i}".encode(), os.urandom(50 + i % 900)) for i in range(n)]
    if client == "confluent":
        conf = {"linger.ms": 100, "batch.num.messages": 10000, "batch.size": 1000000}
    else:
        conf = {"linger_ms": 100, "batch_size": 1000000}
    acks = produce(client, broker, topic, records, partition=0, **conf)
    assert [o for _, o in acks] == list(range(n))
    for reader in CLIENTS:
        got = consume(reader, broker, topic, 0, n, timeout=60)
        assert_same(records, got, list(range(n)))


@pytest.mark.parametrize("client", CLIENTS)
def test_records_near_1mb(broker, topic, client):
    ck_create_topic(broker, topic)
    # Default broker message.max.bytes is 1048588 (1 MiB + 12); one 1,040,000-byte
    # record plus batch overhead fits, as it does on Kafka.
    size = 1_040_000
    records = [(f"big{i}".encode(), os.urandom(size)) for i in range(5)]
    if client == "confluent":
        conf = {"message.max.bytes": 1048588}
    else:
        conf = {"max_request_size": 1048588}
    acks = produce(client, broker, topic, records, partition=0, **conf)
    assert [o for _, o in acks] == list(range(5))
    got = consume("confluent", broker, topic, 0, 5, **{"fetch.max.bytes": 52428800})
    assert_same(records, got, list(range(5)))
    got = consume("kafka-python", broker, topic, 0, 5)
    assert_same(records, got, list(range(5)))


@pytest.mark.parametrize("acks", ["0", "1", "all"])
@pytest.mark.parametrize("client", CLIENTS)
def test_acks(broker, topic, client, acks):
    ck_create_topic(broker, topic)
    n = 300
    records = [(f"k{i}".encode(), f"acks={acks} {i}".encode()) for i in range(n)]
    if client == "confluent":
        conf = {"acks": acks, "enable.idempotence": acks == "all"}
    else:
        conf = {"acks": {"0": 0, "1": 1, "all": "all"}[acks], "enable_idempotence": acks == "all"}
    res = produce(client, broker, topic, records, partition=0, **conf)
    if acks != "0":
        assert [o for _, o in res] == list(range(n))
    # acks=0 gets no offsets back, but the broker must still have appended everything.
    got = consume("confluent", broker, topic, 0, n)
    assert_same(records, got, list(range(n)))


@pytest.mark.parametrize("client", CLIENTS)
def test_multiple_partitions_keyed(broker, topic, client):
    ck_create_topic(broker, topic, partitions=4)
    n = 400
    records = [(f"key-{i % 37}".encode(), f"v{i}".encode()) for i in range(n)]
    acks = produce(client, broker, topic, records)
    by_part: dict[int, list[tuple[int, tuple]]] = {}
    key_part: dict[bytes, int] = {}
    for rec, (p, o) in zip(records, acks):
        assert 0 <= p < 4
        # the same key always lands in the same partition
        assert key_part.setdefault(rec[0], p) == p
        by_part.setdefault(p, []).append((o, rec))
    assert len(by_part) > 1, "37 keys all hashed to one partition"
    for p, items in by_part.items():
        offsets = [o for o, _ in items]
        assert offsets == list(range(len(items))), f"partition {p} offsets not contiguous from 0"
        got = consume(client, broker, topic, p, len(items))
        assert [(g.key, g.value) for g in got] == [(r[0], r[1]) for _, r in items]


def test_offset_out_of_range_confluent(broker, topic):
    from confluent_kafka import KafkaError
    from kclients import ck_consumer, TopicPartition
    ck_create_topic(broker, topic)
    produce("confluent", broker, topic, [(None, b"x")] * 10, partition=0)
    # auto.offset.reset=error surfaces the broker's OFFSET_OUT_OF_RANGE to the application.
    c = ck_consumer(broker, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 1000)])
        err = None
        for _ in range(40):
            m = c.poll(0.5)
            if m is not None and m.error():
                err = m.error()
                break
        assert err is not None, "no error for a fetch at offset 1000 of a 10-record partition"
        assert err.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE), err
    finally:
        c.close()
    # with auto.offset.reset=earliest the consumer recovers to offset 0
    got = ck_consume(broker, topic, 0, 10, start=1000)
    assert [g.offset for g in got] == list(range(10))


def test_offset_out_of_range_kafka_python(broker, topic):
    import kafka.errors as Errors
    from kclients import kp_consumer, KPTopicPartition
    ck_create_topic(broker, topic)
    produce("confluent", broker, topic, [(None, b"x")] * 10, partition=0)
    c = kp_consumer(broker, auto_offset_reset="none")
    try:
        tp = KPTopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 1000)
        with pytest.raises(Errors.OffsetOutOfRangeError):
            for _ in range(40):
                c.poll(timeout_ms=500)
    finally:
        c.close()


def test_empty_partition_long_poll(broker, topic):
    """A fetch on an empty partition waits (max_wait_ms) and then returns nothing."""
    import time
    from kclients import ck_consumer, TopicPartition
    ck_create_topic(broker, topic)
    c = ck_consumer(broker, **{"fetch.wait.max.ms": 200})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        t0 = time.monotonic()
        msgs = c.consume(num_messages=10, timeout=2.0)
        assert [m for m in msgs if not m.error()] == []
        assert time.monotonic() - t0 >= 1.5
        # a record produced now is delivered to the waiting consumer
        produce("confluent", broker, topic, [(b"k", b"late")], partition=0)
        got = []
        deadline = time.monotonic() + 15
        while not got and time.monotonic() < deadline:
            got = [m for m in c.consume(num_messages=10, timeout=0.5) if not m.error()]
        assert [m.value() for m in got] == [b"late"]
    finally:
        c.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_consume_many_partitions_while_producing(broker, topic, client):
    """One consumer assigned to 6 partitions while data keeps arriving in rounds: with
    kafka-python this exercises incremental fetch sessions (KIP-227) as partitions
    change between fetches; with small fetch limits every fetch is partial."""
    import time
    from kclients import KPTopicPartition, TopicPartition, ck_consumer, kp_consumer
    parts = 6
    ck_create_topic(broker, topic, partitions=parts)
    p = ck_producer(broker, **{"linger.ms": 5})
    expected: dict[int, list[bytes]] = {i: [] for i in range(parts)}
    got: dict[int, list[tuple[int, bytes]]] = {i: [] for i in range(parts)}
    if client == "confluent":
        c = ck_consumer(broker, **{"max.partition.fetch.bytes": 2048, "fetch.max.bytes": 1 << 20,
                                   "fetch.wait.max.ms": 100})
        c.assign([TopicPartition(topic, i, 0) for i in range(parts)])

        def poll():
            for m in c.consume(num_messages=1000, timeout=0.2):
                assert not m.error(), m.error()
                got[m.partition()].append((m.offset(), m.value()))
    else:
        c = kp_consumer(broker, max_partition_fetch_bytes=2048, fetch_max_wait_ms=100)
        tps = [KPTopicPartition(topic, i) for i in range(parts)]
        c.assign(tps)
        for tp in tps:
            c.seek(tp, 0)

        def poll():
            for _tp, msgs in c.poll(timeout_ms=200, max_records=1000).items():
                for m in msgs:
                    got[m.partition].append((m.offset, m.value))
    try:
        for rnd in range(10):
            # each round writes to a different subset of partitions
            for i in range(parts):
                if (i + rnd) % 3 != 0:
                    for j in range(20):
                        v = f"r{rnd}-p{i}-{j}".encode() + b"." * 300
                        expected[i].append(v)
                        p.produce(topic, value=v, partition=i)
            assert p.flush(30) == 0
            poll()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
                len(got[i]) < len(expected[i]) for i in range(parts)):
            poll()
    finally:
        c.close()
    for i in range(parts):
        assert [o for o, _ in got[i]] == list(range(len(expected[i]))), f"partition {i} offsets"
        assert [v for _, v in got[i]] == expected[i], f"partition {i} values"


def test_log_append_time_topic(broker, topic):
    """message.timestamp.type=LogAppendTime: consumers see the broker's append time."""
    import time
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
    from kclients import ck_consumer, TopicPartition
    ck_create_topic(broker, topic, config={"message.timestamp.type": "LogAppendTime"})
    t0 = int(time.time() * 1000)
    p = ck_producer(broker)
    for i in range(5):
        p.produce(topic, value=f"lat{i}".encode(), partition=0, timestamp=1_000_000_000_000 + i)
    assert p.flush(30) == 0
    t1 = int(time.time() * 1000)
    c = ck_consumer(broker)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        msgs = []
        deadline = time.monotonic() + 20
        while len(msgs) < 5 and time.monotonic() < deadline:
            msgs += [m for m in c.consume(10, 0.5) if not m.error()]
    finally:
        c.close()
    assert len(msgs) == 5
    for m in msgs:
        ts_type, ts = m.timestamp()
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME, m.timestamp()
        assert t0 - 1000 <= ts <= t1 + 1000, (ts, t0, t1)
    got = kp_consume(broker, topic, 0, 5)
    assert all(t0 - 1000 <= g.timestamp <= t1 + 1000 for g in got)
