"""Hostile and unusual input: the broker answers or closes the offending connection and
keeps serving a well-behaved producer. Also: process lifecycle (SIGTERM, restart)."""

from __future__ import annotations

import os
import random
import socket
import ssl
import struct
import threading
import time

import pytest

from kclients import ck_consume, ck_create_topic, ck_produce, ck_producer
from rawkafka import Conn, api_versions_v0, request_frame

KIB = 1024
MIB = 1024 * 1024


class BackgroundProducer:
    """A well-behaved producer that keeps producing (acks=all) while a test misbehaves."""

    def __init__(self, broker, topic):
        self.broker, self.topic = broker, topic
        self.acked = 0
        self.errors: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        p = ck_producer(self.broker, **{"acks": "all", "linger.ms": 1,
                                        "message.timeout.ms": 15000})

        def cb(err, msg):
            if err is None:
                self.acked += 1
            else:
                self.errors.append(err)

        i = 0
        while not self._stop.is_set():
            try:
                p.produce(self.topic, value=f"bg-{i}".encode(), partition=0, on_delivery=cb)
                i += 1
            except BufferError:
                pass
            p.poll(0.005)
        p.flush(20)

    def stop(self):
        self._stop.set()
        self._thread.join(30)


def tls_client_hello() -> bytes:
    """The bytes a TLS client sends first (a real ClientHello from Python's ssl module)."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    data = outgoing.read()
    assert data[0] == 0x16  # TLS handshake record
    return data


def send_and_observe(port: int, payload: bytes, wait: float = 2.0, peer: list | None = None) -> str:
    """Send bytes, then report how the broker reacted: 'closed', 'answered' or 'open'.
    The local (peer, from the broker's view) port is appended to `peer` if given."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if peer is not None:
        peer.append(s.getsockname()[1])
    try:
        s.sendall(payload)
        s.settimeout(wait)
        try:
            data = s.recv(65536)
            return "closed" if data == b"" else "answered"
        except socket.timeout:
            return "open"
        except ConnectionResetError:
            return "closed"
    finally:
        s.close()


def assert_healthy(broker, bg: BackgroundProducer, before: int, topic: str):
    assert broker.alive(), "broker process died\n" + broker.log_tail(5000)
    deadline = time.monotonic() + 15
    while bg.acked <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bg.acked > before, "the well-behaved producer stopped making progress"
    assert not bg.errors, f"well-behaved producer got errors: {bg.errors[:3]}"
    # a fresh client can still do a full round trip
    p = ck_producer(broker)
    off = ck_produce(p, topic, [(b"probe", b"still-alive")], partition=1)[0][2]
    assert ck_consume(broker, topic, 1, 1, start=off)[0].value == b"still-alive"


@pytest.fixture
def busy_broker(broker, topic):
    ck_create_topic(broker, topic, partitions=2)
    bg = BackgroundProducer(broker, topic)
    deadline = time.monotonic() + 20
    while bg.acked == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bg.acked > 0, "background producer never got an acknowledgement"
    yield broker, bg
    bg.stop()


def test_tls_client_hello_on_plaintext_port(busy_broker, topic):
    broker, bg = busy_broker
    hello = tls_client_hello()
    peers: list[int] = []
    before = bg.acked
    for _ in range(20):
        # A ClientHello's first 4 bytes read as a frame length of ~370 MB (over
        # socket.request.max.bytes): the connection must be closed, not waited on.
        assert send_and_observe(broker.port, hello, peer=peers) == "closed"
    assert_healthy(broker, bg, before, topic)
    time.sleep(0.5)
    log = broker.log_text()
    assert f":{peers[0]}" in log, f"no log line naming the peer 127.0.0.1:{peers[0]}"


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes(busy_broker, topic, seed):
    broker, bg = busy_broker
    rng = random.Random(seed)
    before = bg.acked
    for _ in range(30):
        junk = bytes(rng.getrandbits(8) for _ in range(rng.choice([1, 3, 4, 7, 64, 4096, 70000])))
        send_and_observe(broker.port, junk, wait=0.2)
    assert_healthy(broker, bg, before, topic)


def test_random_bytes_after_valid_header(busy_broker, topic):
    """Plausible frame lengths and request headers followed by garbage bodies."""
    broker, bg = busy_broker
    rng = random.Random(7)
    before = bg.acked
    err, apis = api_versions_v0(Conn(broker.port))
    assert err == 0
    for _ in range(300):
        key = rng.choice(sorted(apis))
        lo, hi = apis[key]
        version = rng.randint(lo, hi)
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        frame = request_frame(key, version, rng.randint(0, 1 << 30), body,
                              flexible_header=rng.random() < 0.5)
        send_and_observe(broker.port, frame, wait=0.05)
    assert_healthy(broker, bg, before, topic)


@pytest.mark.parametrize("length", [0, 1, 3, 2**31 - 1, 200 * MIB, 100 * MIB + 1, -1, -(2**31)])
def test_bad_frame_lengths(busy_broker, topic, length):
    broker, bg = busy_broker
    before = bg.acked
    reaction = send_and_observe(broker.port, struct.pack(">i", length) + b"\x00" * 8)
    if length < 8 or length > 100 * MIB:
        # shorter than a request header, negative, or over socket.request.max.bytes (100 MiB)
        assert reaction == "closed", f"length {length}: connection {reaction}"
    assert_healthy(broker, bg, before, topic)


def test_claimed_lengths_do_not_allocate(busy_broker, topic):
    """Many connections each claiming a just-allowed 100 MiB frame and sending 10 bytes:
    the broker must not reserve memory for bytes it has not received."""
    broker, bg = busy_broker
    before = bg.acked
    base_vm = broker.proc_status("VmSize")
    base_rss = broker.proc_status("VmRSS")
    socks = []
    try:
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
            s.sendall(struct.pack(">i", 100 * MIB) + b"\x00\x12\x00\x00\x00\x00\x00\x01\xff\xff")
            socks.append(s)
        time.sleep(1.0)
        grew_vm = (broker.proc_status("VmSize") - base_vm) * KIB
        grew_rss = (broker.proc_status("VmRSS") - base_rss) * KIB
        assert grew_rss < 200 * MIB, f"RSS grew by {grew_rss / MIB:.0f} MiB for 40 idle connections"
        assert grew_vm < 1024 * MIB, (
            f"virtual size grew by {grew_vm / MIB:.0f} MiB: buffers sized by claimed lengths")
        assert_healthy(broker, bg, before, topic)
    finally:
        for s in socks:
            s.close()


def test_delete_groups_v1_huge_array_count(busy_broker, topic):
    """The 14-byte DeleteGroups v1 frame claiming 2^31-1 group names (TRAPS.md)."""
    broker, bg = busy_broker
    before = bg.acked
    frame = struct.pack(">ihhihi", 14, 42, 1, 1, -1, 0x7FFFFFFF)
    assert len(frame) == 18
    for _ in range(5):
        send_and_observe(broker.port, frame)
    assert_healthy(broker, bg, before, topic)


def huge_count_bodies():
    """Bodies that start with a huge array/string count in every encoding."""
    return [
        b"\x7f\xff\xff\xff" * 4,                   # int32 array count 2^31-1
        b"\x7f\xff" + b"\x7f\xff\xff\xff" * 4,     # int16 string length, then int32 count
        b"\xff\xff\xff\xff\x07" * 4,               # compact (varint) count ~2^32
        b"\x00\x00" + b"\xff\xff\xff\xff\x07" * 4,  # after a null client id / short field
        b"\x00\x00\x00\x01" + b"\x7f\xff\xff\xff" * 4,
    ]


def test_huge_counts_for_every_advertised_api(busy_broker, topic):
    """For every API and version the broker advertises, frames whose fields claim huge
    element counts: each is refused or answered, memory stays flat, the broker lives."""
    broker, bg = busy_broker
    before = bg.acked
    with Conn(broker.port) as c:
        err, apis = api_versions_v0(c)
    assert err == 0 and apis
    base_rss = broker.proc_status("VmRSS")
    corr = 0
    for key, (lo, hi) in sorted(apis.items()):
        for version in range(lo, hi + 1):
            for flexible in (False, True):
                for body in huge_count_bodies():
                    corr += 1
                    frame = request_frame(key, version, corr, body, flexible_header=flexible)
                    send_and_observe(broker.port, frame, wait=0.02)
                    assert broker.alive(), (
                        f"broker died on api {key} v{version} flexible={flexible} "
                        f"body={body.hex()}\n{broker.log_tail(5000)}")
    grew = (broker.proc_status("VmRSS") - base_rss) * KIB
    assert grew < 300 * MIB, f"RSS grew by {grew / MIB:.0f} MiB"
    assert_healthy(broker, bg, before, topic)


def test_api_versions_unknown_version_gets_v0_fallback(broker):
    """ApiVersions at a version the broker does not know: a v0-format response with
    UNSUPPORTED_VERSION (35) and the supported ranges, so the client can retry."""
    with Conn(broker.port) as c:
        err, apis = api_versions_v0(c, version=127)
    assert err == 35
    assert 18 in apis and apis[18][0] == 0 and apis[18][1] >= 3
    with Conn(broker.port) as c:
        err, apis = api_versions_v0(c, version=0)
    assert err == 0
    # Produce advertised from v0 (KAFKA-18659) and up to at least v7
    assert apis[0][0] == 0 and apis[0][1] >= 7, apis.get(0)
    for key in (1, 2, 3, 19, 20, 22, 32, 37, 60):
        assert key in apis, f"api key {key} not advertised"


def test_unknown_api_key_does_not_kill_connection_silently(broker):
    """An unadvertised API key is answered with an error or the connection is closed with
    a log line; either way the broker stays up and the next connection works."""
    reaction = send_and_observe(broker.port, request_frame(9999, 0, 1, b""))
    assert reaction in ("answered", "closed")
    with Conn(broker.port) as c:
        assert api_versions_v0(c)[0] == 0
    assert broker.alive()


def test_sigterm_is_clean_and_data_survives(broker, topic):
    ck_create_topic(broker, topic)
    p = ck_producer(broker, **{"acks": "all"})
    ck_produce(p, topic, [(None, f"v{i}".encode()) for i in range(1000)], partition=0)
    t0 = time.monotonic()
    code = broker.stop(timeout=10)
    assert code == 0, f"SIGTERM exit code {code}\n{broker.log_tail(3000)}"
    assert time.monotonic() - t0 < 10
    broker.start()
    got = ck_consume(broker, topic, 0, 1000)
    assert [g.value for g in got] == [f"v{i}".encode() for i in range(1000)]
    ck_produce(p, topic, [(None, b"after")], partition=0)
    assert ck_consume(broker, topic, 0, 1, start=1000)[0].value == b"after"


def test_kill9_then_restart_keeps_flushed_data(broker, topic):
    ck_create_topic(broker, topic)
    p = ck_producer(broker, **{"acks": "all"})
    res = ck_produce(p, topic, [(None, f"v{i}".encode()) for i in range(500)], partition=0)
    assert [r[2] for r in res] == list(range(500))
    broker.kill9()
    broker.start()
    got = ck_consume(broker, topic, 0, 500)
    assert [g.value for g in got] == [f"v{i}".encode() for i in range(500)]
    res = ck_produce(p, topic, [(None, b"next")], partition=0)
    assert res[0][2] == 500, "offsets continue after recovery, never reused"


def test_torn_tail_is_truncated_on_recovery(broker, topic):
    """Garbage appended to the active segment (a torn write) is cut off at restart and
    the log continues from the last whole batch."""
    ck_create_topic(broker, topic)
    p = ck_producer(broker)
    ck_produce(p, topic, [(None, f"v{i}".encode()) for i in range(100)], partition=0)
    broker.kill9()
    seg_dir = broker.data_dir / f"{topic}-0"
    segs = sorted(seg_dir.glob("*.log"))
    assert segs, f"no segment files in {seg_dir}"
    with open(segs[-1], "ab") as f:
        f.write(struct.pack(">qi", 100, 500) + os.urandom(200))  # half a batch
    broker.start()
    got = ck_consume(broker, topic, 0, 100)
    assert [g.value for g in got] == [f"v{i}".encode() for i in range(100)]
    res = ck_produce(p, topic, [(None, b"after-torn")], partition=0)
    assert res[0][2] == 100
    assert ck_consume(broker, topic, 0, 1, start=100)[0].value == b"after-torn"


def zstd_bomb_records(value_size: int) -> bytes:
    """The records section of one record whose value is `value_size` zero bytes,
    zstd-compressed (a few hundred KB for a GiB), streamed so the test stays small."""
    import zstandard
    from rawkafka import zigzag_varint
    head = b"\x00" + zigzag_varint(0) + zigzag_varint(0) + zigzag_varint(-1) + zigzag_varint(value_size)
    tail = zigzag_varint(0)
    length = len(head) + value_size + len(tail)
    cobj = zstandard.ZstdCompressor(level=3).compressobj(size=len(zigzag_varint(length)) + length)
    out = [cobj.compress(zigzag_varint(length) + head)]
    chunk = bytes(1 << 20)
    remaining = value_size
    while remaining > 0:
        part = chunk if remaining >= len(chunk) else bytes(remaining)
        out.append(cobj.compress(part))
        remaining -= len(part)
    out.append(cobj.compress(tail))
    out.append(cobj.flush())
    return b"".join(out)


def test_decompression_bomb(broker, topic):
    """A zstd batch well under message.max.bytes that inflates to 1 GiB: the broker must
    not inflate it into memory (TRAPS.md: bound decompression by max.message.bytes)."""
    from rawkafka import produce_v3, record_batch
    ck_create_topic(broker, topic)
    records = zstd_bomb_records(1 << 30)
    assert len(records) < 900_000, len(records)
    batch = record_batch([b""], attributes=4, records=records)  # 4 = zstd
    base_rss = broker.proc_status("VmRSS")
    peak = base_rss
    with Conn(broker.port, timeout=60) as c:
        result: list = []
        # Produce v7: the first version that may carry zstd
        t = threading.Thread(target=lambda: result.append(produce_v3(c, topic, 0, batch,
                                                                     version=7)))
        t.start()
        while t.is_alive():
            if broker.alive():
                peak = max(peak, broker.proc_status("VmRSS"))
            t.join(0.02)
    assert broker.alive(), "broker died on a decompression bomb\n" + broker.log_tail(4000)
    grew = (peak - base_rss) * KIB
    assert grew < 300 * MIB, f"RSS grew by {grew / MIB:.0f} MiB while handling a 1 GiB zstd bomb"
    print("decompression bomb answered with", result)
    p = ck_producer(broker)
    assert ck_produce(p, topic, [(None, b"still-ok")], partition=0)[0][0] is None


def test_batch_claiming_huge_record_count(broker, topic):
    """A one-record batch whose header claims 2^31-1 records: refused without reserving
    memory for them. Kafka answers INVALID_RECORD (87): record count and offset range
    disagree."""
    from rawkafka import produce_v3, record_batch
    ck_create_topic(broker, topic)
    base_rss = broker.proc_status("VmRSS")
    with Conn(broker.port) as c:
        err, _ = produce_v3(c, topic, 0, record_batch([b"one"], count=0x7FFFFFFF))
        err2, _ = produce_v3(c, topic, 0, record_batch([b"one"], count=0x7FFFFFFF,
                                                       last_offset_delta=0x7FFFFFFE))
    assert broker.alive()
    assert (broker.proc_status("VmRSS") - base_rss) * KIB < 200 * MIB
    assert err == 87, f"count/offset-range mismatch answered with error {err}"
    assert err2 != 0, "a batch claiming 2^31-1 records but holding one was accepted"
    p = ck_producer(broker)
    assert ck_produce(p, topic, [(None, b"ok")], partition=0)[0][2] == 0


def test_socket_request_max_bytes_override(broker_factory, topic):
    """A request over socket.request.max.bytes closes that connection; smaller ones work."""
    from rawkafka import kstring, produce_v3, record_batch
    b = broker_factory(**{"socket.request.max.bytes": "4096"})
    ck_create_topic(b, topic)
    big = record_batch([b"x" * 8000])
    body = (kstring(None) + struct.pack(">hi", -1, 10000) + struct.pack(">i", 1) + kstring(topic)
            + struct.pack(">i", 1) + struct.pack(">ii", 0, len(big)) + big)
    assert send_and_observe(b.port, request_frame(0, 3, 1, body)) == "closed"
    with Conn(b.port) as c:
        assert produce_v3(c, topic, 0, record_batch([b"small"])) == (0, 0)
    assert b.alive()
