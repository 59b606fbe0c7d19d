"""The official Java client (Apache kafka-clients 4.1.0) against Kavka.

Each test starts its own broker (group.initial.rebalance.delay.ms=0) and one JVM running
kavka.compat.Driver (src/), which performs the client calls and reports JSON lines.
Tests marked kip848 need group.protocol=consumer (ConsumerGroupHeartbeat, API key 68) and
skip while the broker does not advertise that API.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from conftest import GROUP_OVERRIDES
from kavka_harness import free_port, kavka_certs, node_store_settings
from rawkafka import Conn, fetch_v4

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def batches(records: bytes) -> list[dict]:
    """Header fields of each whole v2 record batch in a Fetch response's records bytes."""
    out, pos = [], 0
    while pos + 61 <= len(records):
        base_offset, length = struct.unpack_from(">qi", records, pos)
        if pos + 12 + length > len(records):
            break
        magic = records[pos + 16]
        (attributes,) = struct.unpack_from(">h", records, pos + 21)
        (last_delta,) = struct.unpack_from(">i", records, pos + 23)
        producer_id, producer_epoch, base_seq, count = struct.unpack_from(">qhii", records, pos + 43)
        out.append({"base_offset": base_offset, "magic": magic, "codec": attributes & 7,
                    "last_offset_delta": last_delta, "producer_id": producer_id,
                    "producer_epoch": producer_epoch, "base_sequence": base_seq, "count": count})
        pos += 12 + length
    return out


def raw_batches(broker, topic: str, partition: int = 0) -> list[dict]:
    out, offset = [], 0
    with Conn(broker.port) as c:
        for _ in range(100):
            r = fetch_v4(c, topic, partition, offset, max_wait_ms=100)
            assert r["error"] == 0, r
            got = batches(r["records"])
            if not got:
                break
            out += got
            offset = got[-1]["base_offset"] + got[-1]["last_offset_delta"] + 1
    return out


def create_topic(j, topic: str, partitions: int) -> None:
    r = j.call("create-topics", topic=topic, partitions=partitions, rf=1)
    assert r["results"] == {topic: "ok"}, r


def produce_per_partition(j, topic: str, partitions: int, per_partition: int, prefix: str) -> None:
    for p in range(partitions):
        r = j.call("produce", topic=topic, count=per_partition, partition=p, prefix=f"{prefix}{p}")
        assert [a[0] for a in r["acked"]] == [p] * per_partition, r


def keyset(records) -> set[tuple]:
    """(partition, offset, key, value) of consumed records."""
    return {(r[1], r[2], r[3], r[4]) for r in records}


def expected_keyset(partitions: int, per_partition: int, prefix: str, first_offset: int = 0):
    return {(p, first_offset + i, f"{prefix}{p}-k{i}", f"{prefix}{p}-v{i}")
            for p in range(partitions) for i in range(per_partition)}


def assignments(j, names) -> dict[str, list[int]]:
    return {n: sorted(tp[1] for tp in j.call("consumer-state", name=n)["assignment"]) for n in names}


def wait_split(j, names, partitions: int, timeout: float = 45, what: str = "",
               group: str | None = None, settle: float = 1.0) -> dict:
    """Wait until every named consumer owns at least one partition, together they own each
    partition exactly once, and that has not changed for `settle` seconds. With `group` (a
    consumer-protocol group) also wait until every member's current assignment equals its
    target assignment in describeConsumerGroups, so a reconciliation still in progress is not
    taken for the result."""
    state = {"split": None, "since": 0.0}

    def settled_with_target(a) -> bool:
        if group is None:
            return True
        d = j.call("describe-groups", group=group)["groups"][group]
        assert not d.get("error"), f"describeConsumerGroups({group}) failed: {d}"
        if len(d["members"]) != len(names):
            return False
        for m in d["members"]:
            name = m["client_id"].removeprefix("kavka-java-")
            cur = sorted(tp[1] for tp in m["assignment"])
            tgt = m["target_assignment"]
            assert tgt is not None, ("describeConsumerGroups gave no target assignment for a "
                                     f"member of consumer-protocol group {group}: {d}")
            if cur != sorted(tp[1] for tp in tgt) or a.get(name) != cur:
                return False
        return True

    def check():
        a = assignments(j, names)
        owned = [p for ps in a.values() for p in ps]
        if sorted(owned) != list(range(partitions)) or not all(a.values()) \
                or not settled_with_target(a):
            state["split"] = None
            return None
        now = time.monotonic()
        if state["split"] != a:
            state["split"], state["since"] = a, now
            return None
        return a if now - state["since"] >= settle else None
    return j.wait_until(check, timeout=timeout, what=f"partitions split over {names} {what}")


def wait_consumed(j, expected: set, timeout: float = 30) -> None:
    j.wait_until(lambda: expected <= keyset(j.records()), timeout=timeout,
                 what=f"{len(expected)} records consumed")


def committed(j, group: str) -> dict[int, int]:
    return {p: off for _t, p, off in j.call("list-group-offsets", group=group)["offsets"]}


def wait_committed(j, group: str, want: dict[int, int], timeout: float = 20) -> None:
    j.wait_until(lambda: committed(j, group) == want, timeout=timeout,
                 what=f"committed offsets {want} for {group}")


def assert_no_commit_errors(j) -> None:
    errs = [e for e in j.events if e["event"] == "records" and e["commit"] != "ok"]
    assert not errs, f"commitSync failed: {errs}"
    fails = [e for e in j.events if e["event"] == "failure"]
    assert not fails, fails


# ---------------------------------------------------------------- produce / consume


@pytest.mark.parametrize("codec", list(CODECS))
def test_roundtrip_compression(gbroker, java, topic, codec):
    """Produce 300 records with the codec, read them back in order through a group consumer,
    and check on the wire that the stored batches carry the codec the client chose."""
    j = java(gbroker)
    assert j.version == "4.1.0"
    create_topic(j, topic, 1)
    n = 300
    r = j.call("produce", topic=topic, count=n, compression=codec, value_bytes=200,
               linger_ms=50, prefix="c")
    assert r["acked"] == [[0, i] for i in range(n)]

    r = j.call("consume", topic=topic, group=f"g-{codec}", count=n, timeout=30)
    assert not r["timed_out"], r
    assert [(rec[2], rec[3]) for rec in r["records"]] == [(i, f"c-k{i}") for i in range(n)]
    for i, rec in enumerate(r["records"]):
        value = rec[4]
        assert len(value) == 200 and value.startswith(f"c-v{i} payload-{i % 10}"), rec
    assert r["rebalances"] and r["rebalances"][0] == {"assigned": [[topic, 0]]}
    assert r["assignment"] == [[topic, 0]]

    bs = raw_batches(gbroker, topic)
    assert sum(b["count"] for b in bs) == n
    assert all(b["magic"] == 2 for b in bs)
    assert {b["codec"] for b in bs} == {CODECS[codec]}, bs
    if codec != "none":
        assert len(bs) < n, "linger.ms=50 should have batched the records"
    assert committed(j, f"g-{codec}") == {0: n}


def test_idempotent_producer(gbroker, java, topic):
    """enable.idempotence=true with acks=all: InitProducerId, sequence numbers per partition,
    contiguous offsets, every record exactly once; a second producer gets a new producer id."""
    j = java(gbroker)
    create_topic(j, topic, 3)
    n = 600
    r1 = j.call("produce", topic=topic, count=n, idempotent=True, acks="all", prefix="a",
                compression="lz4")
    r2 = j.call("produce", topic=topic, count=n, idempotent=True, acks="all", prefix="b")
    per_part: dict[int, list[int]] = {}
    for p, off in r1["acked"] + r2["acked"]:
        per_part.setdefault(p, []).append(off)
    assert sum(len(v) for v in per_part.values()) == 2 * n
    for p, offs in per_part.items():
        assert sorted(offs) == list(range(len(offs))), f"partition {p} offsets not contiguous"

    r = j.call("consume", topic=topic, group="g-idem", count=2 * n, timeout=30)
    assert not r["timed_out"], r
    keys = [rec[3] for rec in r["records"]]
    assert len(keys) == 2 * n and set(keys) == {f"{x}-k{i}" for x in "ab" for i in range(n)}

    pids = {}
    for p in per_part:
        bs = raw_batches(gbroker, topic, p)
        by_pid: dict[int, list[dict]] = {}
        for b in bs:
            assert b["producer_id"] >= 0 and b["producer_epoch"] >= 0, b
            by_pid.setdefault(b["producer_id"], []).append(b)
        for pid, pbs in by_pid.items():
            pids.setdefault(pid, 0)
            seq = 0
            for b in pbs:
                assert b["base_sequence"] == seq, f"partition {p} producer {pid}: {pbs}"
                seq += b["count"]
            pids[pid] += seq
    assert len(pids) == 2, f"expected two producer ids, got {pids}"
    assert sorted(pids.values()) == [n, n]


# ---------------------------------------------------------------- classic groups


@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_classic_group_splits_commits_and_resumes(gbroker, java, topic, assignor):
    """group.protocol=classic: c1 alone reads and commits 4 partitions; c2 joins and the two
    split them; new records are read once, each by the owner of its partition (so the
    partitions that moved to c2 resumed at c1's committed offsets); describe shows the two
    members; after both leave, a new consumer resumes from the committed offsets. Run with the
    client's default assignors (range first: eager rebalancing) and with cooperative-sticky
    (incremental cooperative rebalancing)."""
    j = java(gbroker)
    group = "g-classic"
    classes = {"range": None,
               "cooperative-sticky": "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"}
    opts = {"protocol": "classic", "assignor": classes[assignor]}
    create_topic(j, topic, 4)
    produce_per_partition(j, topic, 4, 10, "x")

    j.call("consumer-start", name="c1", topic=topic, group=group, **opts)
    wait_consumed(j, expected_keyset(4, 10, "x"))
    wait_committed(j, group, {p: 10 for p in range(4)})

    j.call("consumer-start", name="c2", topic=topic, group=group, **opts)
    split = wait_split(j, ["c1", "c2"], 4)
    assert sorted(len(v) for v in split.values()) == [2, 2], split
    c1_before = len(j.records("c1"))
    produce_per_partition(j, topic, 4, 5, "y")
    wait_consumed(j, expected_keyset(4, 5, "y", first_offset=10))
    wait_committed(j, group, {p: 15 for p in range(4)})
    assert_no_commit_errors(j)
    assert assignments(j, ["c1", "c2"]) == split, "assignment changed without a membership change"
    new_c1 = j.records("c1")[c1_before:]
    new_c2 = j.records("c2")
    assert {r[1] for r in new_c1} == set(split["c1"]), new_c1
    assert {r[1] for r in new_c2} == set(split["c2"]), new_c2
    assert sorted(keyset(new_c1 + new_c2)) == sorted(expected_keyset(4, 5, "y", first_offset=10)), \
        "records after the rebalance were read twice or re-read from before the committed offsets"
    assert len(new_c1) + len(new_c2) == 20

    d = j.call("describe-groups", group=group)["groups"][group]
    assert d.get("error") is None, d
    assert d["state"] == "STABLE" and d["type"] == "CLASSIC" and not d["simple"], d
    assert d["assignor"] == assignor, d
    members = {m["client_id"]: sorted(tp[1] for tp in m["assignment"]) for m in d["members"]}
    assert members == {"kavka-java-c1": split["c1"], "kavka-java-c2": split["c2"]}, d
    listed = {g["group_id"]: g for g in j.call("list-groups")["groups"]}
    assert group in listed and listed[group]["state"] == "STABLE", listed

    for name in ("c1", "c2"):
        r = j.call("consumer-stop", name=name)
        assert r["stopped"] and r["failure"] is None and r["close_error"] is None, r
    d = j.call("describe-groups", group=group)["groups"][group]
    assert d["state"] == "EMPTY" and d["members"] == [], d
    assert committed(j, group) == {p: 15 for p in range(4)}

    produce_per_partition(j, topic, 4, 3, "w")
    j.call("consumer-start", name="c3", topic=topic, group=group, **opts)
    new = expected_keyset(4, 3, "w", first_offset=15)
    j.wait_until(lambda: new <= keyset(j.records("c3")), timeout=30, what="c3 read the new records")
    time.sleep(0.5)
    assert keyset(j.records("c3")) == new, "c3 re-read records below the committed offsets"
    wait_committed(j, group, {p: 18 for p in range(4)})


# ---------------------------------------------------------------- admin


def test_admin_topics_and_cluster(gbroker, java, topic):
    j = java(gbroker)
    t1, t2 = f"{topic}-a", f"{topic}-b"
    r = j.call("create-topics", topic=f"{t1},{t2}", partitions=3, rf=1)
    assert r["results"] == {t1: "ok", t2: "ok"}, r
    r = j.call("create-topics", topic=t1, partitions=3, rf=1)
    assert r["results"] == {t1: "TopicExistsException"}, r
    r = j.call("create-topics", topic=f"{topic}-c", partitions=1, rf=3)
    assert r["results"] == {f"{topic}-c": "InvalidReplicationFactorException"}, r

    c = j.call("describe-cluster")
    assert c["cluster_id"], c
    assert len(c["nodes"]) == 1, c
    node = c["nodes"][0]
    assert (node["host"], node["port"]) == ("127.0.0.1", gbroker.port), c
    assert c["controller"] in (None, node["id"]), c

    names = j.call("list-topics")["topics"]
    assert t1 in names and t2 in names and f"{topic}-c" not in names, names
    assert not any(n.startswith("__") for n in names), names

    d = j.call("describe-topics", topic=f"{t1},{t2},{topic}-missing")["topics"]
    for t in (t1, t2):
        assert d[t]["name"] == t and not d[t]["internal"], d
        assert d[t]["topic_id"] != "AAAAAAAAAAAAAAAAAAAAAA", d
        assert d[t]["partitions"] == [{"partition": p, "leader": node["id"], "replicas": [node["id"]],
                                       "isr": [node["id"]]} for p in range(3)], d
    assert d[t1]["topic_id"] != d[t2]["topic_id"]
    assert d[f"{topic}-missing"] == {"error": "UnknownTopicOrPartitionException"}, d

    r = j.call("delete-topics", topic=t2)
    assert r["results"] == {t2: "ok"}, r
    j.wait_until(lambda: t2 not in j.call("list-topics")["topics"], timeout=10, what="t2 deleted")


def test_admin_describe_metadata_quorum(gbroker, java):
    """Admin.describeMetadataQuorum (DescribeQuorum v2): a single node is the quorum's only voter and
    its leader; it has no controller listener, so its node entry lists no endpoints."""
    j = java(gbroker)
    node_id = j.call("describe-cluster")["nodes"][0]["id"]
    q = j.call("describe-quorum")
    assert q["leader_id"] == node_id, q
    assert q["leader_epoch"] >= 1, q
    assert q["high_watermark"] > 0, q
    assert [v["id"] for v in q["voters"]] == [node_id], q
    leader = q["voters"][0]
    assert leader["log_end_offset"] >= q["high_watermark"], q
    assert leader["directory_id"] == "AAAAAAAAAAAAAAAAAAAAAA", q
    now_ms = time.time() * 1000
    for ts in (leader["last_fetch_timestamp"], leader["last_caught_up_timestamp"]):
        assert ts is not None and now_ms - 60_000 <= ts <= now_ms + 1_000, q
    assert q["observers"] == [], q
    assert q["nodes"] == {str(node_id): []}, q


def test_admin_consumer_groups(gbroker, java, topic):
    """listConsumerGroups, describeConsumerGroups, listConsumerGroupOffsets, deleteConsumerGroups."""
    j = java(gbroker)
    create_topic(j, topic, 2)
    produce_per_partition(j, topic, 2, 5, "z")
    r = j.call("consume", topic=topic, group="g-done", count=10, timeout=30)
    assert not r["timed_out"], r

    listed = {g["group_id"]: g for g in j.call("list-groups")["groups"]}
    assert "g-done" in listed, listed
    assert listed["g-done"]["state"] == "EMPTY", listed
    assert listed["g-done"]["type"] in (None, "CLASSIC"), listed
    assert committed(j, "g-done") == {0: 5, 1: 5}
    d = j.call("describe-groups", group="g-done")["groups"]["g-done"]
    assert d["state"] == "EMPTY" and d["members"] == [] and d["coordinator"] is not None, d

    # An active group cannot be deleted.
    j.call("consumer-start", name="live", topic=topic, group="g-live", protocol="classic")
    j.wait_event(lambda e: e["event"] == "assigned" and e["name"] == "live" and e["assignment"],
                 what="live consumer assigned")
    r = j.call("delete-groups", group="g-live,g-done,g-never-existed")
    assert r["results"] == {"g-live": "GroupNotEmptyException", "g-done": "ok",
                            "g-never-existed": "GroupIdNotFoundException"}, r

    listed = {g["group_id"] for g in j.call("list-groups")["groups"]}
    assert "g-done" not in listed and "g-live" in listed, listed
    assert committed(j, "g-done") == {}, "offsets of a deleted group must be gone"

    d = j.call("describe-groups", group="g-live,g-never-existed")["groups"]
    assert d["g-live"]["state"] == "STABLE" and len(d["g-live"]["members"]) == 1, d
    assert sorted(tp[1] for tp in d["g-live"]["members"][0]["assignment"]) == [0, 1], d
    # Kafka 4 answers DescribeGroups v6 for an unknown group with GROUP_ID_NOT_FOUND; earlier
    # versions answer state Dead with no members.
    unknown = d["g-never-existed"]
    assert unknown.get("error") == "GroupIdNotFoundException" or \
        (unknown.get("state") == "DEAD" and unknown["members"] == []), unknown


# ---------------------------------------------------------------- one-shot CLI mode


def test_one_shot_cli(gbroker, java_classpath, topic):
    """The driver's command-line mode (one JVM per command) works too: produce then consume."""
    import json
    import subprocess

    def run(*args):
        p = subprocess.run(["java", "-XX:TieredStopAtLevel=1", "-cp", java_classpath,
                            "kavka.compat.Driver", *args, "--bootstrap", gbroker.bootstrap],
                           capture_output=True, text=True, timeout=90)
        lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
        assert p.returncode == 0 and lines and lines[-1]["ok"], (p.returncode, p.stdout, p.stderr[-4000:])
        return lines[-1]

    r = run("produce", "--topic", topic, "--count", "5", "--compression", "zstd", "--idempotent")
    assert [a[1] for a in r["acked"]] == [0, 1, 2, 3, 4]
    r = run("consume", "--topic", topic, "--group", "g-cli", "--count", "5", "--timeout", "20")
    assert [rec[3] for rec in r["records"]] == [f"m-k{i}" for i in range(5)]


# ---------------------------------------------------------------- KIP-848 consumer protocol


def produce_and_check_owners(j, topic: str, group: str, split: dict, per_partition: int,
                             prefix: str, first_offset: int) -> None:
    """Produce per_partition records to each partition and check that each is read exactly
    once, by the consumer that owns its partition in `split`, and committed."""
    before = {n: len(j.records(n)) for n in split}
    produce_per_partition(j, topic, 4, per_partition, prefix)
    want = expected_keyset(4, per_partition, prefix, first_offset=first_offset)
    wait_consumed(j, want)
    wait_committed(j, group, {p: first_offset + per_partition for p in range(4)})
    got_all = []
    for n, parts in split.items():
        got = [r for r in j.records(n)[before[n]:] if r[4].startswith(prefix)]
        assert {r[1] for r in got} <= set(parts), f"{n} read partitions it does not own: {got}"
        got_all += got
    assert len(got_all) == len(want) and keyset(got_all) == want, \
        f"records read twice, lost, or re-read below the committed offsets: {got_all}"


@pytest.mark.kip848
def test_consumer_protocol_group_rebalances(kip848_broker, java, topic):
    """group.protocol=consumer: c1 alone reads and commits; c2 joins and they split the 4
    partitions; a third joins and gets some; c1 leaves and its partitions move; after each
    change new records are read once, by the partition's owner, from the committed offsets;
    after everyone leaves a new member resumes from the committed offsets."""
    b = kip848_broker
    j = java(b)
    group = "g-848"
    create_topic(j, topic, 4)
    produce_per_partition(j, topic, 4, 10, "x")

    j.call("consumer-start", name="c1", topic=topic, group=group, protocol="consumer")
    wait_consumed(j, expected_keyset(4, 10, "x"))
    wait_committed(j, group, {p: 10 for p in range(4)})

    j.call("consumer-start", name="c2", topic=topic, group=group, protocol="consumer")
    split = wait_split(j, ["c1", "c2"], 4, what="(two members)", group=group)
    assert sorted(len(v) for v in split.values()) == [2, 2], split
    produce_and_check_owners(j, topic, group, split, 5, "y", 10)

    d = j.call("describe-groups", group=group)["groups"][group]
    assert d.get("error") is None, d
    assert d["type"] == "CONSUMER" and d["state"] == "STABLE", d
    assert d["assignor"] == "uniform", d  # Kafka's default group.consumer.assignors: uniform,range
    members = {m["client_id"]: sorted(tp[1] for tp in m["assignment"]) for m in d["members"]}
    assert members == {"kavka-java-c1": split["c1"], "kavka-java-c2": split["c2"]}, d
    epoch2 = d["group_epoch"]
    assert epoch2 is not None and epoch2 >= 2, d  # one bump per member joining
    assert all(m["member_epoch"] == epoch2 for m in d["members"]), d
    listed = {g["group_id"]: g for g in j.call("list-groups")["groups"]}
    assert listed[group]["type"] == "CONSUMER" and listed[group]["state"] == "STABLE", listed

    j.call("consumer-start", name="c3", topic=topic, group=group, protocol="consumer")
    split3 = wait_split(j, ["c1", "c2", "c3"], 4, what="(third member joined)", group=group)
    assert sorted(len(v) for v in split3.values()) == [1, 1, 2], split3
    j.wait_event(lambda e: e["event"] == "assigned" and e["name"] == "c3" and e["partitions"],
                 what="c3's rebalance listener saw its partitions")
    produce_and_check_owners(j, topic, group, split3, 2, "z", 15)
    d = j.call("describe-groups", group=group)["groups"][group]
    assert d["group_epoch"] > epoch2 and d["state"] == "STABLE", d

    r = j.call("consumer-stop", name="c1")
    assert r["stopped"] and r["failure"] is None and r["close_error"] is None, r
    split2 = wait_split(j, ["c2", "c3"], 4, what="(c1 left)", group=group)
    assert sorted(len(v) for v in split2.values()) == [2, 2], split2
    produce_and_check_owners(j, topic, group, split2, 2, "v", 17)
    assert_no_commit_errors(j)

    for name in ("c2", "c3"):
        r = j.call("consumer-stop", name=name)
        assert r["stopped"] and r["failure"] is None, r
    d = j.call("describe-groups", group=group)["groups"][group]
    assert d["state"] == "EMPTY" and d["members"] == [], d

    produce_per_partition(j, topic, 4, 3, "w")
    j.call("consumer-start", name="c4", topic=topic, group=group, protocol="consumer")
    new = expected_keyset(4, 3, "w", first_offset=19)
    j.wait_until(lambda: new <= keyset(j.records("c4")), timeout=30, what="c4 read the new records")
    time.sleep(0.5)
    assert keyset(j.records("c4")) == new, "c4 re-read records below the committed offsets"
    wait_committed(j, group, {p: 22 for p in range(4)})


@pytest.mark.kip848
def test_consumer_protocol_one_shot_consume_and_admin(kip848_broker, java, topic):
    """A single consumer-protocol consumer reads everything and commits; the group is then
    listed as a consumer group and can be deleted once empty."""
    j = java(kip848_broker)
    create_topic(j, topic, 2)
    produce_per_partition(j, topic, 2, 7, "q")
    r = j.call("consume", topic=topic, group="g-848-once", protocol="consumer", count=14, timeout=30)
    assert not r["timed_out"], r
    assert keyset(r["records"]) == expected_keyset(2, 7, "q")
    # The new consumer may report an empty assignment first; nothing may be revoked or lost.
    assert all(list(ev) == ["assigned"] for ev in r["rebalances"]), r["rebalances"]
    assert sorted(tp[1] for ev in r["rebalances"] for tp in ev["assigned"]) == [0, 1], r
    assert r["assignment"] == [[topic, 0], [topic, 1]], r
    assert committed(j, "g-848-once") == {0: 7, 1: 7}
    listed = {g["group_id"]: g for g in j.call("list-groups")["groups"]}
    assert listed["g-848-once"]["type"] == "CONSUMER", listed
    r = j.call("delete-groups", group="g-848-once")
    assert r["results"] == {"g-848-once": "ok"}, r
    assert committed(j, "g-848-once") == {}


def test_kip848_gate_matches_client_behaviour(gbroker, java, topic):
    """While API 68 is not advertised, a group.protocol=consumer client must fail with
    UnsupportedVersionException rather than hang or silently fall back; once it is advertised
    this checks nothing (the kip848 tests take over)."""
    from conftest import CONSUMER_GROUP_HEARTBEAT, broker_api_versions
    if CONSUMER_GROUP_HEARTBEAT in broker_api_versions(gbroker):
        pytest.skip("ConsumerGroupHeartbeat is advertised: covered by the kip848 tests")
    j = java(gbroker)
    create_topic(j, topic, 1)
    j.call("produce", topic=topic, count=1)
    r = j.call("consume", topic=topic, group="g-unsupported", protocol="consumer", count=1,
               timeout=10, check=False)
    assert not r["ok"] and "UnsupportedVersion" in r["error"], r


# ---------------------------------------------------------------- TLS: mTLS with `kavka certs`

# Client settings added to the property files of the refused cases: an authentication failure
# must surface as an error well within these, never as a hang.
BOUNDED_CLIENT_TIMEOUTS = {"max.block.ms": "15000", "default.api.timeout.ms": "15000",
                           "request.timeout.ms": "10000", "socket.connection.setup.timeout.ms": "5000",
                           "socket.connection.setup.timeout.max.ms": "5000",
                           "reconnect.backoff.max.ms": "1000"}


def read_properties(path: Path) -> dict[str, str]:
    """A Java properties file as written by `kavka certs` (key=value lines, # comments)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def write_properties(path: Path, props: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


@pytest.fixture
def certs(kavka_bin, tmp_path) -> Path:
    """`kavka certs` output: the CA and truststore, node n1 for 127.0.0.1 and localhost, client
    alice (keystore alice.p12 and alice-client-ssl.properties)."""
    d = tmp_path / "certs"
    kavka_certs(kavka_bin, d, "ca")
    kavka_certs(kavka_bin, d, "node", "--name", "n1", "--ip", "127.0.0.1", "--dns", "localhost")
    kavka_certs(kavka_bin, d, "client", "--name", "alice")
    for f in ("ca.pem", "truststore.p12", "truststore.password", "n1.p12", "n1.password",
              "alice.p12", "alice.password", "alice-client-ssl.properties"):
        assert (d / f).is_file(), f"kavka certs did not write {f}"
    return d


def ssl_broker(broker_factory, certs: Path, node: str = "n1", client_auth: str = "required"):
    """A single node whose only listener is SSL with the node's PKCS12 keystore and the
    `kavka certs` truststore."""
    port = free_port()
    return broker_factory(port=port, **GROUP_OVERRIDES, **{
        "listeners": f"SSL://127.0.0.1:{port}",
        "ssl.client.auth": client_auth,
        **node_store_settings(certs, node),
    })


def assert_refused(j, topic: str, error_class: str = "SslAuthenticationException",
                   bound_s: float = 30) -> list[dict]:
    """A producer and an admin call both fail with error_class, each within bound_s."""
    replies = []
    for cmd, opts in (("produce", {"topic": topic, "count": 1}), ("list-topics", {})):
        t0 = time.monotonic()
        r = j.call(cmd, timeout=bound_s + 30, check=False, **opts)
        elapsed = time.monotonic() - t0
        assert not r["ok"], f"{cmd} succeeded without valid TLS credentials: {r}"
        assert r["error_class"] == error_class, r
        assert elapsed < bound_s, f"{cmd} took {elapsed:.1f}s to fail: {r}"
        replies.append(r)
    return replies


def test_mtls_pkcs12_produce_consume(certs, broker_factory, java, topic):
    """The issue's test: the Java client connects over mTLS (ssl.client.auth=required) with the
    PKCS12 keystore and truststore from `kavka certs`, using <client>-client-ssl.properties
    as written, with Java's default host name verification (https), and produces and consumes."""
    props_path = certs / "alice-client-ssl.properties"
    props = read_properties(props_path)
    assert props["security.protocol"] == "SSL", props
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PKCS12", props
    assert Path(props["ssl.keystore.location"]) == certs / "alice.p12", props
    assert Path(props["ssl.truststore.location"]) == certs / "truststore.p12", props
    # Not overridden: the client keeps ssl.endpoint.identification.algorithm=https.
    assert "ssl.endpoint.identification.algorithm" not in props, props

    b = ssl_broker(broker_factory, certs)
    j = java(b, client_config=props_path)
    create_topic(j, topic, 2)
    produce_per_partition(j, topic, 2, 5, "s")
    r = j.call("consume", topic=topic, group="g-mtls", count=10, timeout=30)
    assert not r["timed_out"], r
    assert keyset(r["records"]) == expected_keyset(2, 5, "s"), r
    assert committed(j, "g-mtls") == {0: 5, 1: 5}
    c = j.call("describe-cluster")
    assert [(n["host"], n["port"]) for n in c["nodes"]] == [("127.0.0.1", b.port)], c

    # The same files through the DNS name in the node's certificate.
    j2 = java(b, client_config=props_path, bootstrap=f"localhost:{b.port}")
    r = j2.call("consume", topic=topic, group="g-mtls-localhost", count=10, timeout=30)
    assert keyset(r["records"]) == expected_keyset(2, 5, "s"), r
    # (The harness's start-up probe, a bare TCP connect, shows as "tls handshake eof".)
    failed = [line for line in b.log_text().splitlines()
              if "TLS handshake failed" in line and "tls handshake eof" not in line]
    assert not failed, failed


def test_mtls_client_without_keystore_is_refused(certs, broker_factory, java, topic, tmp_path):
    """The same client without its keystore (truststore only): the broker requires a client
    certificate, so the handshake fails and the client reports SslAuthenticationException
    promptly (bounded client timeouts), for the producer and the admin client alike."""
    props = read_properties(certs / "alice-client-ssl.properties")
    no_keystore = {k: v for k, v in props.items()
                   if not k.startswith("ssl.keystore.") and k != "ssl.key.password"}
    assert no_keystore["ssl.truststore.location"] and "ssl.keystore.location" not in no_keystore
    path = write_properties(tmp_path / "no-keystore.properties",
                            {**no_keystore, **BOUNDED_CLIENT_TIMEOUTS})
    b = ssl_broker(broker_factory, certs)
    j = java(b, client_config=path)
    assert_refused(j, topic)
    refused = [line for line in b.log_text().splitlines()
               if "TLS handshake failed" in line and "no certificates" in line]
    assert refused, b.log_tail(4000)


def test_tls_host_name_verification_is_on(certs, kavka_bin, broker_factory, java, topic, tmp_path):
    """A node certificate whose names do not include the address the client dials
    (127.0.0.1): with the properties file as written (Java's default
    ssl.endpoint.identification.algorithm=https) the client refuses the broker."""
    kavka_certs(kavka_bin, certs, "node", "--name", "elsewhere", "--dns", "elsewhere.invalid")
    props = read_properties(certs / "alice-client-ssl.properties")
    path = write_properties(tmp_path / "alice-bounded.properties", {**props, **BOUNDED_CLIENT_TIMEOUTS})
    b = ssl_broker(broker_factory, certs, node="elsewhere")
    j = java(b, client_config=path)
    assert_refused(j, topic)
    # The client's reason (logged with the SslAuthenticationException's cause), and the broker's.
    java_log = j.log_path.read_text(errors="replace")
    assert "No subject alternative names matching IP address 127.0.0.1" in java_log, java_log[-4000:]
    assert "CertificateUnknown" in b.log_text(), b.log_tail(4000)



# ---------------------------------------------------------------- SASL (SCRAM, PLAIN) and ACLs

SASL_CLUSTER_ID = "kavkaJavaSaslCluster01"
# PLAIN users of the SASL_PLAINTEXT listener's JAAS configuration (the ACL test).
PLAIN_USERS = {"admin": "admin-secret", "bob": "bob-secret"}
PLAIN_JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
              + " ".join(f'user_{u}="{p}"' for u, p in PLAIN_USERS.items()) + ";")


def sasl_broker(broker_factory, listeners: dict[str, str], client_listener: str,
                **overrides: str):
    """A single combined broker/controller node (process.roles=broker,controller) with the given
    client listeners (name -> security protocol), a PLAINTEXT inter-broker listener INTERNAL
    and a PLAINTEXT CONTROLLER listener, all on free loopback ports. broker.port is
    client_listener's port; broker.ports maps every listener name to its port."""
    ports = {name: free_port() for name in [*listeners, "INTERNAL", "CONTROLLER"]}
    protocols = {**listeners, "INTERNAL": "PLAINTEXT", "CONTROLLER": "PLAINTEXT"}
    b = broker_factory(port=ports[client_listener], start=False, set_listener_and_dirs=False,
                       **GROUP_OVERRIDES, **{
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in ports.items()),
        "advertised.listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in ports.items()
                                         if n != "CONTROLLER"),
        "listener.security.protocol.map": ",".join(f"{n}:{p}" for n, p in protocols.items()),
        "inter.broker.listener.name": "INTERNAL",
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.voters": f"1@127.0.0.1:{ports['CONTROLLER']}",
        "offsets.topic.replication.factor": "1",
        **overrides,
    })
    b.overrides["log.dirs"] = str(b.data_dir)
    b.data_dir.mkdir(parents=True, exist_ok=True)
    (b.data_dir / "meta.properties").write_text(
        f"version=1\ncluster.id={SASL_CLUSTER_ID}\nnode.id=1\n")
    b.ports = ports
    b.start()
    return b


def jaas_scram(user: str, password: str) -> str:
    return ('org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="{user}" password="{password}";')


def jaas_plain(user: str, password: str) -> str:
    return ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            f'username="{user}" password="{password}";')


@pytest.fixture
def scram_ssl_broker(certs, broker_factory):
    """SASL_SSL listener CLIENT (SCRAM-SHA-256/512, the n1 certificate) and PLAINTEXT OPEN for
    the admin step; no authorizer."""
    return sasl_broker(broker_factory, {"CLIENT": "SASL_SSL", "OPEN": "PLAINTEXT"}, "CLIENT", **{
        "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
        **node_store_settings(certs, "n1"),
    })


def scram_ssl_properties(certs: Path, user: str, password: str) -> dict[str, str]:
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": jaas_scram(user, password),
        "ssl.truststore.type": "PKCS12",
        "ssl.truststore.location": str(certs / "truststore.p12"),
        "ssl.truststore.password": (certs / "truststore.password").read_text().strip(),
    }


def test_sasl_ssl_scram_sha512_produce_consume(certs, scram_ssl_broker, java, topic, tmp_path):
    """The Java Admin creates alice's SCRAM-SHA-512 credential (alterUserScramCredentials, over the
    PLAINTEXT listener); the Java producer and consumer then authenticate with
    security.protocol=SASL_SSL, sasl.mechanism=SCRAM-SHA-512 and ScramLoginModule (PKCS12
    truststore from `kavka certs`, host name verification on) and produce and consume."""
    b = scram_ssl_broker
    admin = java(b, bootstrap=f"127.0.0.1:{b.ports['OPEN']}")
    r = admin.call("alter-scram", user="alice", password="alice-secret",
                   mechanism="SCRAM-SHA-512", iterations=8192)
    assert r["results"] == {"alice": "ok"}, r
    create_topic(admin, topic, 2)

    props = write_properties(tmp_path / "alice-scram.properties",
                             {**scram_ssl_properties(certs, "alice", "alice-secret"),
                              **BOUNDED_CLIENT_TIMEOUTS})
    j = java(b, client_config=props)
    produce_per_partition(j, topic, 2, 5, "scram")
    r = j.call("consume", topic=topic, group="g-scram", count=10, timeout=30)
    assert not r["timed_out"], r
    assert keyset(r["records"]) == expected_keyset(2, 5, "scram"), r
    assert committed(j, "g-scram") == {0: 5, 1: 5}
    c = j.call("describe-cluster")
    assert [(n["host"], n["port"]) for n in c["nodes"]] == [("127.0.0.1", b.port)], c
    assert "SASL authentication failed" not in b.log_text(), b.log_tail(4000)


def test_sasl_ssl_scram_wrong_password_is_refused(certs, scram_ssl_broker, java, topic,
                                                  tmp_path):
    """alice exists (SCRAM-SHA-512) but the client sends another password: the producer and the
    admin client fail with SaslAuthenticationException, promptly (no hang); the broker logs the
    rejection and never the password."""
    b = scram_ssl_broker
    admin = java(b, bootstrap=f"127.0.0.1:{b.ports['OPEN']}")
    r = admin.call("alter-scram", user="alice", password="alice-secret",
                   mechanism="SCRAM-SHA-512", iterations=8192)
    assert r["results"] == {"alice": "ok"}, r
    create_topic(admin, topic, 1)

    wrong = "wr0ng-J4va-scram-pw"
    props = write_properties(tmp_path / "alice-wrong.properties",
                             {**scram_ssl_properties(certs, "alice", wrong),
                              **BOUNDED_CLIENT_TIMEOUTS})
    j = java(b, client_config=props)
    replies = assert_refused(j, topic, error_class="SaslAuthenticationException")
    assert all("SCRAM-SHA-512" in r["error"] or "uthentication failed" in r["error"]
               for r in replies), replies
    assert "connection rejected: SASL authentication failed" in b.log_text(), b.log_tail(4000)
    assert wrong not in b.log_text(), "the client's password was written to the broker log"


@pytest.fixture
def acl_broker(broker_factory):
    """SASL_PLAINTEXT listener CLIENT (PLAIN users admin and bob), StandardAuthorizer, super user
    User:admin; the node's own INTERNAL and CONTROLLER listeners are PLAINTEXT (no client uses
    them)."""
    return sasl_broker(broker_factory, {"CLIENT": "SASL_PLAINTEXT"}, "CLIENT", **{
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.client.plain.sasl.jaas.config": PLAIN_JAAS,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin",
    })


def plain_properties(user: str, password: str) -> dict[str, str]:
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.jaas.config": jaas_plain(user, password)}


def test_sasl_plain_acl_read_only_consumer(acl_broker, java, topic, tmp_path):
    """SASL PLAIN over SASL_PLAINTEXT with ACLs on. The super user admin creates the topic,
    produces, and (Admin.createAcls) allows bob Read on the topic and on group G only. bob's
    consumer reads everything and commits; bob's producer fails with
    TopicAuthorizationException; bob does not see another topic."""
    b = acl_broker
    admin = java(b, client_config=write_properties(tmp_path / "admin.properties",
                                                   plain_properties("admin", "admin-secret")))
    other = f"{topic}-other"
    create_topic(admin, topic, 2)
    create_topic(admin, other, 1)
    produce_per_partition(admin, topic, 2, 5, "acl")
    group = "g-bob"
    for rtype, name in (("TOPIC", topic), ("GROUP", group)):
        r = admin.call("create-acls", principal="User:bob", resource_type=rtype, name=name,
                       operation="READ")
        assert r["result"] == "ok", r

    bob = java(b, client_config=write_properties(
        tmp_path / "bob.properties", {**plain_properties("bob", "bob-secret"),
                                      **BOUNDED_CLIENT_TIMEOUTS}))
    r = bob.call("consume", topic=topic, group=group, count=10, timeout=30)
    assert not r["timed_out"], r
    assert keyset(r["records"]) == expected_keyset(2, 5, "acl"), r
    assert committed(admin, group) == {0: 5, 1: 5}

    t0 = time.monotonic()
    r = bob.call("produce", topic=topic, count=1, timeout=90, check=False)
    assert not r["ok"], f"bob produced with Read only: {r}"
    assert r["error_class"] == "TopicAuthorizationException", r
    assert time.monotonic() - t0 < 45, r

    r = bob.call("list-topics")
    assert topic in r["topics"] and other not in r["topics"], r
