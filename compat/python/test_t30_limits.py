"""Size limits: message.max.bytes (broker) and max.message.bytes (topic) -> MESSAGE_TOO_LARGE."""

from __future__ import annotations

import os

import pytest
from confluent_kafka import KafkaError

import kafka.errors as Errors
from kclients import ck_consume, ck_create_topic, ck_produce, ck_producer, kp_produce, kp_producer


def too_large_confluent(broker, topic, size):
    # Client-side limit stays at its 1 MB default, so the broker is the one refusing.
    p = ck_producer(broker, **{"message.timeout.ms": 20000})
    res = ck_produce(p, topic, [(b"big", os.urandom(size))], partition=0, raise_on_error=False)
    err = res[0][0]
    assert err is not None, f"a {size}-byte record was accepted at offset {res[0][2]}"
    assert err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    # The connection and producer stay usable.
    ok = ck_produce(p, topic, [(b"small", b"fits")], partition=0)
    return ok[0][2]


def too_large_kafka_python(broker, topic, size):
    p = kp_producer(broker, enable_idempotence=False, acks=1, retries=0)
    try:
        with pytest.raises(Errors.MessageSizeTooLargeError):
            kp_produce(p, topic, [(b"big", os.urandom(size))], partition=0)
        return kp_produce(p, topic, [(b"small", b"fits")], partition=0)[0].offset
    finally:
        p.close(timeout=10)


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_message_too_large_broker_limit(broker_factory, topic, client):
    b = broker_factory(**{"message.max.bytes": "10000"})
    ck_create_topic(b, topic)
    fn = too_large_confluent if client == "confluent" else too_large_kafka_python
    offset = fn(b, topic, 20000)
    assert offset == 0, "the refused record must not take an offset"
    got = ck_consume(b, topic, 0, 1)
    assert got[0].value == b"fits"


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_message_too_large_topic_limit(broker, topic, client):
    ck_create_topic(broker, topic, config={"max.message.bytes": "5000"})
    fn = too_large_confluent if client == "confluent" else too_large_kafka_python
    assert fn(broker, topic, 8000) == 0


def test_record_just_under_limit_is_accepted(broker_factory, topic):
    b = broker_factory(**{"message.max.bytes": "10000"})
    ck_create_topic(b, topic)
    p = ck_producer(b)
    # 9000-byte value + record and batch overhead (~80 bytes) is under 10000.
    res = ck_produce(p, topic, [(b"k", os.urandom(9000))], partition=0)
    assert res[0][2] == 0
