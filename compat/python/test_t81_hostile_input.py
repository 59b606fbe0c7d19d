"""Hostile input (issue 8): raw TCP and TLS connections sending what attackers and broken clients
send, against one node with a PLAINTEXT, an SSL, a SASL_PLAINTEXT and a SASL_SSL listener.

Every case in CASES is run REPETITIONS times (1000; 40 when CI=true; KAVKA_HOSTILE_REPS
overrides) on each listener it applies to, each time on a fresh connection (on SASL listeners
after a PLAIN login, unless the case is about what comes before it). Pass criteria, per case:
- every repetition gets its expected reaction (a closed connection, or an answer with the expected
  error code) within 1 s;
- the broker process is alive afterwards;
- its RSS (/proc/PID/status VmRSS) grew by less than 64 MiB over the repetitions (after a short
  warm-up that lets the broker allocate what it keeps for good);
- a well-behaved confluent-kafka producer (acks=all, idempotent), connected to the same listener
  and producing throughout, gets no delivery error, and every record it sent is read back.

Cases that cannot be answered within a second by their nature (a slowloris connection, a TLS
handshake left half-way, a flood of connections beyond max.connections / max.connections.per.ip)
run on their own node with small limits; each states its own bound.

A summary of every case (reaction, worst latency, RSS growth) is printed at the end of the run and,
when KAVKA_HOSTILE_REPORT names a file, written there as JSON (docs/reliability.md
was made from it).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import struct
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import rawkafka as rk
from rawkafka import uvarint
from kavka_harness import free_port, kavka_certs, node_store_settings

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPETITIONS = int(os.environ.get("KAVKA_HOSTILE_REPS") or (40 if CI else 1000))
WARMUP = 20
REACTION_LIMIT = 1.0  # seconds
RSS_LIMIT_KIB = 64 * 1024
MIB = 1024 * 1024

USERS = {"alice": "alice-secret"}
JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
        + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")

# Kafka error codes
CORRUPT_MESSAGE = 2
ILLEGAL_SASL_STATE = 34
UNSUPPORTED_VERSION = 35
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
INVALID_RECORD = 87

KINDS = ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")

RESULTS: list[dict] = []


# ---------------------------------------------------------------- the node under test


@dataclass
class Node:
    broker: object
    ports: dict
    certs: Path
    topic: str  # where hostile produce requests go
    compacted: str  # a compacted topic (Kavka decompresses batches there to find keyless records)
    pid: int  # an idempotent producer id set up on `topic`, at epoch 1 after sequence 0
    extra: dict = field(default_factory=dict)

    def rss_kib(self) -> int:
        return self.broker.proc_status("VmRSS")


def client_conf(node: Node, kind: str) -> dict:
    conf = {"bootstrap.servers": f"127.0.0.1:{node.ports[kind]}", "socket.timeout.ms": 20000}
    if kind in ("ssl", "sasl_ssl"):
        conf["ssl.ca.location"] = str(node.certs / "ca.pem")
    if kind.startswith("sasl"):
        conf.update({"sasl.mechanism": "PLAIN", "sasl.username": "alice",
                     "sasl.password": USERS["alice"]})
    conf["security.protocol"] = kind.upper()
    return conf


def tls_context(node: Node) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(node.certs / "ca.pem"))
    return ctx


def multi_listener_conf(ports: dict, certs: Path, **extra: str) -> dict:
    conf = {
        "listeners": ",".join(f"{k.upper()}://127.0.0.1:{p}" for k, p in ports.items()),
        **node_store_settings(certs, "n1"),
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        "listener.name.sasl_ssl.plain.sasl.jaas.config": JAAS,
    }
    conf.update(extra)
    return conf


def make_certs(kavka_bin, base: Path) -> Path:
    certs = base / "certs"
    kavka_certs(kavka_bin, certs, "ca")
    kavka_certs(kavka_bin, certs, "node", "--name", "n1", "--ip", "127.0.0.1", "--dns", "localhost")
    return certs


def create_topic(conf: dict, name: str, partitions: int = 1, config: dict | None = None):
    admin = AdminClient(conf)
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                            config=config or {})], operation_timeout=20)
    futures[name].result(30)


@pytest.fixture(scope="module")
def node(kavka_bin, tmp_path_factory):
    from kavka_harness import Broker
    base = tmp_path_factory.mktemp("hostile")
    certs = make_certs(kavka_bin, base)
    ports = {k: free_port() for k in KINDS}
    b = Broker(base / "node", overrides=multi_listener_conf(ports, certs), port=ports["plaintext"],
               name="hostile", binary=kavka_bin)
    b.overrides["listeners"] = multi_listener_conf(ports, certs)["listeners"]
    b.start()
    try:
        n = Node(b, ports, certs, topic=f"hostile-{uuid.uuid4().hex[:8]}",
                 compacted=f"hostile-compacted-{uuid.uuid4().hex[:8]}", pid=-1)
        plain = client_conf(n, "plaintext")
        create_topic(plain, n.topic)
        create_topic(plain, n.compacted, config={"cleanup.policy": "compact"})
        with rk.Conn(ports["plaintext"]) as c:
            err, pid, epoch = rk.init_producer_id(c)
            assert err == 0 and epoch == 0
            # epoch 1 from sequence 0: epoch 0 is now fenced, epoch 1 expects sequence 1
            assert rk.produce_v3(c, n.topic, 0, rk.record_batch([b"setup"], pid, 1, 0))[0] == 0
        n.pid = pid
        yield n
    finally:
        b.stop()
        print_summary()


def print_summary():
    if not RESULTS:
        return
    lines = [f"{'case':58} {'listener':15} {'reps':>5} {'reaction':28} {'worst ms':>8} "
             f"{'RSS growth MiB':>14}"]
    for r in RESULTS:
        lines.append(f"{r['case']:58} {r['listener']:15} {r['reps']:>5} {r['reaction']:28} "
                     f"{r['worst_ms']:>8.0f} {r['rss_growth_kib'] / 1024:>14.1f}")
    print("\n" + "\n".join(lines))
    report = os.environ.get("KAVKA_HOSTILE_REPORT")
    if report:
        Path(report).write_text(json.dumps(RESULTS, indent=1))


# ---------------------------------------------------------------- the well-behaved producer


class WellBehavedProducer:
    """acks=all, idempotent, producing unique values without pause while a case runs; every
    delivery error and every error_cb call is kept."""

    def __init__(self, conf: dict, topic: str):
        self.conf, self.topic = conf, topic
        self.acked: list[bytes] = []
        self.errors: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        p = Producer({**self.conf, "acks": "all", "enable.idempotence": True, "linger.ms": 2,
                      "message.timeout.ms": 30000, "error_cb": self.errors.append})

        def cb(err, msg):
            if err is None:
                self.acked.append(msg.value())
            else:
                self.errors.append(err)

        i = 0
        while not self._stop.is_set():
            try:
                p.produce(self.topic, value=f"good-{i}".encode(), on_delivery=cb)
                i += 1
            except BufferError:
                pass
            p.poll(0.002)
        left = p.flush(30)
        if left:
            self.errors.append(f"{left} records undelivered after flush")

    def wait_for_progress(self, n: int = 1, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while len(self.acked) < n and time.monotonic() < deadline and not self.errors:
            time.sleep(0.02)
        assert len(self.acked) >= n, f"well-behaved producer acked {len(self.acked)}: {self.errors}"

    def check_progress(self, before: int):
        """No error so far, and acknowledgements beyond `before` (it was not stalled)."""
        assert not self.errors, f"well-behaved producer saw errors: {self.errors[:5]}"
        self.wait_for_progress(before + 1)
        assert not self.errors, f"well-behaved producer saw errors: {self.errors[:5]}"

    def stop_and_check(self, conf: dict):
        self.check_progress(len(self.acked))
        self._stop.set()
        self._thread.join(60)
        assert not self.errors, f"well-behaved producer saw errors: {self.errors[:5]}"
        # every acknowledged record is there, exactly once
        c = Consumer({**conf, "group.id": "hostile-" + uuid.uuid4().hex[:8],
                      "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        try:
            c.assign([TopicPartition(self.topic, 0, 0)])
            want = set(self.acked)
            got: list[bytes] = []
            deadline = time.monotonic() + 60
            while len(got) < len(want) and time.monotonic() < deadline:
                for m in c.consume(num_messages=10000, timeout=0.5):
                    assert not m.error(), m.error()
                    got.append(m.value())
        finally:
            c.close()
        assert len(got) == len(set(got)), "duplicates in the well-behaved producer's topic"
        missing = want - set(got)
        assert not missing, f"{len(missing)} acknowledged records missing, e.g. {sorted(missing)[:3]}"
        return len(want)


@pytest.fixture(scope="module")
def producers(node):
    """One well-behaved producer per listener, producing from the first case to the last."""
    started: dict[str, WellBehavedProducer] = {}
    for kind in KINDS:
        conf = client_conf(node, kind)
        topic = f"good-{kind}-{uuid.uuid4().hex[:8]}"
        create_topic(conf, topic)
        started[kind] = WellBehavedProducer(conf, topic)
    for p in started.values():
        p.wait_for_progress()
    yield started
    for p in started.values():
        p._stop.set()


# ---------------------------------------------------------------- raw connections


class Closed(Exception):
    pass


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError) as e:
            raise Closed(str(e)) from e
        if not chunk:
            raise Closed("EOF")
        buf += chunk
    return bytes(buf)


def recv_frame(s: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(s, 4))
    assert 4 <= size <= 64 * MIB, f"implausible response size {size}"
    return recv_exact(s, size)


def request(s: socket.socket, api_key: int, version: int, body: bytes, corr: int = 1) -> bytes:
    s.sendall(rk.request_frame(api_key, version, corr, body))
    frame = recv_frame(s)
    assert struct.unpack(">i", frame[:4])[0] == corr
    return frame[4:]


def sasl_login(s: socket.socket):
    r = rk.Reader(request(s, 17, 1, rk.kstring("PLAIN"), corr=1))
    assert r.take("h") == 0, "SaslHandshake refused"
    token = b"\0alice\0" + USERS["alice"].encode()
    r = rk.Reader(request(s, 36, 1, struct.pack(">i", len(token)) + token, corr=2))
    assert r.take("h") == 0, "SASL PLAIN login refused"


def connect(node: Node, kind: str, authenticate: bool = True, source: str | None = None
            ) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    if source:
        s.bind((source, 0))
    s.connect(("127.0.0.1", node.ports[kind]))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if kind in ("ssl", "sasl_ssl"):
        s = node.extra.setdefault("tls", tls_context(node)).wrap_socket(
            s, server_hostname="localhost")
    if kind.startswith("sasl") and authenticate:
        sasl_login(s)
    return s


def reaction(s: socket.socket, limit: float = REACTION_LIMIT) -> tuple[str, bytes | None]:
    """('closed', None) or ('answered', response frame), or ('open', None) after `limit`."""
    s.settimeout(limit)
    try:
        return "answered", recv_frame(s)
    except Closed:
        return "closed", None
    except (socket.timeout, TimeoutError):
        return "open", None


# ---------------------------------------------------------------- the cases

# A case's `send` builds the bytes for one repetition; `expect` is "closed", "answered",
# "closed|answered", or an int: an answer carrying that error code (read by `error_of`).


@dataclass
class Case:
    name: str
    send: Callable[[Node], bytes]
    expect: object = "closed"
    kinds: tuple = KINDS
    authenticate: bool = True
    error_of: Callable[[bytes], int] | None = None
    half_close: bool = False
    reps: int | None = None  # fewer repetitions for cases whose payload is large and stored


def frame_raw(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def header(api_key: int, version: int, corr: int = 7, flexible: bool = False,
           client_id: bytes | None = b"hostile") -> bytes:
    h = struct.pack(">hhi", api_key, version, corr)
    h += struct.pack(">h", -1) if client_id is None else struct.pack(">h", len(client_id)) + client_id
    return h + (b"\x00" if flexible else b"")


def tls_client_hello() -> bytes:
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def produce_body(topic: str, batch: bytes, acks: int = 1) -> bytes:
    return (rk.kstring(None) + struct.pack(">hi", acks, 10000) + struct.pack(">i", 1)
            + rk.kstring(topic) + struct.pack(">i", 1)
            + struct.pack(">ii", 0, len(batch)) + batch)


def produce_error(frame: bytes) -> int:
    """Error code of the single partition of a Produce v3-v8 response frame."""
    r = rk.Reader(frame[4:])
    assert r.take("i") == 1
    r.string()
    assert r.take("i") == 1
    _idx, err = r.take("ih")
    return err


def api_versions_error(frame: bytes) -> int:
    """The error code at the start of a v0/v1 response body (ApiVersions, SaslAuthenticate)."""
    return struct.unpack(">h", frame[4:6])[0]


def produce_case(name: str, batch: Callable[[Node], bytes], expect, version: int = 3,
                 topic: str = "topic", reps: int | None = None) -> Case:
    return Case(name, lambda n: frame_raw(header(0, version) + produce_body(
        getattr(n, topic), batch(n))), expect, kinds=("plaintext",), error_of=produce_error,
        reps=reps)


def patched(batch: bytes, offset: int, fmt: str, value, fix_crc: bool = True) -> bytes:
    """The batch with one header field replaced (and the CRC recomputed unless told not to)."""
    import crc32c
    b = bytearray(batch)
    struct.pack_into(">" + fmt, b, offset, value)
    if fix_crc:
        struct.pack_into(">I", b, 17, crc32c.crc32c(bytes(b[21:])))
    return bytes(b)


def good_batch(values=(b"v",), **kw) -> bytes:
    return rk.record_batch(list(values), **kw)


# -- decompression bombs: one keyless record whose value is `size` zero bytes


def bomb_record_parts(size: int) -> tuple[bytes, bytes]:
    head = (b"\x00" + rk.zigzag_varint(0) + rk.zigzag_varint(0) + rk.zigzag_varint(-1)
            + rk.zigzag_varint(size))
    tail = rk.zigzag_varint(0)
    length = len(head) + size + len(tail)
    return rk.zigzag_varint(length) + head, tail


def zero_chunks(size: int, chunk: int = 1 << 20):
    zeros = bytes(chunk)
    while size > 0:
        yield zeros if size >= chunk else bytes(size)
        size -= chunk


def bomb(codec: str, size: int) -> bytes:
    head, tail = bomb_record_parts(size)
    if codec == "gzip":
        z = zlib.compressobj(9, zlib.DEFLATED, 31)
        out = [z.compress(head)] + [z.compress(c) for c in zero_chunks(size)]
        out += [z.compress(tail), z.flush()]
        return b"".join(out)
    if codec == "lz4":
        import lz4.frame
        c = lz4.frame.LZ4FrameCompressor(block_size=lz4.frame.BLOCKSIZE_MAX64KB,
                                         block_linked=False, compression_level=9)
        out = [c.begin(), c.compress(head)] + [c.compress(x) for x in zero_chunks(size)]
        out += [c.compress(tail), c.flush()]
        return b"".join(out)
    if codec == "zstd":
        import zstandard
        z = zstandard.ZstdCompressor(level=3).compressobj(size=len(head) + size + len(tail))
        out = [z.compress(head)] + [z.compress(c) for c in zero_chunks(size)]
        out += [z.compress(tail), z.flush()]
        return b"".join(out)
    if codec in ("snappy", "snappy-xerial"):
        import snappy
        raw = head + bytes(size) + tail
        if codec == "snappy":
            return snappy.compress(raw)
        out = [b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)]
        for i in range(0, len(raw), 32 * 1024):
            block = snappy.compress(raw[i:i + 32 * 1024])
            out.append(struct.pack(">i", len(block)) + block)
        return b"".join(out)
    raise ValueError(codec)


# Sizes keep each compressed batch under message.max.bytes (1 MiB).
BOMBS = {"gzip": (1, 512 * MIB), "snappy": (2, 16 * MIB), "snappy-xerial": (2, 16 * MIB),
         "lz4": (3, 192 * MIB), "zstd": (4, 1024 * MIB)}
_bomb_cache: dict[str, bytes] = {}


def bomb_batch(codec: str) -> bytes:
    if codec not in _bomb_cache:
        attr, size = BOMBS[codec]
        records = bomb(codec, size)
        assert len(records) < 1_000_000, (codec, len(records))
        _bomb_cache[codec] = rk.record_batch([b""], attributes=attr, records=records)
    return _bomb_cache[codec]


def garbage_compressed_batch(attr: int) -> bytes:
    return rk.record_batch([b""], attributes=attr, records=b"\x00\x01garbage" * 50)


HUGE_I32 = struct.pack(">i", 0x7FFFFFFF)
COMPACT_HUGE = uvarint(0xFFFFFFFF)  # a compact length of 2^32-2 in five bytes


def build_cases() -> list[Case]:
    hello = tls_client_hello()
    cases = [
        # -- frame lengths
        Case("frame length 0", lambda n: struct.pack(">i", 0)),
        Case("frame length 7 (under a request header)", lambda n: frame_raw(b"\x00" * 7)),
        Case("frame length -1", lambda n: struct.pack(">i", -1)),
        Case("frame length i32::MIN", lambda n: struct.pack(">i", -(2**31))),
        Case("frame length socket.request.max.bytes+1",
             lambda n: struct.pack(">i", 100 * MIB + 1) + b"\x00" * 16),
        Case("frame length i32::MAX", lambda n: struct.pack(">i", 2**31 - 1) + b"\x00" * 16),
        Case("frame shorter than its length, then EOF",
             lambda n: struct.pack(">i", 200) + header(3, 1), half_close=True,
             kinds=("plaintext", "sasl_plaintext")),
        Case("TLS ClientHello on a plaintext listener", lambda n: hello,
             kinds=("plaintext", "sasl_plaintext"), authenticate=False),
        # -- truncated headers
        Case("header: 3 bytes", lambda n: frame_raw(b"\x00\x03\x00") + b"\x00" * 7),
        Case("header: no client id", lambda n: frame_raw(struct.pack(">hhi", 3, 1, 1) + b"\x00\x00")),
        Case("header: client id longer than the frame",
             lambda n: frame_raw(struct.pack(">hhih", 3, 1, 1, 0x7FFF) + b"abc")),
        Case("header: client id length -2",
             lambda n: frame_raw(struct.pack(">hhih", 3, 1, 1, -2) + b"\x00" * 8)),
        Case("flexible header: tagged-field section missing",
             lambda n: frame_raw(header(3, 12))),
        # -- unknown API keys and versions
        Case("unknown API key 9999", lambda n: frame_raw(header(9999, 0))),
        Case("negative API key", lambda n: frame_raw(header(-2, 0))),
        Case("Metadata v999", lambda n: frame_raw(header(3, 999, flexible=True) + b"\x00" * 8)),
        Case("Metadata v-1", lambda n: frame_raw(header(3, -1) + b"\x00" * 8)),
        Case("Produce v2 (removed in Kafka 4)",
             lambda n: frame_raw(header(0, 2) + produce_body(n.topic, good_batch())),
             "closed|answered", kinds=("plaintext",)),
        Case("ApiVersions v127", lambda n: frame_raw(header(18, 127, flexible=True) + b"\x00"),
             UNSUPPORTED_VERSION, error_of=api_versions_error),
        # -- arrays and strings with negative or huge lengths
        Case("DeleteGroups v1: 2^31-1 groups in 14 bytes",
             lambda n: frame_raw(struct.pack(">hhih", 42, 1, 7, -1) + HUGE_I32)),
        Case("Metadata v1: 2^31-1 topics", lambda n: frame_raw(header(3, 1) + HUGE_I32)),
        Case("Metadata v1: topic name length 32767, 3 bytes sent",
             lambda n: frame_raw(header(3, 1) + struct.pack(">ih", 1, 0x7FFF) + b"abc")),
        Case("Metadata v1: topic name length -7",
             lambda n: frame_raw(header(3, 1) + struct.pack(">ih", 1, -7))),
        Case("Metadata v1: topics count -2",
             lambda n: frame_raw(header(3, 1) + struct.pack(">i", -2))),
        Case("Metadata v12: compact topics count 2^32-2",
             lambda n: frame_raw(header(3, 12, flexible=True) + COMPACT_HUGE + b"\x00\x00\x00")),
        Case("DeleteGroups v2: compact groups count 2^32-2",
             lambda n: frame_raw(header(42, 2, flexible=True) + COMPACT_HUGE)),
        Case("CreateTopics v5: compact topics count 2^32-2",
             lambda n: frame_raw(header(19, 5, flexible=True) + COMPACT_HUGE + b"\x00" * 8)),
        Case("Metadata v12: compact topic name length 2^32-2",
             lambda n: frame_raw(header(3, 12, flexible=True) + uvarint(2) + b"\x00" * 16
                                 + COMPACT_HUGE + b"ab")),
        Case("varint longer than 5 bytes",
             lambda n: frame_raw(header(3, 12, flexible=True) + b"\xff" * 12)),
        Case("Produce v3: 2^31-1 topics",
             lambda n: frame_raw(header(0, 3) + rk.kstring(None) + struct.pack(">hi", 1, 1000)
                                 + HUGE_I32), kinds=("plaintext", "sasl_ssl")),
        Case("Produce v3: records length 2^31-1",
             lambda n: frame_raw(header(0, 3) + rk.kstring(None) + struct.pack(">hi", 1, 1000)
                                 + struct.pack(">i", 1) + rk.kstring(n.topic)
                                 + struct.pack(">iii", 1, 0, 0x7FFFFFFF) + b"\x00" * 61),
             kinds=("plaintext", "sasl_ssl")),
        # -- tagged fields
        Case("flexible header: 2^32-1 tagged fields",
             lambda n: frame_raw(header(3, 12) + uvarint(0xFFFFFFFF) + b"\x00" * 8)),
        Case("tagged field claiming 2^31 bytes",
             lambda n: frame_raw(header(3, 12) + uvarint(1) + uvarint(0) + uvarint(2**31)
                                 + b"\x00" * 8)),
        Case("tagged field longer than the frame (1 MiB claimed)",
             lambda n: frame_raw(header(18, 3) + uvarint(1) + uvarint(5) + uvarint(MIB)
                                 + b"x" * 100)),
        # Kafka's generated readers accept repeated tags (the last one wins): answered or closed.
        Case("duplicate tagged fields (ApiVersions v3)",
             lambda n: frame_raw(header(18, 3) + uvarint(2) + (uvarint(7) + uvarint(1) + b"a") * 2
                                 + uvarint(2) + b"x" + uvarint(2) + b"1" + b"\x00"),
             "closed|answered"),
        Case("tagged fields out of order (ApiVersions v3)",
             lambda n: frame_raw(header(18, 3) + uvarint(2) + uvarint(9) + uvarint(1) + b"a"
                                 + uvarint(3) + uvarint(1) + b"b"
                                 + uvarint(2) + b"x" + uvarint(2) + b"1" + b"\x00"),
             "closed|answered"),
        # -- record batches (Produce v3, acks=1, on the plaintext listener)
        produce_case("batch: bad CRC", lambda n: patched(good_batch(), 17, "I", 0xDEADBEEF,
                                                         fix_crc=False), CORRUPT_MESSAGE),
        produce_case("batch: magic 1 (message set v1)",
                     lambda n: rk.legacy_message_set_v1(b"old"), INVALID_RECORD),
        produce_case("batch: magic 3", lambda n: patched(good_batch(), 16, "b", 3),
                     INVALID_RECORD),
        produce_case("batch: magic -1", lambda n: patched(good_batch(), 16, "b", -1),
                     INVALID_RECORD),
        produce_case("batch: record count 2 vs last offset delta 0",
                     lambda n: good_batch(count=2), INVALID_RECORD),
        produce_case("batch: record count 2^31-1, one record",
                     lambda n: good_batch(count=0x7FFFFFFF, last_offset_delta=0x7FFFFFFE),
                     INVALID_RECORD),
        produce_case("batch: record count 0", lambda n: good_batch(count=0, last_offset_delta=-1),
                     INVALID_RECORD),
        produce_case("batch: record count -1", lambda n: good_batch(count=-1, last_offset_delta=-2),
                     INVALID_RECORD),
        produce_case("batch: batch length larger than the bytes sent",
                     lambda n: patched(good_batch(), 8, "i", 10_000, fix_crc=False),
                     "closed|error"),
        produce_case("batch: batch length 0", lambda n: patched(good_batch(), 8, "i", 0,
                                                                fix_crc=False), "closed|error"),
        produce_case("batch: two batches in one partition",
                     lambda n: good_batch() + good_batch(), INVALID_RECORD),
        produce_case("batch: base offset 5", lambda n: patched(good_batch(), 0, "q", 5,
                                                               fix_crc=False), INVALID_RECORD),
        produce_case("batch: record length past the batch end",
                     lambda n: rk.record_batch([b""], records=rk.zigzag_varint(5000) + b"\x00" * 20),
                     INVALID_RECORD),
        produce_case("batch: record length -5",
                     lambda n: rk.record_batch([b""], records=rk.zigzag_varint(-5) + b"\x00" * 20),
                     INVALID_RECORD),
        produce_case("batch: record key length 2^31-1",
                     lambda n: rk.record_batch([b""], records=rk.zigzag_varint(12) + b"\x00"
                                               + b"\x00\x00" + rk.zigzag_varint(2**31 - 1)
                                               + b"\x00" * 6), INVALID_RECORD),
        produce_case("batch: 2 records declared, 1 encoded",
                     lambda n: rk.record_batch([b"a"], count=2, last_offset_delta=1,
                                               records=rk.encode_records([b"a"])), INVALID_RECORD),
        produce_case("batch: client-written control batch (attributes 0x20)",
                     lambda n: good_batch(attributes=0x20), INVALID_RECORD),
        produce_case("batch: transactional control batch (attributes 0x30)",
                     lambda n: good_batch(attributes=0x30, producer_id=n.pid, producer_epoch=1,
                                          base_sequence=1), "error"),
        produce_case("batch: unknown compression codec 5", lambda n: good_batch(attributes=5),
                     "error"),
        produce_case("batch: producer id with sequence -1",
                     lambda n: good_batch(producer_id=n.pid, producer_epoch=1, base_sequence=-1),
                     INVALID_RECORD),
        produce_case("batch: fenced producer epoch 0",
                     lambda n: good_batch(producer_id=n.pid, producer_epoch=0, base_sequence=1),
                     INVALID_PRODUCER_EPOCH),
        produce_case("batch: sequence gap (1000 after 0)",
                     lambda n: good_batch(producer_id=n.pid, producer_epoch=1, base_sequence=1000),
                     OUT_OF_ORDER_SEQUENCE_NUMBER),
        # Kafka (ProducerAppendInfo.checkSequence) lets a producer it has no state for start at
        # any sequence (its state may have been removed with old segments): accepted, and the
        # repetitions are duplicates answered with the first offset.
        produce_case("batch: unknown producer id, sequence 17",
                     lambda n: good_batch(producer_id=987654321, producer_epoch=0,
                                          base_sequence=17), 0),
        produce_case("batch: producer epoch -5",
                     lambda n: good_batch(producer_id=n.pid, producer_epoch=-5, base_sequence=1),
                     "error"),
        produce_case("batch: sequence 2^31-1 for a producer at sequence 0",
                     lambda n: good_batch(producer_id=n.pid, producer_epoch=1,
                                          base_sequence=2**31 - 1), OUT_OF_ORDER_SEQUENCE_NUMBER),
    ]
    for codec in BOMBS:
        # On a compacted topic the broker decompresses to find keyless records: the bomb must be
        # refused, with memory bounded.
        cases.append(produce_case(f"decompression bomb {codec} ({BOMBS[codec][1] // MIB} MiB), "
                                  "compacted topic", lambda n, c=codec: bomb_batch(c),
                                  INVALID_RECORD, version=7, topic="compacted"))
        cases.append(produce_case(f"corrupt {codec} stream, compacted topic",
                                  lambda n, c=codec: garbage_compressed_batch(BOMBS[c][0]),
                                  CORRUPT_MESSAGE, version=7, topic="compacted"))
    # On an ordinary topic batches are stored as sent, never decompressed: a bomb is just a
    # valid batch of ~1 MiB (stored, so fewer repetitions: they fill the disk).
    for codec in ("gzip", "zstd"):
        cases.append(produce_case(f"decompression bomb {codec}, ordinary topic",
                                  lambda n, c=codec: bomb_batch(c), "answered", version=7,
                                  reps=50))
    # -- before SASL authentication
    for api, body in [("Metadata v1", header(3, 1) + struct.pack(">i", -1)),
                      ("Produce v3", header(0, 3) + rk.kstring(None) + struct.pack(">hi", 1, 1000)
                       + struct.pack(">i", 0)),
                      ("SaslAuthenticate before SaslHandshake",
                       header(36, 1) + struct.pack(">i", 7) + b"\0a\0b\0cd"),
                      ("DeleteGroups v1 bomb", struct.pack(">hhih", 42, 1, 7, -1) + HUGE_I32),
                      ("SaslHandshake v1 mechanism length 32767",
                       header(17, 1) + struct.pack(">h", 0x7FFF) + b"PLAIN"),
                      ("SaslHandshake v0", header(17, 0) + rk.kstring("PLAIN")),
                      ("SaslAuthenticate v2 compact bytes 2^32-2",
                       header(36, 2, flexible=True) + COMPACT_HUGE)]:
        # SaslAuthenticate out of turn is answered with ILLEGAL_SASL_STATE, then closed.
        sasl_error = api.startswith("SaslAuthenticate before")
        cases.append(Case(f"before SASL authentication: {api}", lambda n, b=body: frame_raw(b),
                          ILLEGAL_SASL_STATE if sasl_error else "closed",
                          kinds=("sasl_plaintext", "sasl_ssl"), authenticate=False,
                          error_of=api_versions_error if sasl_error else None))
    cases.append(Case("before SASL authentication: 1 MiB frame",
                      lambda n: struct.pack(">i", MIB) + header(3, 1),
                      kinds=("sasl_plaintext", "sasl_ssl"), authenticate=False))
    return cases


CASES = build_cases()
PARAMS = [pytest.param(c, k, id=f"{k}-{c.name}") for c in CASES for k in c.kinds]


def run_once(node: Node, case: Case, kind: str, payload: bytes) -> tuple[str, float]:
    s = connect(node, kind, authenticate=case.authenticate)
    try:
        try:
            s.sendall(payload)
            if case.half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            return "closed", 0.0  # closed before everything was sent
        t0 = time.monotonic()
        how, frame = reaction(s)
        took = time.monotonic() - t0
    finally:
        s.close()
    if how == "answered" and case.error_of is not None:
        how = f"error {case.error_of(frame)}"
    return how, took


def acceptable(expect, how: str) -> bool:
    if isinstance(expect, int):
        return how == f"error {expect}"
    if expect == "error":
        return how.startswith("error ") and how != "error 0"
    if expect == "closed|error":
        return how == "closed" or (how.startswith("error ") and how != "error 0")
    if expect == "answered":
        return how == "answered" or how.startswith("error ")
    return how in expect.split("|") or (how.startswith("error ") and "answered" in expect)


@pytest.mark.parametrize("case,kind", PARAMS)
def test_hostile_case(node, producers, case: Case, kind: str):
    good = producers[kind]
    acked_before = len(good.acked)
    payload = case.send(node)
    reps = REPETITIONS if case.reps is None else min(case.reps, REPETITIONS)
    for _ in range(min(WARMUP, reps)):
        run_once(node, case, kind, payload)
    rss_before = node.rss_kib()
    seen: dict[str, int] = {}
    worst = 0.0
    for i in range(reps):
        how, took = run_once(node, case, kind, payload)
        seen[how] = seen.get(how, 0) + 1
        worst = max(worst, took)
        assert how != "open", f"repetition {i}: no answer and no close within {REACTION_LIMIT}s"
        assert acceptable(case.expect, how), f"repetition {i}: {how}, expected {case.expect}"
        if i % 100 == 0:
            assert node.broker.alive(), "broker died"
    assert node.broker.alive(), "broker died"
    growth = node.rss_kib() - rss_before
    RESULTS.append({"case": case.name, "listener": kind, "reps": reps,
                    "reaction": ", ".join(f"{k} x{v}" for k, v in sorted(seen.items())),
                    "worst_ms": worst * 1000, "rss_growth_kib": growth})
    assert growth < RSS_LIMIT_KIB, f"RSS grew by {growth / 1024:.1f} MiB over {reps} repetitions"
    good.check_progress(acked_before)


@pytest.mark.parametrize("kind", KINDS)
def test_well_behaved_producers_lost_nothing(node, producers, kind):
    """After all the cases above: each listener's producer stops cleanly, with no error, and every
    record it had acknowledged is read back exactly once."""
    n = producers[kind].stop_and_check(client_conf(node, kind))
    assert n > 0


# ---------------------------------------------------------------- slow and half-open connections

IDLE_MS = 3000  # connections.max.idle.ms of the node below (the handshake bound is min(10 s, it))
CLOSE_SLACK = 1.5  # seconds allowed past the bound


@pytest.fixture(scope="module")
def slow_node(kavka_bin, tmp_path_factory):
    from kavka_harness import Broker
    base = tmp_path_factory.mktemp("slow")
    certs = make_certs(kavka_bin, base)
    ports = {k: free_port() for k in KINDS}
    conf = multi_listener_conf(ports, certs, **{"connections.max.idle.ms": str(IDLE_MS)})
    b = Broker(base / "node", overrides=conf, port=ports["plaintext"], name="slow",
               binary=kavka_bin)
    b.start()
    try:
        yield Node(b, ports, certs, topic="", compacted="", pid=-1)
    finally:
        b.stop()


class Slow:
    """One slow connection: `mode` says what it does until the broker closes it."""

    def __init__(self, node: Node, mode: str):
        self.mode, self.closed_at, self.started = mode, None, time.monotonic()
        kind = {"plaintext trickle": "plaintext", "plaintext silent": "plaintext",
                "ssl trickle": "ssl", "sasl_plaintext trickle before login": "sasl_plaintext",
                "sasl_plaintext silent before login": "sasl_plaintext",
                "sasl_ssl trickle before login": "sasl_ssl",
                "ssl half ClientHello": "ssl", "ssl ClientHello, no Finished": "ssl",
                "sasl_ssl half ClientHello": "sasl_ssl"}[mode]
        raw = mode.endswith("ClientHello") or "no Finished" in mode
        if raw:  # the TLS port, without a TLS layer: the handshake is left half-way
            self.sock = socket.create_connection(("127.0.0.1", node.ports[kind]), timeout=5)
            hello = tls_client_hello()
            self.sock.sendall(hello[:len(hello) // 2] if "half" in mode else hello)
        else:
            self.sock = connect(node, kind, authenticate=False)
        self.sock.setblocking(False)
        if "trickle" in mode:
            self.pending = struct.pack(">i", 200) + header(3, 1)

    def tick(self, now: float):
        """Sends the next byte of a trickle; notices a close."""
        if self.closed_at is not None:
            return
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    self.closed_at = now
                    return
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except (OSError, ssl.SSLError):
            self.closed_at = now
            return
        if "trickle" in self.mode and self.pending:
            try:
                self.sock.send(self.pending[:1])
                self.pending = self.pending[1:]
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
            except (OSError, ssl.SSLError):
                self.closed_at = now


SLOW_MODES = ["plaintext trickle", "plaintext silent", "ssl trickle",
              "sasl_plaintext trickle before login", "sasl_plaintext silent before login",
              "sasl_ssl trickle before login", "ssl half ClientHello",
              "ssl ClientHello, no Finished", "sasl_ssl half ClientHello"]


def test_slowloris_and_half_open_handshakes(slow_node):
    """Connections that trickle a frame one byte per 200 ms, say nothing, or leave a TLS handshake
    half-way (on every listener, before SASL login where there is one): each is closed within
    connections.max.idle.ms (after login) or the handshake bound min(10 s, connections.max.idle.ms)
    (TLS handshake, SASL login), plus 1.5 s; meanwhile other clients are served within a second,
    the well-behaved producer sees no error, and RSS grows by less than 64 MiB over REPETITIONS
    connections of each kind (in rounds of 50 at a time)."""
    node = slow_node
    conf = {**client_conf(node, "plaintext"), "connections.max.idle.ms": IDLE_MS // 2}
    create_topic(conf, "slow-good")
    good = WellBehavedProducer(conf, "slow-good")
    good.wait_for_progress()
    per_round = 50
    rounds = max(2, REPETITIONS // per_round)
    bound = IDLE_MS / 1000 + CLOSE_SLACK
    worst = {m: 0.0 for m in SLOW_MODES}
    rss_before = None
    rss_by_round: list[int] = []
    for rnd in range(rounds + 1):  # round 0 is the warm-up
        acked_before = len(good.acked)
        conns = [Slow(node, m) for m in SLOW_MODES for _ in range(per_round)]
        deadline = time.monotonic() + bound + 1
        served = False
        while time.monotonic() < deadline and any(c.closed_at is None for c in conns):
            now = time.monotonic()
            for c in conns:
                c.tick(now)
            if not served:  # another client is served while all of them are held
                t0 = time.monotonic()
                with rk.Conn(node.ports["plaintext"], timeout=REACTION_LIMIT) as c:
                    assert rk.api_versions_v0(c)[0] == 0
                assert time.monotonic() - t0 < REACTION_LIMIT
                served = True
            time.sleep(0.2)
        for c in conns:
            c.sock.close()
        open_ = [c.mode for c in conns if c.closed_at is None]
        assert not open_, f"round {rnd}: {len(open_)} connections still open after {bound}s: " \
                          f"{sorted(set(open_))}"
        for c in conns:
            worst[c.mode] = max(worst[c.mode], c.closed_at - c.started)
        assert node.broker.alive(), "broker died"
        good.check_progress(acked_before)
        rss_by_round.append(node.rss_kib())
        if rnd == 0:
            rss_before = node.rss_kib()
    growth = node.rss_kib() - rss_before
    print("RSS (MiB) after each round:", [round(r / 1024, 1) for r in rss_by_round])
    for m in SLOW_MODES:
        RESULTS.append({"case": f"slow: {m}", "listener": m.split()[0], "reps": rounds * per_round,
                        "reaction": "closed", "worst_ms": worst[m] * 1000,
                        "rss_growth_kib": growth})
    print_summary()
    assert growth < RSS_LIMIT_KIB, f"RSS grew by {growth / 1024:.1f} MiB"
    log = node.broker.log_text()
    assert "closing idle connection (connections.max.idle.ms)" in log
    assert "connection rejected: TLS handshake not completed in time" in log
    assert "connection rejected: SASL authentication not completed in time" in log
    assert good.stop_and_check(conf) > 0


# ---------------------------------------------------------------- connection floods

MAX_CONNECTIONS = 16
MAX_PER_IP = 4
OVERRIDE_IP, OVERRIDE_MAX = "127.0.0.9", 8


def established_from(port: int, ip: str) -> int:
    """Client-side TCP connections from `ip` to 127.0.0.1:`port` that are ESTABLISHED."""
    want_local = "".join(f"{int(x):02X}" for x in reversed(ip.split(".")))
    want_remote = f"0100007F:{port:04X}"
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[2] == want_remote and parts[1].startswith(want_local) and parts[3] == "01":
                n += 1
    return n


def answered(s: socket.socket, limit: float = REACTION_LIMIT) -> str:
    """'answered' (ApiVersions v0 answered), 'closed', or 'open' (neither within `limit`)."""
    try:
        s.sendall(rk.request_frame(18, 0, 1, b""))
    except OSError:
        return "closed"
    how, frame = reaction(s, limit)
    if how == "answered":
        assert struct.unpack(">h", frame[4:6])[0] == 0
    return how


def open_from(port: int, ip: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((ip, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def test_connection_flood(broker_factory):
    """max.connections.per.ip (with an override) and max.connections, as Kafka applies them:
    connections from an address over its limit are closed at once (and logged); at
    max.connections the listener accepts nothing more until a connection closes, and the waiting
    connection is then served. A well-behaved producer connected before the flood keeps
    producing without error throughout."""
    b = broker_factory(**{"max.connections": str(MAX_CONNECTIONS),
                          "max.connections.per.ip": str(MAX_PER_IP),
                          "max.connections.per.ip.overrides": f"{OVERRIDE_IP}:{OVERRIDE_MAX}"})
    conf = {"bootstrap.servers": b.bootstrap, "socket.timeout.ms": 20000}
    create_topic(conf, "flood-good")
    good = WellBehavedProducer(conf, "flood-good")
    good.wait_for_progress()
    node = Node(b, {"plaintext": b.port}, Path("."), topic="", compacted="", pid=-1)

    # per address: MAX_PER_IP served, every further one closed within a second, REPETITIONS times
    held = [open_from(b.port, "127.0.0.2") for _ in range(MAX_PER_IP)]
    assert [answered(s) for s in held] == ["answered"] * MAX_PER_IP
    worst, rss_before = 0.0, None
    for i in range(REPETITIONS + WARMUP):
        if i == WARMUP:
            rss_before = node.rss_kib()
        s = open_from(b.port, "127.0.0.2")
        t0 = time.monotonic()
        how = answered(s)
        worst = max(worst, time.monotonic() - t0)
        s.close()
        assert how == "closed", f"connection {MAX_PER_IP + 1 + i} from 127.0.0.2: {how}"
    growth = node.rss_kib() - rss_before
    RESULTS.append({"case": "flood: beyond max.connections.per.ip", "listener": "plaintext",
                    "reps": REPETITIONS, "reaction": "closed", "worst_ms": worst * 1000,
                    "rss_growth_kib": growth})
    assert growth < RSS_LIMIT_KIB
    time.sleep(0.2)
    assert "connection rejected" in b.log_text() and "127.0.0.2" in b.log_text()

    # the override: OVERRIDE_MAX from that address
    held += [open_from(b.port, OVERRIDE_IP) for _ in range(OVERRIDE_MAX)]
    assert [answered(s) for s in held[MAX_PER_IP:]] == ["answered"] * OVERRIDE_MAX
    extra = open_from(b.port, OVERRIDE_IP)
    assert answered(extra) == "closed"
    extra.close()

    # node-wide: fill up from further addresses; the first connection over max.connections waits
    producer_conns = established_from(b.port, "127.0.0.1")
    assert producer_conns >= 1
    room = MAX_CONNECTIONS - len(held) - producer_conns
    assert room >= 1, "test set-up leaves no room below max.connections"
    for i in range(room):
        s = open_from(b.port, f"127.0.1.{i + 1}")
        assert answered(s) == "answered", f"connection {len(held) + producer_conns + 1}"
        held.append(s)
    waiting = open_from(b.port, "127.0.2.1")
    assert answered(waiting) == "open", "a connection beyond max.connections was served"
    good.check_progress(len(good.acked))  # the producer's connection is unaffected
    held.pop(0).close()  # a slot frees: the waiting connection is accepted and served
    how, frame = reaction(waiting)
    assert how == "answered", f"waiting connection after a slot freed: {how}"
    waiting.close()
    for s in held:
        s.close()
    assert b.alive()
    assert good.stop_and_check(conf) > 0
