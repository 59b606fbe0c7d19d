"""Concurrency: several producers on the same partitions, consumers tailing the log while
it is written, many simultaneous connections."""

from __future__ import annotations

import threading
import time

from kclients import (KPTopicPartition, TopicPartition, ck_consumer, ck_create_topic,
                      ck_produce, ck_producer, ck_read_partition, kp_consumer, kp_produce,
                      kp_producer)
from rawkafka import Conn, api_versions_v0, request_frame

PARTS = 4


def test_concurrent_idempotent_producers(broker, topic):
    """Four producers (two per client library) write to the same partitions at once: every
    record lands exactly once, at the offset it was acknowledged at, and each producer's
    records keep their order within a partition."""
    ck_create_topic(broker, topic, partitions=PARTS)
    n = 2500
    acked: dict[str, list[tuple[int, int, bytes]]] = {}
    errors: list = []

    def run(name: str, client: str):
        try:
            recs = [(f"{name}-{i % 13}".encode(), f"{name}:{i}".encode()) for i in range(n)]
            if client == "confluent":
                p = ck_producer(broker, **{"enable.idempotence": True, "linger.ms": 2})
                res = ck_produce(p, topic, recs)
                acked[name] = [(r[1], r[2], recs[i][1]) for i, r in enumerate(res)]
            else:
                p = kp_producer(broker, enable_idempotence=True, acks="all", linger_ms=2)
                try:
                    md = kp_produce(p, topic, recs)
                finally:
                    p.close(timeout=10)
                acked[name] = [(m.partition, m.offset, recs[i][1]) for i, m in enumerate(md)]
        except Exception as e:  # reported below; a thread's exception is otherwise lost
            errors.append((name, repr(e)))

    threads = [threading.Thread(target=run, args=(f"p{i}", c))
               for i, c in enumerate(["confluent", "kafka-python", "confluent", "kafka-python"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors
    logs = {p: {r.offset: r.value for r in ck_read_partition(broker, topic, p)}
            for p in range(PARTS)}
    total = sum(len(v) for v in logs.values())
    assert total == 4 * n, f"log holds {total} records, {4 * n} were acknowledged"
    for name, recs in acked.items():
        last: dict[int, int] = {}
        for p, o, v in recs:
            assert logs[p].get(o) == v, f"{name}: {v!r} acknowledged at {p}/{o}, log has {logs[p].get(o)!r}"
            assert o > last.get(p, -1), f"{name}: order broken in partition {p}"
            last[p] = o


def test_tailing_consumers_never_see_partial_batches(broker, topic):
    """Consumers of both libraries follow the log end while a producer appends compressed
    batches: CRC checks are on, so a torn or half-written batch would be an error."""
    ck_create_topic(broker, topic)
    n = 20000
    got: dict[str, list[bytes]] = {"confluent": [], "kafka-python": []}
    errors: list = []
    ready = {"confluent": threading.Event(), "kafka-python": threading.Event()}

    def tail_confluent():
        c = ck_consumer(broker, **{"check.crcs": True, "fetch.wait.max.ms": 10})
        try:
            c.assign([TopicPartition(topic, 0, 0)])
            deadline = time.monotonic() + 120
            while len(got["confluent"]) < n and time.monotonic() < deadline:
                msgs = c.consume(1000, 0.2)
                ready["confluent"].set()
                for m in msgs:
                    if m.error():
                        errors.append(("confluent", str(m.error())))
                    else:
                        got["confluent"].append(m.value())
        finally:
            c.close()

    def tail_kafka_python():
        c = kp_consumer(broker, check_crcs=True, fetch_max_wait_ms=10)
        try:
            tp = KPTopicPartition(topic, 0)
            c.assign([tp])
            c.seek(tp, 0)
            deadline = time.monotonic() + 120
            while len(got["kafka-python"]) < n and time.monotonic() < deadline:
                batch = c.poll(timeout_ms=200, max_records=2000)
                ready["kafka-python"].set()
                for _tp, msgs in batch.items():
                    got["kafka-python"] += [m.value for m in msgs]
        except Exception as e:
            errors.append(("kafka-python", repr(e)))
        finally:
            c.close()

    readers = [threading.Thread(target=tail_confluent), threading.Thread(target=tail_kafka_python)]
    for t in readers:
        t.start()
    for ev in ready.values():
        assert ev.wait(30), "consumer never polled"
    values = [f"tail-{i}-".encode() + b"z" * (i % 500) for i in range(n)]
    p = ck_producer(broker, **{"compression.type": "lz4", "linger.ms": 1, "batch.num.messages": 200})
    for chunk in range(0, n, 500):  # many separate appends while the consumers follow
        ck_produce(p, topic, [(None, v) for v in values[chunk:chunk + 500]], partition=0)
        time.sleep(0.02)
    for t in readers:
        t.join(150)
    assert not errors, errors[:5]
    for client, vals in got.items():
        assert vals[:n] == values, f"{client}: read {len(vals)} records, not the {n} written in order"


def test_many_simultaneous_connections(broker, topic):
    """300 clients connected at once, each pipelining requests: all are answered."""
    ck_create_topic(broker, topic)
    conns = []
    try:
        for _ in range(300):
            conns.append(Conn(broker.port, timeout=30))
        for i, c in enumerate(conns):
            c.send_raw(request_frame(18, 0, i, b"") + request_frame(3, 1, i + 100000, b"\xff\xff\xff\xff"))
        for i, c in enumerate(conns):
            a = c.recv_frame()
            b = c.recv_frame()
            assert a[:4] == i.to_bytes(4, "big") and b[:4] == (i + 100000).to_bytes(4, "big")
    finally:
        for c in conns:
            try:
                c.close()
            except OSError:
                pass
    with Conn(broker.port) as c:
        assert api_versions_v0(c)[0] == 0
    assert broker.alive()
    p = ck_producer(broker)
    assert ck_produce(p, topic, [(None, b"after")], partition=0)[0][2] == 0


def test_delete_and_recreate_topic_under_load(broker_factory, topic):
    """Delete and re-create a topic while a producer writes to it and a consumer fetches
    it: clients may see errors, the broker must not fall over, and the last incarnation
    of the topic works normally and keeps its data across a restart (the old
    incarnation's clean-up must not touch the new one's files)."""
    from confluent_kafka.admin import NewTopic
    from kclients import ck_admin
    # No auto-creation, or the producer's metadata requests re-create the topic first.
    broker = broker_factory(**{"auto.create.topics.enable": "false"})
    admin = ck_admin(broker)

    def create():
        fs = admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)],
                                 request_timeout=20)
        fs[topic].result(20)

    create()
    stop = threading.Event()

    def produce_forever():
        p = ck_producer(broker, **{"message.timeout.ms": 3000, "linger.ms": 1})
        i = 0
        while not stop.is_set():
            try:
                p.produce(topic, value=f"churn-{i}".encode())
                i += 1
            except BufferError:
                pass
            p.poll(0.002)
        p.flush(10)

    def consume_forever():
        c = ck_consumer(broker)
        try:
            c.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
            while not stop.is_set():
                c.consume(100, 0.1)
        finally:
            c.close()

    workers = [threading.Thread(target=produce_forever), threading.Thread(target=consume_forever)]
    for w in workers:
        w.start()
    try:
        for _ in range(5):
            time.sleep(0.4)
            admin.delete_topics([topic], request_timeout=20)[topic].result(20)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    create()
                    break
                except Exception:  # deletion may still be in progress
                    time.sleep(0.1)
            assert broker.alive(), broker.log_tail(4000)
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    assert broker.alive()
    assert "panic" not in broker.log_text().lower()
    admin.delete_topics([topic], request_timeout=20)[topic].result(20)
    create()
    p = ck_producer(broker)
    assert ck_produce(p, topic, [(None, b"fresh")], partition=1)[0][2] == 0
    assert [r.value for r in ck_read_partition(broker, topic, 1)] == [b"fresh"]
    time.sleep(2)  # let any deferred clean-up of the old incarnations run
    del p
    assert broker.stop() == 0
    broker.start()
    assert [r.value for r in ck_read_partition(broker, topic, 1)] == [b"fresh"], \
        "the re-created topic lost its data"
