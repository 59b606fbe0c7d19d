"""Debian's kcat 1.7.1 (librdkafka 2.0.2): bootstrap/metadata, produce, consume.

Old librdkafka is picky (e.g. "Read underflow" on default-valued tagged fields in
ApiVersions v3), so this suite guards compatibility with older clients.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from kclients import ck_consume, ck_create_topic, ck_produce, ck_producer  # noqa: E402

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
CODECS = ["gzip", "snappy", "lz4", "zstd"]


@pytest.fixture(scope="session", autouse=True)
def kcat_version():
    if KCAT is None:
        pytest.fail("kcat is not installed (apt-get install kcat; scripts/test.sh does this)",
                    pytrace=False)
    out = subprocess.run([KCAT, "-V"], capture_output=True, text=True, timeout=10).stdout
    return out


def kcat(broker, *args, input: bytes | None = None, timeout: float = 60,
         check: bool = True) -> subprocess.CompletedProcess:
    cmd = [KCAT, "-b", broker.bootstrap, "-X", "socket.timeout.ms=20000", *args]
    res = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {res.returncode}\n"
                             f"stdout: {res.stdout[-3000:]!r}\nstderr: {res.stderr[-3000:]!r}")
    # librdkafka logs protocol problems ("Read underflow", "ApiVersionRequest failed")
    # to stderr without always failing the command.
    for bad in (b"underflow", b"ApiVersionRequest failed", b"Protocol parse failure"):
        assert bad not in res.stderr, f"kcat stderr reports {bad!r}:\n{res.stderr[-3000:]!r}"
    return res


def consume_json(broker, topic, partition=0, count=None, offset="beginning"):
    args = ["-C", "-t", topic, "-p", str(partition), "-o", str(offset), "-e", "-J"]
    if count is not None:
        args += ["-c", str(count)]
    out = kcat(broker, *args).stdout.decode()
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_metadata_listing(broker, topic):
    ck_create_topic(broker, topic, partitions=3)
    md = json.loads(kcat(broker, "-L", "-J").stdout)
    assert md["controllerid"] == 0
    assert [(b["id"], b["name"]) for b in md["brokers"]] == [(0, broker.bootstrap)]
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics
    parts = sorted(topics[topic]["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    assert all(p["leader"] == 0 and p["replicas"] == [{"id": 0}] for p in parts), parts
    # plain-text listing as a user sees it
    text = kcat(broker, "-L", "-t", topic).stdout.decode()
    assert f"topic \"{topic}\" with 3 partitions" in text, text


def test_produce_consume_with_keys(broker, topic):
    lines = b"".join(f"key{i}:value {i}\n".encode() for i in range(100))
    kcat(broker, "-P", "-t", topic, "-p", "0", "-K", ":", input=lines)
    msgs = consume_json(broker, topic)
    assert [m["offset"] for m in msgs] == list(range(100))
    assert [(m["key"], m["payload"]) for m in msgs] == [(f"key{i}", f"value {i}") for i in range(100)]


def test_headers(broker, topic):
    kcat(broker, "-P", "-t", topic, "-p", "0", "-H", "trace=abc", "-H", "n=1",
         input=b"with headers\n")
    [m] = consume_json(broker, topic)
    assert m["payload"] == "with headers"
    assert m["headers"] == ["trace", "abc", "n", "1"], m
    got = ck_consume(broker, topic, 0, 1)
    assert got[0].headers == [("trace", b"abc"), ("n", b"1")]


@pytest.mark.parametrize("codec", CODECS)
def test_compressed_produce_consume(broker, topic, codec):
    lines = b"".join(f"{codec} record {i} ".encode() + b"x" * 200 + b"\n" for i in range(500))
    kcat(broker, "-P", "-t", topic, "-p", "0", "-z", codec, "-X", "linger.ms=50", input=lines)
    # librdkafka silently falls back to uncompressed batches when it thinks the broker
    # lacks the codec (it decides from ApiVersions): check the log is really compressed.
    stored = sum(f.stat().st_size for f in (broker.data_dir / f"{topic}-0").glob("*.log"))
    assert stored < len(lines) / 4, f"{codec}: {stored} bytes stored for {len(lines)}: not compressed"
    msgs = consume_json(broker, topic)
    assert len(msgs) == 500
    assert msgs[7]["payload"] == f"{codec} record 7 " + "x" * 200
    # ... and a current librdkafka reads what the old one compressed
    got = ck_consume(broker, topic, 0, 500)
    assert got[499].value == f"{codec} record 499 ".encode() + b"x" * 200


def test_cross_client(broker, topic):
    ck_create_topic(broker, topic)
    p = ck_producer(broker, **{"compression.type": "zstd"})
    ck_produce(p, topic, [(b"ck", b"from confluent-kafka", [("h", b"1")])], partition=0)
    kcat(broker, "-P", "-t", topic, "-p", "0", "-K", ":", input=b"kc:from kcat\n")
    msgs = consume_json(broker, topic)
    assert [(m["offset"], m["key"], m["payload"]) for m in msgs] == [
        (0, "ck", "from confluent-kafka"), (1, "kc", "from kcat")]


def test_consume_from_offset_and_count(broker, topic):
    kcat(broker, "-P", "-t", topic, "-p", "0",
         input=b"".join(f"m{i}\n".encode() for i in range(50)))
    msgs = consume_json(broker, topic, offset=40, count=5)
    assert [(m["offset"], m["payload"]) for m in msgs] == [(40 + i, f"m{40 + i}") for i in range(5)]
    msgs = consume_json(broker, topic, offset=-3)  # 3 from the end
    assert [m["payload"] for m in msgs] == ["m47", "m48", "m49"]


def test_query_offset_by_timestamp(broker, topic):
    ck_create_topic(broker, topic)
    p = ck_producer(broker)
    base = (int(time.time()) - 3600) * 1000
    for i in range(10):
        p.produce(topic, value=f"t{i}".encode(), partition=0, timestamp=base + i * 1000)
        p.flush(10)
    out = kcat(broker, "-Q", "-t", f"{topic}:0:{base + 4500}").stdout.decode()
    assert "offset 5" in out, out


def test_large_message(broker, topic):
    value = b"L" * 400_000
    kcat(broker, "-P", "-t", topic, "-p", "0", input=value + b"\n")
    out = kcat(broker, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-c", "1").stdout
    assert out.rstrip(b"\n") == value


def test_produce_autocreates_topic(broker, topic):
    kcat(broker, "-P", "-t", topic, input=b"auto\n")
    md = json.loads(kcat(broker, "-L", "-J", "-t", topic).stdout)
    [t] = md["topics"]
    assert t["topic"] == topic and "error" not in t, t
