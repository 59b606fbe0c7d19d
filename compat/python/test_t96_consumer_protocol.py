"""Consumer groups over the KIP-848 consumer protocol (`group.protocol=consumer`), driven by
librdkafka through confluent-kafka (issue 3).

The broker assigns partitions (server-side `uniform` / `range` assignors) and members converge
through ConsumerGroupHeartbeat: a partition moves only after its previous owner has revoked it.
Members run as separate processes (the `Worker` of test_t95) so that they can be SIGKILLed; their
rebalance callbacks are incremental under this protocol.

Brokers run with short consumer-group timeouts (Kafka's defaults are a 45 s session and 5 s
heartbeats, which are broker settings under this protocol), so failure detection is observable in
seconds.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (Consumer, ConsumerGroupState, ConsumerGroupType, KafkaError,
                             KafkaException, TopicPartition)
from confluent_kafka.admin import NewTopic

from kclients import ck_admin, ck_create_topic, ck_produce, ck_producer
from rawkafka import Conn, api_versions_v0
from test_t95_consumer_groups import (HEARTBEAT_MS, SLACK_S, member_conf, spawn,  # noqa: F401
                                      wait_split, wait_until)

SESSION_MS = 6000
CONSUMER_GROUPS = {
    "group.consumer.min.session.timeout.ms": "2000",
    "group.consumer.session.timeout.ms": str(SESSION_MS),
    "group.consumer.min.heartbeat.interval.ms": "500",
    "group.consumer.heartbeat.interval.ms": str(HEARTBEAT_MS),
    "group.initial.rebalance.delay.ms": "0",
}
CONSUMER_GROUP_HEARTBEAT = 68
CONSUMER_GROUP_DESCRIBE = 69


def kip848_conf(broker, group: str, name: str, **extra) -> dict:
    """A member of the consumer protocol: timeouts and assignment are the broker's business, so
    the classic-only client settings are left out."""
    return member_conf(broker, group, name, **{
        "group.protocol": "consumer",
        "session.timeout.ms": None,
        "heartbeat.interval.ms": None,
        **extra})


def test_consumer_protocol_is_advertised_only_when_enabled(broker_factory):
    on = broker_factory()
    off = broker_factory(**{"group.coordinator.rebalance.protocols": "classic"})
    with Conn(on.port) as c:
        _, apis = api_versions_v0(c)
    assert apis[CONSUMER_GROUP_HEARTBEAT] == (0, 1)
    assert apis[CONSUMER_GROUP_DESCRIBE] == (0, 1)
    with Conn(off.port) as c:
        _, apis = api_versions_v0(c)
    assert CONSUMER_GROUP_HEARTBEAT not in apis and CONSUMER_GROUP_DESCRIBE not in apis


@pytest.mark.timeout(120)
def test_split_join_and_killed_member_moves(broker_factory, topic, spawn):
    broker = broker_factory(**CONSUMER_GROUPS)
    ck_create_topic(broker, topic, partitions=6)
    group = "kip848-split-" + topic
    ws = [spawn(f"m{i}", kip848_conf(broker, group, f"m{i}"), topic) for i in range(3)]
    wait_split(ws, 6, [2, 2, 2], SLACK_S, "over three members")

    w4 = spawn("m3", kip848_conf(broker, group, "m3"), topic)
    wait_split(ws + [w4], 6, [1, 1, 2, 2], SLACK_S, "after a fourth member joined")

    victim = ws[1]
    survivors = [ws[0], ws[2], w4]
    victim.kill()
    took = wait_split(survivors, 6, [2, 2, 2], SESSION_MS / 1000 + SLACK_S,
                      "over the three survivors after one was SIGKILLed")
    # The broker keeps a silent member until group.consumer.session.timeout.ms has passed since
    # its last heartbeat (sent at most one heartbeat interval before the kill).
    assert took >= (SESSION_MS - HEARTBEAT_MS) / 1000 - 0.5, (
        f"the killed member's partitions moved after {took:.1f}s, before the session timeout")


@pytest.mark.timeout(150)
def test_exactly_once_with_sync_commits_and_clean_leave(broker_factory, topic, spawn):
    broker = broker_factory(**CONSUMER_GROUPS)
    ck_create_topic(broker, topic, partitions=6)
    group = "kip848-eos-" + topic
    ws = [spawn(f"e{i}", kip848_conf(broker, group, f"e{i}"), topic, commit=True)
          for i in range(3)]
    wait_split(ws, 6, [2, 2, 2], SLACK_S, "over three members")
    total = 1200
    ids = [f"id-{i:05d}" for i in range(total)]
    producer = ck_producer(broker, **{"linger.ms": 5})
    ck_produce(producer, topic, [(v.encode(), v.encode(), None) for v in ids[:600]])
    wait_until(lambda: sum(len(w.of_kind("msg")) for w in ws) >= 100, SLACK_S,
               "the group to consume the first records", ws)
    leaver = ws[0]
    assert leaver.close() == 0, leaver.describe()
    rest = ws[1:]
    took = wait_split(rest, 6, [3, 3], SLACK_S, "over the two remaining members")
    assert took < (SESSION_MS - HEARTBEAT_MS) / 1000, (
        f"after a clean close() the partitions moved only after {took:.1f}s, like a session expiry")
    ck_produce(producer, topic, [(v.encode(), v.encode(), None) for v in ids[600:]])

    def consumed():
        return [v for w in ws for v in w.values()]

    wait_until(lambda: set(consumed()) >= set(ids), SLACK_S, f"all {total} records", ws)
    time.sleep(2)
    got = consumed()
    dups = sorted({v for v in got if got.count(v) > 1})
    commit_errors = [e for w in ws for e in w.of_kind("commit_error")]
    assert not dups, (f"{len(dups)} records consumed twice (first {dups[:10]}); commit errors "
                      f"{commit_errors[:10]}\n" + "\n".join(w.describe() for w in ws))
    assert len(got) == total


def consume_and_commit(broker, conf: dict, topic: str, count: int, timeout: float = 40.0):
    c = Consumer(conf)
    got = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            got.append((m.partition(), m.offset(), m.value().decode()))
            c.commit(message=m, asynchronous=False)
        assert len(got) == count, f"consumed {len(got)} of {count} within {timeout:.0f}s"
    finally:
        c.close()
    return got


@pytest.mark.timeout(150)
def test_membership_and_offsets_survive_broker_kill9(broker_factory, topic, spawn):
    """The group's epochs and assignments are records in __consumer_offsets: after the coordinator
    is SIGKILLed and restarted, the running members keep heartbeating with their epochs and keep
    their partitions (no revocation), and nothing is consumed twice."""
    broker = broker_factory(**CONSUMER_GROUPS)
    ck_create_topic(broker, topic, partitions=4)
    group = "kip848-survive-" + topic
    ws = [spawn(f"v{i}", kip848_conf(broker, group, f"v{i}", **{"reconnect.backoff.max.ms": 500}),
                topic, commit=True) for i in range(2)]
    wait_split(ws, 4, [2, 2], SLACK_S, "over two members")
    owned_before = [w.owned() for w in ws]
    marks = [w.mark() for w in ws]
    phase1 = [f"p1-{i:04d}" for i in range(200)]
    producer = ck_producer(broker)
    ck_produce(producer, topic, [(v.encode(), v.encode(), None) for v in phase1])

    def consumed():
        return [v for w in ws for v in w.values()]

    wait_until(lambda: set(consumed()) >= set(phase1), SLACK_S, "phase 1 to be consumed", ws)
    del producer
    broker.kill9()
    time.sleep(1.0)
    broker.start()
    producer = ck_producer(broker)
    phase2 = [f"p2-{i:04d}" for i in range(200)]
    ck_produce(producer, topic, [(v.encode(), v.encode(), None) for v in phase2])
    wait_until(lambda: set(consumed()) >= set(phase1 + phase2), SLACK_S,
               "phase 2 to be consumed after the restart", ws)
    time.sleep(SESSION_MS / 1000 + 1)
    for w, m, before in zip(ws, marks, owned_before):
        lost_or_revoked = w.of_kind("revoke", "lost", since=m)
        assert not lost_or_revoked and w.owned() == before, (
            f"{w.name} lost partitions across the broker restart\n{w.describe()}")
    got = consumed()
    assert sorted(got) == sorted(phase1 + phase2), "records lost or consumed twice"


@pytest.mark.timeout(120)
def test_static_member_restarts_without_moving_partitions(broker_factory, topic, spawn):
    broker = broker_factory(**CONSUMER_GROUPS)
    ck_create_topic(broker, topic, partitions=4)
    group = "kip848-static-" + topic
    confs = [kip848_conf(broker, group, f"s{i}", **{"group.instance.id": f"app-{i}"})
             for i in range(2)]
    ws = [spawn(f"s{i}", confs[i], topic) for i in range(2)]
    wait_split(ws, 4, [2, 2], SLACK_S, "over two static members")
    stay, restart = ws
    stay_mark = stay.mark()
    restart_parts = restart.owned()
    assert restart.close() == 0, restart.describe()  # a static member leaves with epoch -2
    again = spawn("s1-again", confs[1], topic)
    wait_until(lambda: again.owned() == restart_parts, SLACK_S,
               f"the restarted static member to get its partitions {sorted(restart_parts)} back",
               [stay, again])
    assert not stay.rebalance_events(since=stay_mark), (
        "a static member's restart moved the other member's partitions\n" + stay.describe())


@pytest.mark.timeout(120)
def test_admin_sees_consumer_groups(broker_factory, topic, spawn):
    broker = broker_factory(**CONSUMER_GROUPS)
    ck_create_topic(broker, topic, partitions=3)
    group = "kip848-admin-" + topic
    ws = [spawn(f"a{i}", kip848_conf(broker, group, f"a{i}"), topic) for i in range(2)]
    wait_split(ws, 3, [1, 2], SLACK_S, "over two members")
    admin = ck_admin(broker)

    def describe():
        return admin.describe_consumer_groups([group])[group].result(timeout=20)

    wait_until(lambda: describe().state == ConsumerGroupState.STABLE, SLACK_S,
               "the group to be Stable", ws)
    d = describe()
    assert d.type == ConsumerGroupType.CONSUMER
    assert sorted(len(m.assignment.topic_partitions) for m in d.members) == [1, 2]
    assert {tp.topic for m in d.members for tp in m.assignment.topic_partitions} == {topic}
    listed = admin.list_consumer_groups(types={ConsumerGroupType.CONSUMER}).result(timeout=20)
    assert group in {g.group_id for g in listed.valid}
    listed = admin.list_consumer_groups(types={ConsumerGroupType.CLASSIC}).result(timeout=20)
    assert group not in {g.group_id for g in listed.valid}
    with pytest.raises(KafkaException) as refused:
        admin.delete_consumer_groups([group])[group].result(timeout=20)
    assert refused.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    for w in ws:
        assert w.close() == 0
    wait_until(lambda: describe().state == ConsumerGroupState.EMPTY, SLACK_S, "the group to empty")
    admin.delete_consumer_groups([group])[group].result(timeout=20)
    listed = admin.list_consumer_groups().result(timeout=20)
    assert group not in {g.group_id for g in listed.valid}
    # librdkafka falls back to DescribeGroups when ConsumerGroupDescribe finds no group; either the
    # lookup fails or the group is reported Dead.
    try:
        assert describe().state == ConsumerGroupState.DEAD
    except KafkaException as gone:
        assert gone.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND


@pytest.mark.timeout(120)
def test_empty_groups_switch_protocol_and_keep_offsets(broker_factory, topic):
    """Kafka's rule: an empty classic group becomes a consumer group on the first consumer-protocol
    join, and an empty consumer group a classic one on the first JoinGroup; committed offsets stay."""
    broker = broker_factory(**CONSUMER_GROUPS)
    ck_create_topic(broker, topic, partitions=2)
    values = [f"v{i:03d}" for i in range(90)]
    ck_produce(ck_producer(broker), topic, [(v.encode(), v.encode(), None) for v in values])
    group = "kip848-switch-" + topic
    classic = member_conf(broker, group, "classic", debug=None)
    modern = kip848_conf(broker, group, "modern", debug=None)
    first = consume_and_commit(broker, classic, topic, 30)
    second = consume_and_commit(broker, modern, topic, 30)
    third = consume_and_commit(broker, classic, topic, 30)
    got = [v for _, _, v in first + second + third]
    assert sorted(got) == values, "the group did not resume from its committed offsets"


@pytest.mark.timeout(120)
def test_classic_and_consumer_members_do_not_mix(broker_factory, topic, spawn):
    """A group with live members keeps its protocol: the other kind of member is refused (Kavka
    does not migrate live groups) and the group's members are undisturbed."""
    broker = broker_factory(**CONSUMER_GROUPS)
    ck_create_topic(broker, topic, partitions=2)
    group = "kip848-mix-" + topic
    modern = spawn("modern", kip848_conf(broker, group, "modern"), topic)
    wait_split([modern], 2, [2], SLACK_S, "to the consumer-protocol member")
    mark = modern.mark()
    classic = spawn("classic", member_conf(broker, group, "classic"), topic)
    wait_until(lambda: classic.of_kind("poll_error", "client_error"), SLACK_S,
               "the classic member to be refused", [modern, classic])
    errors = classic.of_kind("poll_error", "client_error")
    assert any(e["name"] == "INCONSISTENT_GROUP_PROTOCOL" for e in errors), classic.describe()
    assert not classic.owned()
    assert not modern.rebalance_events(since=mark), modern.describe()


@pytest.mark.timeout(120)
def test_regex_subscription_follows_new_topics(broker_factory, topic, spawn):
    broker = broker_factory(**CONSUMER_GROUPS)
    prefix = topic[:40] + "-rx"
    admin = ck_admin(broker)
    for f in admin.create_topics([NewTopic(f"{prefix}-a", 2, 1)]).values():
        f.result(timeout=20)
    group = "kip848-regex-" + topic
    c = Consumer(kip848_conf(broker, group, "rx", debug=None))
    try:
        c.subscribe([f"^{prefix}-.*"])

        def assigned():
            c.poll(0.1)
            return {(tp.topic, tp.partition) for tp in c.assignment()}

        wait_until(lambda: assigned() == {(f"{prefix}-a", 0), (f"{prefix}-a", 1)}, SLACK_S,
                   "the regex's topic to be assigned")
        for f in admin.create_topics([NewTopic(f"{prefix}-b", 1, 1)]).values():
            f.result(timeout=20)
        wait_until(lambda: (f"{prefix}-b", 0) in assigned(), SLACK_S,
                   "a topic created later that matches the regex to be assigned")
    finally:
        c.close()
