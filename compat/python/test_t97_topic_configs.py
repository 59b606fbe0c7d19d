"""Topic configuration changed at runtime (issue 7): AlterConfigs and IncrementalAlterConfigs through
both clients' admin APIs, validated as Kafka does, described back, and in force on the topic's
partitions without a restart (and after one)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   ResourceType)

from kafka.admin import ConfigResource as KPConfigResource, ConfigResourceType
import struct

from kclients import ck_admin, ck_create_topic, ck_produce, ck_producer, kp_admin
from rawkafka import Conn, Reader, kstring

T = 20


def described(admin, topic: str) -> dict:
    res = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([res])[res].result(timeout=T)


def incremental(admin, topic: str, entries, validate_only: bool = False):
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    return admin.incremental_alter_configs([res], validate_only=validate_only)[res].result(timeout=T)


def test_incremental_set_delete_append_subtract(broker, topic):
    ck_create_topic(broker, topic, config={"retention.ms": "3600000"})
    admin = ck_admin(broker)
    incremental(admin, topic, [
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("segment.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    cfg = described(admin, topic)
    assert cfg["retention.ms"].value == "604800000"
    assert cfg["retention.ms"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["segment.ms"].value == "7200000"
    assert cfg["segment.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["cleanup.policy"].value == "delete,compact"
    incremental(admin, topic, [
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT)])
    assert described(admin, topic)["cleanup.policy"].value == "compact"


@pytest.mark.parametrize("entry, fragment", [
    (("retention.ms", "soon", AlterConfigOpType.SET), "retention.ms"),
    (("no.such.config", "1", AlterConfigOpType.SET), "no.such.config"),
    (("retention.ms", "5", AlterConfigOpType.APPEND), "append is not allowed"),
    (("min.insync.replicas", "0", AlterConfigOpType.SET), "min.insync.replicas"),
])
def test_invalid_changes_are_refused_naming_the_key(broker, topic, entry, fragment):
    ck_create_topic(broker, topic)
    admin = ck_admin(broker)
    key, value, op = entry
    with pytest.raises(KafkaException) as refused:
        incremental(admin, topic, [ConfigEntry(key, value, incremental_operation=op)])
    err = refused.value.args[0]
    assert err.code() == KafkaError.INVALID_CONFIG, err
    assert fragment in err.str(), err.str()
    assert "retention.ms" not in {k for k, v in described(admin, topic).items()
                                  if v.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value}


def test_validate_only_and_unknown_topic(broker, topic):
    ck_create_topic(broker, topic)
    admin = ck_admin(broker)
    incremental(admin, topic, [ConfigEntry("retention.ms", "1000",
                                           incremental_operation=AlterConfigOpType.SET)],
                validate_only=True)
    assert described(admin, topic)["retention.ms"].value == "604800000"
    with pytest.raises(KafkaException) as missing:
        incremental(admin, topic + "-missing", [
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    assert missing.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_legacy_alter_configs_replaces_the_override_set(broker, topic):
    ck_create_topic(broker, topic, config={"retention.ms": "3600000", "segment.ms": "7200000"})
    admin = ck_admin(broker)
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "1800000"})
    # confluent-kafka's alter_configs is Kafka's legacy AlterConfigs: the given set replaces the
    # overrides, so segment.ms loses its override.
    admin.alter_configs([res])[res].result(timeout=T)
    cfg = described(admin, topic)
    assert cfg["retention.ms"].value == "1800000"
    assert cfg["segment.ms"].value == "604800000"


def test_kafka_python_alters_one_key_and_keeps_the_others(broker, topic):
    ck_create_topic(broker, topic, config={"retention.ms": "3600000", "segment.ms": "7200000"})
    admin = kp_admin(broker)
    try:
        # kafka-python picks IncrementalAlterConfigs when the broker advertises it.
        admin.alter_configs([KPConfigResource(ConfigResourceType.TOPIC, topic,
                                              configs={"retention.ms": "1800000"})])
    finally:
        admin.close()
    cfg = described(ck_admin(broker), topic)
    assert cfg["retention.ms"].value == "1800000"
    assert cfg["segment.ms"].value == "7200000"


def test_max_message_bytes_change_applies_without_restart_and_persists(broker, topic):
    ck_create_topic(broker, topic)
    admin = ck_admin(broker)
    producer = ck_producer(broker, **{"message.max.bytes": 200000})
    ck_produce(producer, topic, [(None, b"x" * 50000, None)])
    incremental(admin, topic, [ConfigEntry("max.message.bytes", "10000",
                                           incremental_operation=AlterConfigOpType.SET)])
    results = ck_produce(producer, topic, [(None, b"y" * 50000, None)], raise_on_error=False)
    assert results[0][0] is not None and results[0][0].code() == KafkaError.MSG_SIZE_TOO_LARGE, results
    broker.kill9()
    broker.start()
    assert described(ck_admin(broker), topic)["max.message.bytes"].value == "10000"
    producer = ck_producer(broker, **{"message.max.bytes": 200000})
    results = ck_produce(producer, topic, [(None, b"z" * 50000, None)], raise_on_error=False)
    assert results[0][0] is not None and results[0][0].code() == KafkaError.MSG_SIZE_TOO_LARGE, results


def raw_incremental_alter_broker(broker, name: str, key: str, value: str | None,
                                 op: int = 0) -> tuple[int, str | None]:
    """IncrementalAlterConfigs v0 (key 44) on one broker resource; returns (error code, message)."""
    body = (struct.pack(">i", 1) + struct.pack(">b", 4) + kstring(name)
            + struct.pack(">i", 1) + kstring(key) + struct.pack(">b", op) + kstring(value)
            + struct.pack(">?", False))
    with Conn(broker.port) as conn:
        r = Reader(conn.request(44, 0, body))
    r.take("i")  # throttle
    assert r.take("i") == 1
    code, message = r.take("h"), r.string()
    assert r.take("b") == 4 and r.string() == name
    return code, message


def broker_described(admin, name: str) -> dict:
    res = ConfigResource(ResourceType.BROKER, name)
    return admin.describe_configs([res])[res].result(timeout=T)


def broker_incremental(admin, name: str, entries):
    res = ConfigResource(ResourceType.BROKER, name, incremental_configs=entries)
    return admin.incremental_alter_configs([res])[res].result(timeout=T)


def test_dynamic_broker_config_applies_to_topics_without_restart(broker, topic):
    ck_create_topic(broker, topic)
    admin = ck_admin(broker)
    # Cluster-wide default (resource name "", what `kafka-configs --entity-default` sends; the
    # Python clients refuse an empty name, so a raw IncrementalAlterConfigs v0): the topic's
    # max.message.bytes follows message.max.bytes.
    assert raw_incremental_alter_broker(broker, "", "message.max.bytes", "20000") == (0, None)
    cfg = broker_described(admin, "0")
    assert cfg["message.max.bytes"].value == "20000"
    assert cfg["message.max.bytes"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    assert not cfg["message.max.bytes"].is_read_only
    assert cfg["log.dirs"].is_read_only
    assert described(admin, topic)["max.message.bytes"].value == "20000"
    producer = ck_producer(broker, **{"message.max.bytes": 200000})
    results = ck_produce(producer, topic, [(None, b"x" * 50000, None)], raise_on_error=False)
    assert results[0][0] is not None and results[0][0].code() == KafkaError.MSG_SIZE_TOO_LARGE
    # This node's own setting wins over the cluster default; deleting it falls back.
    broker_incremental(admin, "0", [ConfigEntry("message.max.bytes", "100000",
                                                incremental_operation=AlterConfigOpType.SET)])
    assert broker_described(admin, "0")["message.max.bytes"].source == \
        ConfigSource.DYNAMIC_BROKER_CONFIG.value
    ck_produce(producer, topic, [(None, b"y" * 50000, None)])
    del producer
    broker.kill9()
    broker.start()
    admin = ck_admin(broker)
    assert broker_described(admin, "0")["message.max.bytes"].value == "100000"
    broker_incremental(admin, "0", [ConfigEntry("message.max.bytes", None,
                                                incremental_operation=AlterConfigOpType.DELETE)])
    assert described(admin, topic)["max.message.bytes"].value == "20000"


@pytest.mark.parametrize("key, value, fragment", [
    ("log.dirs", "/tmp/elsewhere", "Cannot update these configs dynamically"),
    ("no.such.key", "1", "Unknown broker config name"),
    ("log.retention.ms", "soon", "log.retention.ms"),
])
def test_broker_configs_that_cannot_change_are_refused(broker, key, value, fragment):
    admin = ck_admin(broker)
    with pytest.raises(KafkaException) as refused:
        broker_incremental(admin, "0", [ConfigEntry(key, value,
                                                    incremental_operation=AlterConfigOpType.SET)])
    err = refused.value.args[0]
    assert err.code() == KafkaError.INVALID_CONFIG and fragment in err.str(), err
