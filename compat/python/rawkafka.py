"""Minimal hand-built Kafka requests for tests that need exact control over the bytes
(sequence numbers, hostile frames, unsupported versions). Only non-flexible request
versions are encoded here; real clients cover the rest.
"""

from __future__ import annotations

import socket
import struct
import time

import crc32c as _crc32c


def uvarint(n: int) -> bytes:
    """Unsigned varint (compact lengths, tagged-field tags and sizes)."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag_varint(n: int) -> bytes:
    return uvarint((n << 1) ^ (n >> 63))


def kstring(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def request_frame(api_key: int, version: int, corr: int, body: bytes,
                  client_id: str | None = "kavka-raw", flexible_header: bool = False) -> bytes:
    """Size-prefixed request: header v1 (v2 adds an empty tagged-field section)."""
    header = struct.pack(">hhi", api_key, version, corr) + kstring(client_id)
    if flexible_header:
        header += b"\x00"
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def encode_records(values: list[bytes]) -> bytes:
    """The records section of a v2 batch (no compression): one record per value."""
    records = bytearray()
    for i, v in enumerate(values):
        body = (b"\x00" + zigzag_varint(0) + zigzag_varint(i) + zigzag_varint(-1)
                + zigzag_varint(len(v)) + v + zigzag_varint(0))
        records += zigzag_varint(len(body)) + body
    return bytes(records)


def record_batch(values: list[bytes], producer_id: int = -1, producer_epoch: int = -1,
                 base_sequence: int = -1, timestamp_ms: int | None = None,
                 attributes: int = 0, records: bytes | None = None,
                 count: int | None = None, last_offset_delta: int | None = None) -> bytes:
    """A magic-2 record batch with a correct CRC32C. `records` replaces the encoded
    records section (e.g. with compressed bytes, attributes then naming the codec), and
    `count`/`last_offset_delta` override the header fields, for hostile batches."""
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    payload = encode_records(values) if records is None else records
    n = len(values) if count is None else count
    lod = len(values) - 1 if last_offset_delta is None else last_offset_delta
    after_crc = struct.pack(">hiqqqhii", attributes, lod, ts, ts, producer_id, producer_epoch,
                            base_sequence, n) + payload
    crc = _crc32c.crc32c(after_crc)
    # batchLength counts from partitionLeaderEpoch to the end.
    batch_length = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", 0, batch_length, 0, 2, crc) + after_crc


class Conn:
    """One blocking connection speaking size-prefixed frames."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.corr = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self) -> bytes:
        (size,) = struct.unpack(">i", self.recv_exact(4))
        if size < 4 or size > 64 * 1024 * 1024:
            raise ValueError(f"implausible response size {size}")
        return self.recv_exact(size)

    def request(self, api_key: int, version: int, body: bytes) -> bytes:
        """Send a non-flexible request; return the response body after the correlation id."""
        self.corr += 1
        self.send_raw(request_frame(api_key, version, self.corr, body))
        frame = self.recv_frame()
        (corr,) = struct.unpack(">i", frame[:4])
        if corr != self.corr:
            raise ValueError(f"correlation id {corr}, expected {self.corr}")
        return frame[4:]


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, fmt: str):
        vals = struct.unpack_from(">" + fmt, self.data, self.pos)
        self.pos += struct.calcsize(">" + fmt)
        return vals if len(vals) > 1 else vals[0]

    def string(self) -> str | None:
        n = self.take("h")
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s


def api_versions_v0(conn: Conn, version: int = 0) -> tuple[int, dict[int, tuple[int, int]]]:
    """ApiVersions at `version` (answered in v0 format when the broker does not know it);
    returns (error_code, {api_key: (min, max)})."""
    body = conn.request(18, version, b"")
    r = Reader(body)
    err = r.take("h")
    n = r.take("i")
    apis = {}
    for _ in range(n):
        k, lo, hi = r.take("hhh")
        apis[k] = (lo, hi)
    return err, apis


def init_producer_id(conn: Conn, transactional_id: str | None = None) -> tuple[int, int, int]:
    """InitProducerId v1 (non-transactional unless `transactional_id`): (error, producer_id, epoch)."""
    body = conn.request(22, 1, kstring(transactional_id) + struct.pack(">i", 60000))
    r = Reader(body)
    _throttle, err, pid, epoch = r.take("ihqh")
    return err, pid, epoch


def produce_v3(conn: Conn, topic: str, partition: int, batch: bytes,
               acks: int = -1, version: int = 3) -> tuple[int, int]:
    """Produce (v3..v8, non-flexible) of one batch to one partition: (error_code, base_offset).
    Use version >= 7 for zstd batches."""
    assert 3 <= version <= 8
    body = (kstring(None) + struct.pack(">hi", acks, 10000) + struct.pack(">i", 1) + kstring(topic)
            + struct.pack(">i", 1) + struct.pack(">ii", partition, len(batch)) + batch)
    r = Reader(conn.request(0, version, body))
    assert r.take("i") == 1
    r.string()
    assert r.take("i") == 1
    _idx, err, base_offset, _append_time = r.take("ihqq")
    return err, base_offset


def legacy_message_set_v1(value: bytes, timestamp_ms: int | None = None) -> bytes:
    """A magic-1 (pre-0.11) message set with one message; Kafka 4 refuses these."""
    import zlib
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    body = struct.pack(">bbq", 1, 0, ts) + struct.pack(">i", -1) + struct.pack(">i", len(value)) + value
    msg = struct.pack(">I", zlib.crc32(body)) + body
    return struct.pack(">qi", 0, len(msg)) + msg


def fetch_v4(conn: Conn, topic: str, partition: int, offset: int, max_wait_ms: int,
             min_bytes: int = 1, max_bytes: int = 1 << 20) -> dict:
    """Fetch v4 for one partition: {error, high_watermark, records (bytes)}."""
    body = (struct.pack(">iiiib", -1, max_wait_ms, min_bytes, max_bytes, 0)
            + struct.pack(">i", 1) + kstring(topic)
            + struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, max_bytes))
    r = Reader(conn.request(1, 4, body))
    r.take("i")  # throttle
    assert r.take("i") == 1
    r.string()
    assert r.take("i") == 1
    _p, err, hw, _lso = r.take("ihqq")
    n_aborted = r.take("i")
    for _ in range(max(n_aborted, 0)):
        r.take("qq")
    size = r.take("i")
    records = b"" if size < 0 else r.data[r.pos:r.pos + size]
    return {"error": err, "high_watermark": hw, "records": records, "records_null": size < 0}


def count_batch_records(records: bytes) -> int:
    """Records in a sequence of v2 batches (whole batches only)."""
    n, pos = 0, 0
    while pos + 61 <= len(records):
        (length,) = struct.unpack_from(">i", records, pos + 8)
        if pos + 12 + length > len(records):
            break
        (count,) = struct.unpack_from(">i", records, pos + 57)
        n += count
        pos += 12 + length
    return n


# ---------------------------------------------------------------- SASL and forged fetches


def sasl_handshake_v1(conn: Conn, mechanism: str) -> tuple[int, list[str]]:
    """SaslHandshake v1: (error_code, enabled mechanisms)."""
    r = Reader(conn.request(17, 1, kstring(mechanism)))
    err = r.take("h")
    n = r.take("i")
    return err, [r.string() for _ in range(max(n, 0))]


def sasl_authenticate_v1(conn: Conn, auth_bytes: bytes) -> dict:
    """SaslAuthenticate v1: {error, message, auth_bytes, session_lifetime_ms}."""
    r = Reader(conn.request(36, 1, struct.pack(">i", len(auth_bytes)) + auth_bytes))
    err = r.take("h")
    message = r.string()
    size = r.take("i")
    data = b"" if size < 0 else r.data[r.pos:r.pos + size]
    r.pos += max(size, 0)
    lifetime = r.take("q")
    return {"error": err, "message": message, "auth_bytes": data, "session_lifetime_ms": lifetime}


def sasl_plain_login(conn: Conn, user: str, password: str) -> dict:
    """SaslHandshake v1 PLAIN then SaslAuthenticate v1 with the PLAIN token; the authenticate answer."""
    err, mechanisms = sasl_handshake_v1(conn, "PLAIN")
    if err != 0:
        raise AssertionError(f"SaslHandshake PLAIN answered error {err} ({mechanisms})")
    return sasl_authenticate_v1(conn, b"\0" + user.encode() + b"\0" + password.encode())


def metadata_v1(conn: Conn, topics: list[str] | None = None) -> dict:
    """Metadata v1 (topics None = all): {brokers: [(id, host, port)], controller_id,
    topics: {name: (error, [(partition, error, leader)])}}."""
    body = struct.pack(">i", -1) if topics is None else (
        struct.pack(">i", len(topics)) + b"".join(kstring(t) for t in topics))
    r = Reader(conn.request(3, 1, body))
    brokers = []
    for _ in range(r.take("i")):
        node, host, port = r.take("i"), r.string(), r.take("i")
        r.string()  # rack
        brokers.append((node, host, port))
    controller = r.take("i")
    out = {}
    for _ in range(r.take("i")):
        err, name = r.take("h"), r.string()
        r.take("b")  # is_internal
        parts = []
        for _ in range(r.take("i")):
            perr, pid, leader = r.take("hii")
            for _ in range(2):  # replicas, isr
                for _ in range(r.take("i")):
                    r.take("i")
            parts.append((pid, perr, leader))
        out[name] = (err, parts)
    return {"brokers": brokers, "controller_id": controller, "topics": out}


def metadata_v7(conn: Conn, topics: list[str] | None = None) -> dict:
    """Metadata v7, which carries leader epochs: {brokers: [(id, host, port)], controller_id,
    topics: {name: (error, {partition: {"error", "leader", "epoch", "replicas", "isr"}})}}."""
    body = (struct.pack(">i", -1) if topics is None else (
        struct.pack(">i", len(topics)) + b"".join(kstring(t) for t in topics))) + b"\x00"
    r = Reader(conn.request(3, 7, body))
    r.take("i")  # throttle_time_ms
    brokers = []
    for _ in range(r.take("i")):
        node, host, port = r.take("i"), r.string(), r.take("i")
        r.string()  # rack
        brokers.append((node, host, port))
    r.string()  # cluster_id
    controller = r.take("i")

    def int_array() -> list[int]:
        return [r.take("i") for _ in range(r.take("i"))]

    out = {}
    for _ in range(r.take("i")):
        err, name = r.take("h"), r.string()
        r.take("b")  # is_internal
        parts = {}
        for _ in range(r.take("i")):
            perr, pid, leader, epoch = r.take("hiii")
            replicas, isr = int_array(), int_array()
            int_array()  # offline_replicas
            parts[pid] = {"error": perr, "leader": leader, "epoch": epoch,
                          "replicas": replicas, "isr": isr}
        out[name] = (err, parts)
    return {"brokers": brokers, "controller_id": controller, "topics": out}


def fetch_with_replica_id(conn: Conn, topic: str, partition: int, offset: int, replica_id: int,
                          version: int = 4, max_wait_ms: int = 100,
                          max_bytes: int = 1 << 20) -> dict:
    """Fetch v4 or v11 (non-flexible) for one partition with the given replica_id (>= 0: a
    follower's fetch). Returns {error (top level, v7+; else None), partitions: [{topic,
    partition, error, high_watermark, records}]}: every partition the answer carries."""
    assert version in (4, 11)
    head = struct.pack(">iiiib", replica_id, max_wait_ms, 1, max_bytes, 0)
    if version >= 7:
        head += struct.pack(">ii", 0, -1)  # session_id, session_epoch (no session)
    if version >= 9:
        part = struct.pack(">iiqqi", partition, -1, offset, -1, max_bytes)
    else:
        part = struct.pack(">iqi", partition, offset, max_bytes)
    body = head + struct.pack(">i", 1) + kstring(topic) + struct.pack(">i", 1) + part
    if version >= 7:
        body += struct.pack(">i", 0)  # forgotten topics
    if version >= 11:
        body += kstring("")  # rack_id
    r = Reader(conn.request(1, version, body))
    r.take("i")  # throttle
    top_error = None
    if version >= 7:
        top_error = r.take("h")
        r.take("i")  # session_id
    parts = []
    for _ in range(r.take("i")):
        name = r.string()
        for _ in range(r.take("i")):
            p, err, hw, _lso = r.take("ihqq")
            if version >= 5:
                r.take("q")  # log_start_offset
            for _ in range(max(r.take("i"), 0)):
                r.take("qq")
            if version >= 11:
                r.take("i")  # preferred_read_replica
            size = r.take("i")
            records = b"" if size < 0 else r.data[r.pos:r.pos + size]
            r.pos += max(size, 0)
            parts.append({"topic": name, "partition": p, "error": err, "high_watermark": hw,
                          "records": records})
    return {"error": top_error, "partitions": parts}


def describe_acls_v1(conn: Conn, resource_type: int = 1, name: str | None = None,
                     pattern_type: int = 1, principal: str | None = None, host: str | None = None,
                     operation: int = 1, permission: int = 1) -> dict:
    """DescribeAcls v1 (defaults: ANY everything): {error, message, resources: [(type, name,
    pattern, [(principal, host, operation, permission)])]}."""
    body = (struct.pack(">b", resource_type) + kstring(name) + struct.pack(">b", pattern_type)
            + kstring(principal) + kstring(host) + struct.pack(">bb", operation, permission))
    r = Reader(conn.request(29, 1, body))
    r.take("i")  # throttle
    err, message = r.take("h"), r.string()
    resources = []
    for _ in range(max(r.take("i"), 0)):
        rtype, rname, pattern = r.take("b"), r.string(), r.take("b")
        acls = []
        for _ in range(max(r.take("i"), 0)):
            acls.append((r.string(), r.string(), r.take("b"), r.take("b")))
        resources.append((rtype, rname, pattern, acls))
    return {"error": err, "message": message, "resources": resources}
