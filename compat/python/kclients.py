"""Thin helpers around confluent-kafka (librdkafka) and kafka-python used by the tests.

Consumers never join a group: they `assign()` explicit partitions with auto-commit
off, because group coordination is not part of the broker yet.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kafka
from kafka.structs import TopicPartition as KPTopicPartition

CODECS = ["gzip", "snappy", "lz4", "zstd"]


@dataclass
class Rec:
    """A record as either client returned it, normalised for comparisons."""
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    timestamp: int = -1


# ---------------------------------------------------------------- confluent-kafka

def ck_conf(broker, **extra) -> dict:
    conf = {"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 20000}
    conf.update(extra)
    return conf


def ck_producer(broker, **extra) -> Producer:
    return Producer(ck_conf(broker, **extra))


def ck_admin(broker, **extra) -> AdminClient:
    return AdminClient(ck_conf(broker, **extra))


def ck_create_topic(broker, name: str, partitions: int = 1, config: dict | None = None,
                    timeout: float = 20.0) -> None:
    admin = ck_admin(broker)
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions,
                                            replication_factor=1, config=config or {})],
                                  operation_timeout=timeout, request_timeout=timeout)
    futures[name].result(timeout)


def ck_produce(producer: Producer, topic: str, records, partition: int | None = None,
               timeout: float = 60.0, raise_on_error: bool = True):
    """Produce (key, value, headers) tuples; return [(err, partition, offset)] in send order."""
    results: list = [None] * len(records)

    def cb(idx):
        def on_delivery(err, msg):
            results[idx] = (err, msg.partition(), msg.offset())
        return on_delivery

    for i, rec in enumerate(records):
        key, value = rec[0], rec[1]
        headers = rec[2] if len(rec) > 2 else None
        kwargs = {"key": key, "value": value, "on_delivery": cb(i)}
        if headers is not None:
            kwargs["headers"] = headers
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout}s"
    missing = [i for i, r in enumerate(results) if r is None]
    assert not missing, f"no delivery report for {len(missing)} messages"
    if raise_on_error:
        errors = [(i, r[0]) for i, r in enumerate(results) if r[0] is not None]
        assert not errors, f"{len(errors)} delivery errors, first: {errors[:3]}"
    return results


def ck_consumer(broker, **extra) -> Consumer:
    # confluent-kafka refuses to create a Consumer without group.id; the group is never
    # joined (no subscribe, no commits), only assign() is used.
    conf = ck_conf(broker, **{
        "group.id": "kavka-compat-" + uuid.uuid4().hex[:8],
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
    })
    conf.update(extra)
    return Consumer(conf)


def ck_consume(broker, topic: str, partition: int, count: int, start: int = 0,
               timeout: float = 30.0, consumer: Consumer | None = None, **extra) -> list[Rec]:
    """Read `count` records from one partition starting at `start` with assign()."""
    own = consumer is None
    c = consumer or ck_consumer(broker, **extra)
    out: list[Rec] = []
    try:
        c.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for m in c.consume(num_messages=min(10000, count - len(out)), timeout=0.5):
                if m.error():
                    raise KafkaException(m.error())
                hdrs = [(k, v) for k, v in (m.headers() or [])]
                out.append(Rec(m.partition(), m.offset(), m.key(), m.value(), hdrs,
                               m.timestamp()[1]))
        assert len(out) >= count, (
            f"confluent consumer read {len(out)} of {count} records from {topic}/{partition} "
            f"starting at {start} within {timeout}s")
    finally:
        if own:
            c.close()
    return out


def ck_read_partition(broker, topic: str, partition: int, timeout: float = 60.0) -> list[Rec]:
    """Everything in one partition: [log start offset, high watermark)."""
    c = ck_consumer(broker)
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=20,
                                         cached=False)
        if hi <= lo:
            return []
        recs = ck_consume(broker, topic, partition, hi - lo, start=lo, timeout=timeout, consumer=c)
    finally:
        c.close()
    return recs[:hi - lo]


# ---------------------------------------------------------------- kafka-python

def kp_producer(broker, **extra) -> kafka.KafkaProducer:
    conf = {"bootstrap_servers": broker.bootstrap, "request_timeout_ms": 20000}
    conf.update(extra)
    return kafka.KafkaProducer(**conf)


def kp_produce(producer: kafka.KafkaProducer, topic: str, records, partition: int | None = None,
               timeout: float = 60.0):
    """Produce (key, value, headers) tuples; return [RecordMetadata] in send order."""
    futures = []
    for rec in records:
        key, value = rec[0], rec[1]
        headers = rec[2] if len(rec) > 2 else None
        futures.append(producer.send(topic, key=key, value=value, headers=headers,
                                     partition=partition))
    producer.flush(timeout=timeout)
    return [f.get(timeout=timeout) for f in futures]


def kp_admin(broker, **extra) -> kafka.KafkaAdminClient:
    conf = {"bootstrap_servers": broker.bootstrap, "request_timeout_ms": 20000}
    conf.update(extra)
    return kafka.KafkaAdminClient(**conf)


def kp_consumer(broker, **extra) -> kafka.KafkaConsumer:
    conf = {"bootstrap_servers": broker.bootstrap, "group_id": None,
            "enable_auto_commit": False, "auto_offset_reset": "earliest",
            "request_timeout_ms": 20000}
    conf.update(extra)
    return kafka.KafkaConsumer(**conf)


def kp_consume(broker, topic: str, partition: int, count: int, start: int = 0,
               timeout: float = 30.0, consumer: kafka.KafkaConsumer | None = None,
               **extra) -> list[Rec]:
    own = consumer is None
    c = consumer or kp_consumer(broker, **extra)
    out: list[Rec] = []
    try:
        tp = KPTopicPartition(topic, partition)
        c.assign([tp])
        c.seek(tp, start)
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            batch = c.poll(timeout_ms=500, max_records=10000)
            for _tp, msgs in batch.items():
                for m in msgs:
                    hdrs = [(k, v) for k, v in (m.headers or [])]
                    out.append(Rec(m.partition, m.offset, m.key, m.value, hdrs, m.timestamp))
        assert len(out) >= count, (
            f"kafka-python consumer read {len(out)} of {count} records from {topic}/{partition} "
            f"starting at {start} within {timeout}s")
    finally:
        if own:
            c.close()
    return out


__all__ = [
    "CODECS", "Rec", "KafkaError", "KafkaException", "TopicPartition", "KPTopicPartition",
    "ck_conf", "ck_producer", "ck_admin", "ck_create_topic", "ck_produce", "ck_consumer",
    "ck_consume", "ck_read_partition", "kp_producer", "kp_produce", "kp_admin", "kp_consumer", "kp_consume",
]
