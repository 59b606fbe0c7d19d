"""Idempotent producers: InitProducerId, sequence numbers, deduplication of retries."""

from __future__ import annotations

import time

import pytest

from kavka_harness import ResponseDroppingProxy, free_port
from kclients import ck_create_topic, ck_read_partition, ck_produce, ck_producer, kp_produce, kp_producer

CLIENTS = ["confluent", "kafka-python"]


def idempotent_producer(client, bootstrap_broker, **extra):
    if client == "confluent":
        conf = {"enable.idempotence": True, "acks": "all", "linger.ms": 5,
                "max.in.flight.requests.per.connection": 5, "message.timeout.ms": 60000,
                "retry.backoff.ms": 50}
        conf.update(extra)
        return ck_producer(bootstrap_broker, **conf)
    conf = {"enable_idempotence": True, "acks": "all", "linger_ms": 5,
            "max_in_flight_requests_per_connection": 5, "retry_backoff_ms": 50,
            "delivery_timeout_ms": 60000}
    conf.update(extra)
    return kp_producer(bootstrap_broker, **conf)


def produce_with(client, producer, topic, records, partition=0):
    if client == "confluent":
        return [r[2] for r in ck_produce(producer, topic, records, partition=partition)]
    return [m.offset for m in kp_produce(producer, topic, records, partition=partition)]


def close(client, producer):
    if client == "kafka-python":
        producer.close(timeout=10)


def assert_exactly_once(broker, topic, values, offsets):
    """The partition holds each value exactly once, at the offset acknowledged for it."""
    read = [g.value for g in ck_read_partition(broker, topic, 0)]
    dups = {v for v in read if read.count(v) > 1}
    assert not dups, f"{len(dups)} values appended more than once, e.g. {sorted(dups)[:3]}"
    assert len(read) == len(values), f"log has {len(read)} records, {len(values)} were produced"
    assert offsets == list(range(len(values))), "acknowledged offsets not contiguous from 0"
    assert read == values, "records not at their acknowledged offsets"


@pytest.mark.parametrize("client", CLIENTS)
def test_idempotent_produce(broker, topic, client):
    ck_create_topic(broker, topic)
    p = idempotent_producer(client, broker)
    values = [f"idem-{i}".encode() for i in range(3000)]
    try:
        offsets = produce_with(client, p, topic, [(None, v) for v in values])
    finally:
        close(client, p)
    assert_exactly_once(broker, topic, values, offsets)


@pytest.mark.parametrize("client", CLIENTS)
def test_idempotent_retries_are_deduplicated(broker_factory, topic, client):
    """Produce responses are lost after the broker appended the batch; the client retries
    the same (producer id, epoch, sequence) and the broker must not append it again."""
    broker_port = free_port()
    proxy = ResponseDroppingProxy(target_port=broker_port, drop=0)
    try:
        b = broker_factory(port=broker_port, **{
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"})

        class ViaProxy:
            bootstrap = f"127.0.0.1:{proxy.port}"

        ck_create_topic(b, topic)
        p = idempotent_producer(client, ViaProxy)
        values = [f"retry-{i}".encode() for i in range(600)]
        offsets = []
        try:
            # Warm up (InitProducerId, metadata) before losing responses.
            offsets += produce_with(client, p, topic, [(None, v) for v in values[:100]])
            for chunk in range(1, 6):
                proxy.drop_remaining = 1
                part = values[chunk * 100:(chunk + 1) * 100]
                offsets += produce_with(client, p, topic, [(None, v) for v in part])
        finally:
            close(client, p)
        assert proxy.dropped >= 5, f"only {proxy.dropped} produce responses were dropped"
        assert_exactly_once(b, topic, values, offsets)
    finally:
        proxy.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_idempotent_producer_across_clean_restart(broker, topic, client):
    """Producer state survives a restart: the same producer keeps producing without
    sequence errors, and nothing is duplicated."""
    ck_create_topic(broker, topic)
    p = idempotent_producer(client, broker)
    values = [f"restart-{i}".encode() for i in range(400)]
    try:
        offsets = produce_with(client, p, topic, [(None, v) for v in values[:200]])
        assert broker.stop() == 0, "SIGTERM did not give a clean exit (code 0)"
        broker.start()
        time.sleep(0.5)
        offsets += produce_with(client, p, topic, [(None, v) for v in values[200:]])
    finally:
        close(client, p)
    assert_exactly_once(broker, topic, values, offsets)


def test_sequence_checks_raw(broker, topic):
    """Raw protocol: a duplicate of a recent batch is answered with its original offset and
    not appended; a batch whose sequence skips ahead is refused with
    OUT_OF_ORDER_SEQUENCE_NUMBER (45); only magic-2 batches with a good CRC are taken."""
    from rawkafka import Conn, init_producer_id, produce_v3, record_batch

    ck_create_topic(broker, topic)
    with Conn(broker.port) as conn:
        err, pid, epoch = init_producer_id(conn)
        assert err == 0 and pid >= 0 and epoch >= 0, (err, pid, epoch)

        def produce(seq, n):
            values = [f"s{seq + i}".encode() for i in range(n)]
            return produce_v3(conn, topic, 0, record_batch(values, pid, epoch, seq))

        assert produce(0, 3) == (0, 0)
        assert produce(3, 2) == (0, 3)
        assert produce(3, 2) == (0, 3), "retry of the last batch must return its original offset"
        assert produce(0, 3) == (0, 0), "retry of an earlier batch (within the last 5)"
        assert produce(10, 1)[0] == 45, "sequence gap must be OUT_OF_ORDER_SEQUENCE_NUMBER"
        assert produce(5, 1) == (0, 5), "the in-order next batch is still accepted"
        bad = bytearray(record_batch([b"corrupt"]))
        bad[-1] ^= 0xFF
        assert produce_v3(conn, topic, 0, bytes(bad))[0] == 2, "bad CRC must be CORRUPT_MESSAGE"
    assert [g.value for g in ck_read_partition(broker, topic, 0)] == [
        b"s0", b"s1", b"s2", b"s3", b"s4", b"s5"]
