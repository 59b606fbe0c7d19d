"""Committed offsets in __consumer_offsets, through the clients' own APIs: consumers that assign()
partitions and commit (Kafka's "simple" groups), offsets and metadata surviving a kill -9, the admin
APIs that list, describe and delete such groups, and the internal topic's visibility. Group membership
(subscribe()) is the consumer-groups issue's."""

import time

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from kafka import TopicPartition as KpTopicPartition

from kclients import ck_admin, ck_consumer, ck_create_topic, ck_produce, ck_producer, kp_consumer


def commit_confluent(broker, group, offsets):
    c = ck_consumer(broker, **{"group.id": group})
    try:
        c.commit(offsets=offsets, asynchronous=False)
    finally:
        c.close()


def committed_confluent(broker, group, partitions):
    c = ck_consumer(broker, **{"group.id": group})
    try:
        return {(t.topic, t.partition): (t.offset, t.metadata)
                for t in c.committed(partitions, timeout=20)}
    finally:
        c.close()


def test_commit_and_fetch_survive_kill9(broker, topic):
    ck_create_topic(broker, topic, partitions=3)
    commit_confluent(broker, "app", [TopicPartition(topic, 0, 10),
                                     TopicPartition(topic, 1, 20, metadata="m1")])
    commit_confluent(broker, "app", [TopicPartition(topic, 0, 11)])  # a later commit wins
    broker.kill9()
    broker.start()
    got = committed_confluent(broker, "app", [TopicPartition(topic, p) for p in range(3)])
    assert got[(topic, 0)][0] == 11
    assert got[(topic, 1)] == (20, "m1")
    # No commit for partition 2: the client sees "no offset" (librdkafka's OFFSET_INVALID, -1001).
    assert got[(topic, 2)][0] == -1001


def test_kafka_python_commit_and_committed(broker, topic):
    ck_create_topic(broker, topic, partitions=2)
    ck_produce(ck_producer(broker), topic, [(None, b"v%d" % i, None) for i in range(5)], partition=0)
    c = kp_consumer(broker, group_id="kp-app", enable_auto_commit=False)
    try:
        tp = KpTopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        seen = 0
        deadline = time.time() + 30
        while seen < 5 and time.time() < deadline:
            seen += sum(len(v) for v in c.poll(1000).values())
        assert seen == 5
        c.commit()
        assert c.committed(tp) == 5
    finally:
        c.close()
    broker.restart()
    c = kp_consumer(broker, group_id="kp-app", enable_auto_commit=False)
    try:
        assert c.committed(KpTopicPartition(topic, 0)) == 5
        assert c.committed(KpTopicPartition(topic, 1)) is None
    finally:
        c.close()


def test_resume_from_committed_offset(broker, topic):
    """A new consumer in the same group starts where the last commit left off."""
    ck_create_topic(broker, topic)
    ck_produce(ck_producer(broker), topic, [(None, b"r%d" % i, None) for i in range(10)], partition=0)
    commit_confluent(broker, "resume", [TopicPartition(topic, 0, 6)])
    c = ck_consumer(broker, **{"group.id": "resume"})
    try:
        # OFFSET_STORED: the position comes from the group's committed offset.
        c.assign([TopicPartition(topic, 0, -1000)])
        m = None
        deadline = time.time() + 30
        while m is None and time.time() < deadline:
            m = c.poll(1)
            if m is not None and m.error():
                m = None
        assert m is not None and m.offset() == 6 and m.value() == b"r6"
    finally:
        c.close()


def test_commit_errors(broker, topic):
    ck_create_topic(broker, topic)
    c = ck_consumer(broker, **{"group.id": "errs"})
    try:
        with pytest.raises(KafkaException) as e:
            c.commit(offsets=[TopicPartition("no-such-topic-" + topic, 0, 1)], asynchronous=False)
        assert e.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        with pytest.raises(KafkaException) as e:
            c.commit(offsets=[TopicPartition(topic, 0, 1, metadata="x" * 5000)], asynchronous=False)
        assert e.value.args[0].code() == KafkaError.OFFSET_METADATA_TOO_LARGE
    finally:
        c.close()


def test_admin_list_describe_delete(broker, topic):
    ck_create_topic(broker, topic)
    commit_confluent(broker, "admin-g", [TopicPartition(topic, 0, 3)])
    admin = ck_admin(broker)
    listed = [g.group_id for g in admin.list_consumer_groups().result(20).valid]
    assert "admin-g" in listed
    described = admin.describe_consumer_groups(["admin-g"])["admin-g"].result(20)
    assert str(described.state).endswith("EMPTY") and not described.members
    offsets = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions("admin-g")])["admin-g"].result(20)
    assert [(t.topic, t.partition, t.offset) for t in offsets.topic_partitions] == [(topic, 0, 3)]
    admin.delete_consumer_groups(["admin-g"])["admin-g"].result(20)
    with pytest.raises(KafkaException) as e:
        admin.delete_consumer_groups(["admin-g"])["admin-g"].result(20)
    assert e.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND
    broker.restart()
    admin = ck_admin(broker)
    assert "admin-g" not in [g.group_id for g in admin.list_consumer_groups().result(20).valid]


def test_internal_topic_is_internal_and_read_only(broker, topic):
    ck_create_topic(broker, topic)
    commit_confluent(broker, "internal-g", [TopicPartition(topic, 0, 1)])
    md = ck_admin(broker).list_topics(timeout=20)
    assert "__consumer_offsets" in md.topics
    assert len(md.topics["__consumer_offsets"].partitions) == 50
    results = ck_produce(ck_producer(broker), "__consumer_offsets", [(b"k", b"v", None)],
                         partition=0, raise_on_error=False)
    assert results[0][0] is not None, "producing to __consumer_offsets must fail"


def test_offsets_of_idle_groups_expire_after_retention(broker_factory, topic):
    """offsets.retention.minutes (1, Kafka's minimum) deletes the offsets of a group without members;
    they stay deleted across a restart (tombstones, not just memory)."""
    broker = broker_factory(**{"offsets.retention.minutes": "1",
                               "offsets.retention.check.interval.ms": "1000"})
    ck_create_topic(broker, topic)
    commit_confluent(broker, "expiring", [TopicPartition(topic, 0, 4)])
    assert committed_confluent(broker, "expiring", [TopicPartition(topic, 0)])[(topic, 0)][0] == 4
    deadline = time.time() + 90
    while time.time() < deadline:
        got = committed_confluent(broker, "expiring", [TopicPartition(topic, 0)])[(topic, 0)][0]
        if got == -1001:
            break
        time.sleep(2)
    assert got == -1001, "offset older than offsets.retention.minutes must expire"
    broker.restart()
    assert committed_confluent(broker, "expiring", [TopicPartition(topic, 0)])[(topic, 0)][0] == -1001
