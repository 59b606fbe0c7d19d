"""Topic configuration changed at runtime (issue 7): AlterConfigs and IncrementalAlterConfigs through
both clients' admin APIs, validated as Kafka does, described back, and in force on the topic's
partitions without a restart (and after one)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   ResourceType)

from kafka.admin import ConfigResource as KPConfigResource, ConfigResourceType
from kclients import ck_admin, ck_create_topic, ck_produce, ck_producer, kp_admin

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
