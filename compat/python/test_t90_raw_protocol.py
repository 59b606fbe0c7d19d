"""Protocol details checked with hand-built requests (rawkafka.py), where the clients
hide the broker's exact answer: error codes, fencing, long polling, ordering."""

from __future__ import annotations

import struct
import threading
import time

import pytest

from kclients import ck_create_topic, ck_produce, ck_producer, ck_read_partition
from rawkafka import (Conn, api_versions_v0, count_batch_records, fetch_v4, init_producer_id,
                      kstring, legacy_message_set_v1, produce_v3, record_batch, request_frame)

UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_OUT_OF_RANGE = 1
INVALID_REQUIRED_ACKS = 21
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
INVALID_RECORD = 87


def test_produce_error_codes(broker, topic):
    ck_create_topic(broker, topic)
    with Conn(broker.port) as c:
        assert produce_v3(c, topic, 5, record_batch([b"x"]))[0] == UNKNOWN_TOPIC_OR_PARTITION
        assert produce_v3(c, topic, 0, legacy_message_set_v1(b"old"))[0] == INVALID_RECORD, \
            "magic 1 must be refused (Kafka 4: INVALID_RECORD)"
        assert produce_v3(c, topic, 0, record_batch([b"x"]), acks=2)[0] == INVALID_REQUIRED_ACKS
        assert produce_v3(c, topic, 0, record_batch([b"ok"])) == (0, 0)
    assert [r.value for r in ck_read_partition(broker, topic, 0)] == [b"ok"]


def test_producer_epoch_fencing(broker, topic):
    """Kafka's ProducerAppendInfo rules: a lower epoch is INVALID_PRODUCER_EPOCH; a new
    epoch must start at sequence 0; after a bump the old epoch is fenced."""
    ck_create_topic(broker, topic)
    with Conn(broker.port) as c:
        err, pid, epoch = init_producer_id(c)
        assert err == 0

        def produce(ep, seq, tag):
            return produce_v3(c, topic, 0, record_batch([tag], pid, ep, seq))

        assert produce(epoch, 0, b"e0s0") == (0, 0)
        assert produce(epoch, 1, b"e0s1") == (0, 1)
        assert produce(epoch + 1, 3, b"bad")[0] == OUT_OF_ORDER_SEQUENCE_NUMBER, \
            "a new epoch must start at sequence 0"
        assert produce(epoch + 1, 0, b"e1s0") == (0, 2)
        assert produce(epoch, 2, b"stale")[0] == INVALID_PRODUCER_EPOCH
        assert produce(epoch + 1, 1, b"e1s1") == (0, 3)
    assert [r.value for r in ck_read_partition(broker, topic, 0)] == [b"e0s0", b"e0s1", b"e1s0", b"e1s1"]


def test_acks0_gets_no_response_and_order_is_kept(broker, topic):
    """acks=0 produce is not answered; the next request's answer comes next."""
    ck_create_topic(broker, topic)
    with Conn(broker.port) as c:
        body = (kstring(None) + struct.pack(">hi", 0, 10000) + struct.pack(">i", 1) + kstring(topic)
                + struct.pack(">i", 1))
        batch = record_batch([b"fire-and-forget"])
        c.send_raw(request_frame(0, 3, 1000, body + struct.pack(">ii", 0, len(batch)) + batch))
        c.corr = 1000
        err, _apis = api_versions_v0(c)  # asserts the correlation id is 1001
        assert err == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not ck_read_partition(broker, topic, 0):
        time.sleep(0.1)
    assert [r.value for r in ck_read_partition(broker, topic, 0)] == [b"fire-and-forget"]


def test_pipelined_requests_answered_in_order(broker, topic):
    ck_create_topic(broker, topic)
    with Conn(broker.port) as c:
        frames = []
        for i in range(200):
            if i % 3 == 0:
                frames.append(request_frame(18, 0, i, b""))                      # ApiVersions v0
            elif i % 3 == 1:
                frames.append(request_frame(3, 1, i, struct.pack(">i", -1)))     # Metadata v1, all
            else:
                batch = record_batch([f"p{i}".encode()])
                body = (kstring(None) + struct.pack(">hi", 1, 10000) + struct.pack(">i", 1)
                        + kstring(topic) + struct.pack(">i", 1)
                        + struct.pack(">ii", 0, len(batch)) + batch)
                frames.append(request_frame(0, 3, i, body))                      # Produce acks=1
        c.send_raw(b"".join(frames))
        got = [struct.unpack(">i", c.recv_frame()[:4])[0] for _ in range(200)]
    assert got == list(range(200)), "responses must come back in request order"


def test_fetch_long_polling(broker, topic):
    ck_create_topic(broker, topic)
    with Conn(broker.port) as c:
        err, apis = api_versions_v0(c)
        assert apis[1][0] <= 4 <= apis[1][1], f"Fetch v4 not advertised: {apis.get(1)}"

        # empty partition: the broker holds the request for max_wait_ms
        t0 = time.monotonic()
        res = fetch_v4(c, topic, 0, 0, max_wait_ms=1000)
        waited = time.monotonic() - t0
        assert res["error"] == 0 and res["high_watermark"] == 0
        assert res["records"] == b"" and not res["records_null"], \
            "empty records must be an empty (not null) field: librdkafka rejects null"
        assert 0.8 <= waited <= 5, f"empty fetch with max_wait_ms=1000 answered after {waited:.2f}s"

        # data arriving during the wait completes the fetch early
        def produce_later():
            time.sleep(0.5)
            ck_produce(ck_producer(broker), topic, [(None, b"late")], partition=0)
        t = threading.Thread(target=produce_later)
        t.start()
        t0 = time.monotonic()
        res = fetch_v4(c, topic, 0, 0, max_wait_ms=10000)
        waited = time.monotonic() - t0
        t.join()
        assert res["error"] == 0 and count_batch_records(res["records"]) == 1
        assert waited < 8, f"fetch not completed by new data: waited {waited:.2f}s of 10s"

        # data present: immediate answer
        t0 = time.monotonic()
        res = fetch_v4(c, topic, 0, 0, max_wait_ms=5000)
        assert time.monotonic() - t0 < 2
        assert res["high_watermark"] == 1 and count_batch_records(res["records"]) == 1

        # min_bytes larger than what is there: waits the full max_wait_ms
        t0 = time.monotonic()
        res = fetch_v4(c, topic, 0, 0, max_wait_ms=800, min_bytes=1 << 20)
        assert time.monotonic() - t0 >= 0.6
        assert count_batch_records(res["records"]) == 1

        assert fetch_v4(c, topic, 0, 5, max_wait_ms=0)["error"] == OFFSET_OUT_OF_RANGE
        assert fetch_v4(c, topic, 9, 0, max_wait_ms=0)["error"] == UNKNOWN_TOPIC_OR_PARTITION


def test_fetch_returns_whole_first_batch_over_max_bytes(broker, topic):
    """KIP-74: the first batch is returned even if larger than the partition limit, so a
    consumer with small fetch limits still progresses."""
    ck_create_topic(broker, topic)
    p = ck_producer(broker, **{"linger.ms": 100, "batch.size": 1 << 20})
    ck_produce(p, topic, [(None, b"v" * 5000) for _ in range(50)], partition=0)
    with Conn(broker.port) as c:
        res = fetch_v4(c, topic, 0, 0, max_wait_ms=0, max_bytes=1000)
        assert res["error"] == 0
        n = count_batch_records(res["records"])
        assert n >= 1, f"no whole batch returned with max_bytes=1000 ({len(res['records'])} bytes)"


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_producer_state_survives_restart_raw(broker, topic, how):
    """After a restart (clean or kill -9) the broker still knows the producer's last
    sequences: a retry of the last batch gets its original offset and is not appended,
    the next sequence is accepted, a gap is refused."""
    ck_create_topic(broker, topic)
    with Conn(broker.port) as c:
        err, pid, epoch = init_producer_id(c)
        assert err == 0
        assert produce_v3(c, topic, 0, record_batch([b"a", b"b"], pid, epoch, 0)) == (0, 0)
        assert produce_v3(c, topic, 0, record_batch([b"c"], pid, epoch, 2)) == (0, 2)
    if how == "sigterm":
        assert broker.stop() == 0
    else:
        broker.kill9()
    broker.start()
    with Conn(broker.port) as c:
        assert produce_v3(c, topic, 0, record_batch([b"c"], pid, epoch, 2)) == (0, 2), \
            "retry of the last batch after restart must be deduplicated"
        assert produce_v3(c, topic, 0, record_batch([b"a", b"b"], pid, epoch, 0)) == (0, 0), \
            "retry of an earlier batch after restart must be deduplicated"
        assert produce_v3(c, topic, 0, record_batch([b"x"], pid, epoch, 9))[0] == \
            OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce_v3(c, topic, 0, record_batch([b"d"], pid, epoch, 3)) == (0, 3)
    assert [r.value for r in ck_read_partition(broker, topic, 0)] == [b"a", b"b", b"c", b"d"]
