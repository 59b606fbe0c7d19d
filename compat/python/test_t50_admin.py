"""Topic administration through each client's admin API: CreateTopics, DeleteTopics,
CreatePartitions, DescribeConfigs, DescribeCluster, Metadata."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigResource, ConfigSource, NewPartitions, NewTopic
from confluent_kafka.admin import ResourceType

import kafka.errors as Errors
from kafka.admin import NewTopic as KPNewTopic
from kclients import ck_admin, ck_consume, ck_produce, ck_producer, kp_admin

T = 20  # seconds


def source(entry) -> ConfigSource:
    """ConfigEntry.source as the enum (the C extension may hand over the raw int)."""
    return entry.source if isinstance(entry.source, ConfigSource) else ConfigSource(entry.source)


def ck_topics(admin) -> dict:
    return admin.list_topics(timeout=T).topics


def wait_until(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# ---------------------------------------------------------------- kafka-python

def test_kafka_python_create_describe_delete(broker, topic):
    admin = kp_admin(broker)
    try:
        admin.create_topics([KPNewTopic(topic, num_partitions=3, replication_factor=1,
                                        topic_configs={"retention.ms": "123456"})])
        assert topic in admin.list_topics()
        [desc] = admin.describe_topics([topic])
        assert desc["error_code"] == 0
        assert sorted(p["partition_index"] for p in desc["partitions"]) == [0, 1, 2]
        for p in desc["partitions"]:
            assert p["leader_id"] == 0 and p["replica_nodes"] == [0] and p["isr_nodes"] == [0]

        with pytest.raises(Errors.TopicAlreadyExistsError):
            admin.create_topics([KPNewTopic(topic, num_partitions=1, replication_factor=1)])

        from kafka.admin import ConfigResource as KPConfigResource, ConfigResourceType
        cfg = admin.describe_configs([KPConfigResource(ConfigResourceType.TOPIC, topic)],
                                     config_filter="all")
        entries = cfg["topic"][topic]
        assert entries["retention.ms"]["value"] == "123456", entries.get("retention.ms")
        assert entries["cleanup.policy"]["value"] == "delete"

        admin.delete_topics([topic])
        wait_until(lambda: topic not in admin.list_topics(), what="topic deletion")
    finally:
        admin.close()


def test_kafka_python_validate_only_and_bad_requests(broker, topic):
    admin = kp_admin(broker)
    try:
        admin.create_topics([KPNewTopic(topic, num_partitions=2, replication_factor=1)],
                            validate_only=True)
        assert topic not in admin.list_topics(), "validate_only must not create the topic"
        with pytest.raises(Errors.InvalidReplicationFactorError):
            admin.create_topics([KPNewTopic(topic, num_partitions=1, replication_factor=3)])
        with pytest.raises(Errors.InvalidPartitionsError):
            admin.create_topics([KPNewTopic(topic, num_partitions=0, replication_factor=1)])
        with pytest.raises(Errors.InvalidTopicError):
            admin.create_topics([KPNewTopic("bad/name", num_partitions=1, replication_factor=1)])
        with pytest.raises(Errors.UnknownTopicOrPartitionError):
            admin.delete_topics([topic + "-never-created"])
        assert topic not in admin.list_topics()
    finally:
        admin.close()


def test_kafka_python_create_partitions(broker, topic):
    from kafka.admin import NewPartitions as KPNewPartitions
    admin = kp_admin(broker)
    try:
        admin.create_topics([KPNewTopic(topic, num_partitions=1, replication_factor=1)])
        admin.create_partitions({topic: KPNewPartitions(total_count=4)})
        wait_until(lambda: len(admin.describe_topics([topic])[0]["partitions"]) == 4,
                   what="4 partitions")
        with pytest.raises(Errors.InvalidPartitionsError):
            admin.create_partitions({topic: KPNewPartitions(total_count=2)})
    finally:
        admin.close()


def test_kafka_python_detects_kafka4_broker(broker):
    """kafka-python (>= 2.1) derives the broker version from ApiVersions alone; Kavka's
    advertised ranges must read as a Kafka 4.x broker so that no feature is gated off."""
    admin = kp_admin(broker)
    try:
        version = admin.get_broker_version_data(0).broker_version
        assert tuple(version) >= (4, 0), f"kafka-python sees broker version {version}"
    finally:
        admin.close()


def test_kafka_python_describe_cluster(broker):
    admin = kp_admin(broker)
    try:
        cluster = admin.describe_cluster()
        assert cluster["cluster_id"], cluster
        assert cluster["controller_id"] == 0, cluster
        assert [(b["broker_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [
            (0, "127.0.0.1", broker.port)]
    finally:
        admin.close()


# ---------------------------------------------------------------- confluent-kafka

def test_confluent_create_describe_delete(broker, topic):
    admin = ck_admin(broker)
    fs = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                       config={"retention.ms": "123456",
                                               "cleanup.policy": "delete"})],
                             operation_timeout=T, request_timeout=T)
    assert fs[topic].result(T) is None
    md = ck_topics(admin)[topic]
    assert md.error is None
    assert sorted(md.partitions) == [0, 1, 2]
    for p in md.partitions.values():
        assert p.leader == 0 and p.replicas == [0] and p.isrs == [0]

    dup = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)],
                              request_timeout=T)
    with pytest.raises(KafkaException) as exc:
        dup[topic].result(T)
    assert exc.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    res = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([res], request_timeout=T)[res].result(T)
    assert entries["retention.ms"].value == "123456"
    assert source(entries["retention.ms"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert entries["max.message.bytes"].value == "1048588"
    assert source(entries["max.message.bytes"]) in (ConfigSource.DEFAULT_CONFIG,
                                                    ConfigSource.STATIC_BROKER_CONFIG)

    fs = admin.delete_topics([topic], operation_timeout=T, request_timeout=T)
    assert fs[topic].result(T) is None
    wait_until(lambda: topic not in ck_topics(admin), what="topic deletion")
    # a deleted topic's records are gone: re-creating it starts from offset 0
    fs = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)],
                             request_timeout=T)
    fs[topic].result(T)
    p = ck_producer(broker)
    assert ck_produce(p, topic, [(None, b"again")], partition=0)[0][2] == 0


def test_confluent_validate_only(broker, topic):
    admin = ck_admin(broker)
    fs = admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)],
                             validate_only=True, request_timeout=T)
    assert fs[topic].result(T) is None
    assert topic not in ck_topics(admin)
    bad = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=5)],
                              validate_only=True, request_timeout=T)
    with pytest.raises(KafkaException) as exc:
        bad[topic].result(T)
    assert exc.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR


def test_confluent_describe_broker_configs(broker_factory):
    b = broker_factory(**{"num.partitions": "3", "message.max.bytes": "200000"})
    admin = ck_admin(b)
    res = ConfigResource(ResourceType.BROKER, "0")
    entries = admin.describe_configs([res], request_timeout=T)[res].result(T)
    assert entries["num.partitions"].value == "3"
    assert entries["message.max.bytes"].value == "200000"
    assert source(entries["message.max.bytes"]) == ConfigSource.STATIC_BROKER_CONFIG
    assert entries["auto.create.topics.enable"].value == "true"
    assert source(entries["auto.create.topics.enable"]) == ConfigSource.DEFAULT_CONFIG
    assert entries["log.segment.bytes"].value == str(1024 * 1024 * 1024)


def test_confluent_describe_cluster(broker):
    admin = ck_admin(broker)
    desc = admin.describe_cluster(request_timeout=T).result(T)
    assert desc.cluster_id
    assert desc.controller is not None and desc.controller.id == 0
    assert [(n.id, n.host, n.port) for n in desc.nodes] == [(0, "127.0.0.1", broker.port)]


def test_confluent_describe_topics_has_topic_id(broker, topic):
    from confluent_kafka import TopicCollection
    admin = ck_admin(broker)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)],
                        request_timeout=T)[topic].result(T)
    desc = admin.describe_topics(TopicCollection([topic]), request_timeout=T)[topic].result(T)
    assert desc.name == topic
    assert desc.topic_id is not None and str(desc.topic_id) != "AAAAAAAAAAAAAAAAAAAAAA"
    assert len(desc.partitions) == 2


def test_confluent_create_partitions(broker, topic):
    admin = ck_admin(broker)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)],
                        request_timeout=T)[topic].result(T)
    fs = admin.create_partitions([NewPartitions(topic, 3)], request_timeout=T)
    assert fs[topic].result(T) is None
    wait_until(lambda: len(ck_topics(admin)[topic].partitions) == 3, what="3 partitions")
    p = ck_producer(broker)
    assert ck_produce(p, topic, [(None, b"p2")], partition=2)[0][2] == 0
    assert ck_consume(broker, topic, 2, 1)[0].value == b"p2"


def test_delete_topic_disabled(broker_factory, topic):
    b = broker_factory(**{"delete.topic.enable": "false"})
    admin = ck_admin(b)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)],
                        request_timeout=T)[topic].result(T)
    fs = admin.delete_topics([topic], request_timeout=T)
    with pytest.raises(KafkaException) as exc:
        fs[topic].result(T)
    assert exc.value.args[0].code() == KafkaError.TOPIC_DELETION_DISABLED
    assert topic in ck_topics(admin)


def test_topics_survive_restart(broker, topic):
    """Topic names, ids, partition counts and configs are durable."""
    from confluent_kafka import TopicCollection
    admin = ck_admin(broker)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                  config={"retention.ms": "987654"})],
                        request_timeout=T)[topic].result(T)
    before = admin.describe_topics(TopicCollection([topic]), request_timeout=T)[topic].result(T)
    p = ck_producer(broker)
    ck_produce(p, topic, [(None, b"durable")], partition=1)
    del p, admin
    assert broker.stop() == 0
    broker.start()
    admin = ck_admin(broker)
    after = admin.describe_topics(TopicCollection([topic]), request_timeout=T)[topic].result(T)
    assert str(after.topic_id) == str(before.topic_id)
    assert len(after.partitions) == 3
    res = ConfigResource(ResourceType.TOPIC, topic)
    assert admin.describe_configs([res], request_timeout=T)[res].result(T)[
        "retention.ms"].value == "987654"
    assert ck_consume(broker, topic, 1, 1)[0].value == b"durable"


def test_deleted_topic_is_gone_from_disk_and_after_restart(broker, topic):
    admin = ck_admin(broker)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)],
                        request_timeout=T)[topic].result(T)
    ck_produce(ck_producer(broker), topic, [(None, b"doomed")], partition=0)
    assert (broker.data_dir / f"{topic}-0").is_dir()
    admin.delete_topics([topic], request_timeout=T)[topic].result(T)
    wait_until(lambda: not any(p.name.startswith(topic) and not p.name.endswith("-delete")
                               for p in broker.data_dir.iterdir()),
               timeout=30, what="partition directories removed (or renamed *-delete)")
    del admin
    assert broker.stop() == 0
    broker.start()
    assert topic not in ck_topics(ck_admin(broker)), "deleted topic came back after restart"


def test_kafka_python_delete_topic_by_id(broker, topic):
    """DeleteTopics by topic id (DeleteTopics v6+, KIP-516)."""
    import uuid
    admin = kp_admin(broker)
    try:
        admin.create_topics([KPNewTopic(topic, num_partitions=1, replication_factor=1)])
        [desc] = admin.describe_topics([topic])
        topic_id = desc["topic_id"]
        topic_id = topic_id if isinstance(topic_id, uuid.UUID) else uuid.UUID(str(topic_id))
        assert topic_id.int != 0, "Metadata must carry the topic id"
        admin.delete_topics([topic_id])
        wait_until(lambda: topic not in admin.list_topics(), what="deletion by id")
        with pytest.raises(Errors.UnknownTopicIdError):
            admin.delete_topics([uuid.uuid4()])
    finally:
        admin.close()


def test_cluster_id_is_stable_across_restarts(broker):
    admin = ck_admin(broker)
    before = admin.describe_cluster(request_timeout=T).result(T).cluster_id
    assert before and len(before) == 22, f"Kafka cluster ids are 22-char base64 UUIDs: {before!r}"
    del admin
    broker.kill9()
    broker.start()
    admin = ck_admin(broker)  # keep a reference: a collected client cancels its futures
    after = admin.describe_cluster(request_timeout=T).result(T).cluster_id
    assert after == before
