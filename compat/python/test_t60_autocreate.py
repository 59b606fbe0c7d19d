"""Topic auto-creation on Produce/Metadata (auto.create.topics.enable) and the clients'
allow_auto_topic_creation flag in Metadata requests."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, KafkaException

from kclients import (ck_admin, ck_consume, ck_consumer, ck_produce, ck_producer, kp_consumer,
                      kp_produce, kp_producer)


def topic_names(broker) -> set[str]:
    return set(ck_admin(broker).list_topics(timeout=20).topics)


def test_autocreate_on_produce_confluent(broker_factory, topic):
    b = broker_factory(**{"num.partitions": "3"})
    p = ck_producer(b)
    res = ck_produce(p, topic, [(f"k{i}".encode(), b"v") for i in range(30)])
    assert {r[1] for r in res} <= {0, 1, 2}
    md = ck_admin(b).list_topics(timeout=20).topics[topic]
    assert sorted(md.partitions) == [0, 1, 2], "auto-created topic must get num.partitions"


def test_autocreate_on_produce_kafka_python(broker, topic):
    p = kp_producer(broker)
    try:
        md = kp_produce(p, topic, [(b"k", b"auto")])
    finally:
        p.close(timeout=10)
    assert md[0].offset == 0
    assert topic in topic_names(broker)
    assert ck_consume(broker, topic, 0, 1)[0].value == b"auto"


def test_metadata_request_autocreates_for_producer(broker, topic):
    """librdkafka producers send allow_auto_topic_creation=true in Metadata."""
    p = ck_producer(broker)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            md = p.list_topics(topic=topic, timeout=10)
        except KafkaException:
            time.sleep(0.2)
            continue
        t = md.topics.get(topic)
        if t is not None and t.error is None and t.partitions:
            break
        time.sleep(0.2)
    assert topic in topic_names(broker)


def test_consumer_metadata_does_not_autocreate(broker, topic):
    """allow.auto.create.topics=false (librdkafka consumer default) must be respected."""
    c = ck_consumer(broker, **{"allow.auto.create.topics": False})
    try:
        md = c.list_topics(topic=topic, timeout=10)
        t = md.topics.get(topic)
        assert t is not None and t.error is not None
        assert t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, t.error
    finally:
        c.close()
    time.sleep(0.5)
    assert topic not in topic_names(broker)

    kc = kp_consumer(broker, allow_auto_create_topics=False)
    try:
        assert not kc.partitions_for_topic(topic + "-kp")  # None or empty: unknown topic
    finally:
        kc.close()
    assert topic + "-kp" not in topic_names(broker)


def test_consumer_metadata_autocreates_when_allowed(broker, topic):
    c = ck_consumer(broker, **{"allow.auto.create.topics": True})
    try:
        deadline = time.monotonic() + 20
        while topic not in topic_names(broker) and time.monotonic() < deadline:
            try:
                c.list_topics(topic=topic, timeout=10)
            except KafkaException:
                pass  # a transient transport error is retried, as clients do
            time.sleep(0.2)
    finally:
        c.close()
    assert topic in topic_names(broker)


def test_autocreate_disabled(broker_factory, topic):
    b = broker_factory(**{"auto.create.topics.enable": "false"})
    p = ck_producer(b, **{"message.timeout.ms": 3000})
    res = ck_produce(p, topic, [(None, b"nowhere")], raise_on_error=False)
    err = res[0][0]
    assert err is not None, "produce to a missing topic must fail when auto-create is off"
    assert err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
                          KafkaError._MSG_TIMED_OUT), err
    md = p.list_topics(topic=topic, timeout=10).topics[topic]
    assert md.error is not None and md.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert topic not in topic_names(b)

    kp = kp_producer(b, max_block_ms=3000)
    try:
        import kafka.errors as Errors
        import pytest
        with pytest.raises(Errors.KafkaTimeoutError):
            kp.send(topic, b"nowhere").get(10)
    finally:
        kp.close(timeout=5)
    assert topic not in topic_names(b)
