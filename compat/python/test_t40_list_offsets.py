"""ListOffsets: earliest, latest, by timestamp, max timestamp."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import TopicPartition

from kclients import (KPTopicPartition, ck_admin, ck_consumer, ck_create_topic, ck_producer,
                      kp_consumer, kp_producer)

# CreateTime of the first record (an hour ago, well inside any retention), then one
# second apart.
BASE_TS = (int(time.time()) - 3600) * 1000
N = 100


def produce_timestamped(broker, topic, client="confluent", pad=0):
    """N records with CreateTime BASE_TS + i*1000, in 10 separate batches so that the
    lookup has to go through the time index across batches; `pad` bytes per value make
    the log span several segments."""
    filler = b"p" * pad
    if client == "confluent":
        p = ck_producer(broker, **{"linger.ms": 0})
        for chunk in range(10):
            for i in range(chunk * 10, chunk * 10 + 10):
                p.produce(topic, value=f"t{i}".encode() + filler, partition=0,
                          timestamp=BASE_TS + i * 1000)
            assert p.flush(30) == 0
    else:
        p = kp_producer(broker, linger_ms=0)
        try:
            for chunk in range(10):
                futs = [p.send(topic, value=f"t{i}".encode() + filler, partition=0,
                               timestamp_ms=BASE_TS + i * 1000)
                        for i in range(chunk * 10, chunk * 10 + 10)]
                p.flush(30)
                for f in futs:
                    f.get(30)
        finally:
            p.close(timeout=10)


# (query timestamp, expected offset; None = no record at or after it)
TS_CASES = [
    (0, 0),
    (BASE_TS, 0),
    (BASE_TS + 1, 1),
    (BASE_TS + 50 * 1000, 50),
    (BASE_TS + 50 * 1000 + 500, 51),
    (BASE_TS + 99 * 1000, 99),
    (BASE_TS + 99 * 1000 + 1, None),
]


# Kafka 4's minimum log.segment.bytes is 1 MiB (KIP-1030); 100 records of ~40 KB then
# fill four segments.
SEGMENT_CASES = [(None, 0), ("1048576", 40_000)]


@pytest.mark.parametrize("segment_bytes,pad", SEGMENT_CASES)
def test_offsets_for_times_confluent(broker_factory, topic, segment_bytes, pad):
    over = {"log.segment.bytes": segment_bytes} if segment_bytes else {}
    b = broker_factory(**over)
    ck_create_topic(b, topic)
    produce_timestamped(b, topic, pad=pad)
    if segment_bytes:
        assert len(list((b.data_dir / f"{topic}-0").glob("*.log"))) >= 3, "segments did not roll"
    c = ck_consumer(b)
    try:
        for ts, want in TS_CASES:
            [tp] = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=15)
            assert tp.error is None, tp.error
            # librdkafka reports "no such record" as offset -1 (OFFSET_END)
            assert tp.offset == (-1 if want is None else want), f"timestamp {ts}"
    finally:
        c.close()


@pytest.mark.parametrize("segment_bytes,pad", SEGMENT_CASES)
def test_offsets_for_times_kafka_python(broker_factory, topic, segment_bytes, pad):
    over = {"log.segment.bytes": segment_bytes} if segment_bytes else {}
    b = broker_factory(**over)
    ck_create_topic(b, topic)
    produce_timestamped(b, topic, client="kafka-python", pad=pad)
    c = kp_consumer(b)
    tp = KPTopicPartition(topic, 0)
    try:
        for ts, want in TS_CASES:
            res = c.offsets_for_times({tp: ts}, timeout_ms=15000)
            if want is None:
                assert res[tp] is None, f"timestamp {ts}: {res[tp]}"
            else:
                assert res[tp] is not None and res[tp].offset == want, f"timestamp {ts}: {res[tp]}"
                assert res[tp].timestamp == BASE_TS + want * 1000
    finally:
        c.close()


def test_watermarks_confluent(broker, topic):
    ck_create_topic(broker, topic, partitions=2)
    c = ck_consumer(broker)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=15, cached=False) == (0, 0)
        produce_timestamped(broker, topic)
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=15, cached=False) == (0, N)
        assert c.get_watermark_offsets(TopicPartition(topic, 1), timeout=15, cached=False) == (0, 0)
    finally:
        c.close()


def test_beginning_end_offsets_kafka_python(broker, topic):
    ck_create_topic(broker, topic, partitions=2)
    c = kp_consumer(broker)
    tps = [KPTopicPartition(topic, 0), KPTopicPartition(topic, 1)]
    try:
        assert c.end_offsets(tps) == {tps[0]: 0, tps[1]: 0}
        produce_timestamped(broker, topic, client="kafka-python")
        assert c.beginning_offsets(tps) == {tps[0]: 0, tps[1]: 0}
        assert c.end_offsets(tps) == {tps[0]: N, tps[1]: 0}
    finally:
        c.close()


def test_admin_list_offsets_confluent(broker, topic):
    from confluent_kafka.admin import OffsetSpec
    ck_create_topic(broker, topic)
    produce_timestamped(broker, topic)
    # one more record with an older timestamp: max timestamp must still point at offset 99
    p = ck_producer(broker)
    p.produce(topic, value=b"old", partition=0, timestamp=BASE_TS - 5000)
    assert p.flush(30) == 0
    admin = ck_admin(broker)
    tp = TopicPartition(topic, 0)
    specs = {
        "earliest": (OffsetSpec.earliest(), 0),
        "latest": (OffsetSpec.latest(), N + 1),
        "max_timestamp": (OffsetSpec.max_timestamp(), 99),
        "for_timestamp": (OffsetSpec.for_timestamp(BASE_TS + 42 * 1000), 42),
    }
    for name, (spec, want) in specs.items():
        res = admin.list_offsets({tp: spec}, request_timeout=15)
        info = res[tp].result(15)
        assert info.offset == want, f"{name}: {info}"
        if name == "max_timestamp":
            assert info.timestamp == BASE_TS + 99 * 1000
