"""Debian's kcat 1.7.1 (librdkafka 2.0.2): bootstrap/metadata, produce, consume; SASL (PLAIN,
SCRAM-SHA-256) on a SASL_PLAINTEXT listener, wrong passwords, and metadata filtered by ACLs.

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
from kavka_harness import free_port  # noqa: E402

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


# ---------------------------------------------------------------- SASL (PLAIN, SCRAM) and ACLs

SASL_CLUSTER_ID = "kavkaKcatSaslCluster01"
SASL_USERS = {"admin": "admin-secret", "alice": "alice-secret"}
SASL_JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
             + " ".join(f'user_{u}="{p}"' for u, p in SASL_USERS.items()) + ";")
SCRAM_USER, SCRAM_PASSWORD = "carol", "carol-scram-secret"


def sasl_broker(broker_factory, acls: bool):
    """One combined broker/controller node whose client listener CLIENT is SASL_PLAINTEXT
    (PLAIN with the users of SASL_JAAS, SCRAM-SHA-256, SCRAM-SHA-512); its INTERNAL and
    CONTROLLER listeners are PLAINTEXT. acls=True adds the StandardAuthorizer with super user
    User:admin. broker.port (and so broker.bootstrap) is the SASL listener's."""
    ports = {"CLIENT": free_port(), "INTERNAL": free_port(), "CONTROLLER": free_port()}
    conf = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in ports.items()),
        "advertised.listeners": f"CLIENT://127.0.0.1:{ports['CLIENT']},"
                                f"INTERNAL://127.0.0.1:{ports['INTERNAL']}",
        "listener.security.protocol.map":
            "CLIENT:SASL_PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL",
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.voters": f"1@127.0.0.1:{ports['CONTROLLER']}",
        "offsets.topic.replication.factor": "1",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.client.plain.sasl.jaas.config": SASL_JAAS,
    }
    if acls:
        conf["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        conf["super.users"] = "User:admin"
    b = broker_factory(port=ports["CLIENT"], start=False, set_listener_and_dirs=False, **conf)
    b.overrides["log.dirs"] = str(b.data_dir)
    b.data_dir.mkdir(parents=True, exist_ok=True)
    (b.data_dir / "meta.properties").write_text(
        f"version=1\ncluster.id={SASL_CLUSTER_ID}\nnode.id=1\n")
    b.start()
    return b


def sasl_x(user: str, password: str, mechanism: str = "PLAIN") -> list[str]:
    """kcat's -X options for SASL_PLAINTEXT with this user."""
    return ["-X", "security.protocol=SASL_PLAINTEXT", "-X", f"sasl.mechanisms={mechanism}",
            "-X", f"sasl.username={user}", "-X", f"sasl.password={password}"]


def ck_sasl_admin(broker, user: str = "admin"):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": broker.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                        "sasl.mechanism": "PLAIN", "sasl.username": user,
                        "sasl.password": SASL_USERS[user], "socket.timeout.ms": 20000})


def ck_sasl_topics(broker, user: str, password: str, mechanism: str) -> set[str]:
    """The topics a confluent-kafka (current librdkafka) client with these credentials sees."""
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": broker.bootstrap,
                         "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
                         "sasl.username": user, "sasl.password": password})
    return set(admin.list_topics(timeout=20).topics)


def ck_sasl_create_topic(broker, name: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import NewTopic
    admin = ck_sasl_admin(broker)  # kept alive until the result is in
    fs = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=20,
                             request_timeout=20)
    fs[name].result(30)


def ck_sasl_add_scram_user(broker, user: str, password: str) -> None:
    """SCRAM-SHA-256 credentials for user, created by the super user admin (AlterUserScramCredentials
    through confluent-kafka). Clients live only inside helpers, so none outlives its broker."""
    from confluent_kafka.admin import (ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)
    up = UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                      password.encode())
    admin = ck_sasl_admin(broker)
    for f in admin.alter_user_scram_credentials([up]).values():
        f.result(30)


def ck_sasl_create_acls(broker, bindings) -> None:
    admin = ck_sasl_admin(broker)
    for f in admin.create_acls(bindings).values():
        f.result(30)


def kcat_sasl_roundtrip(broker, topic: str, creds: list[str], tag: str) -> None:
    """kcat produces 20 keyed records with these SASL options, then consumes them back."""
    lines = b"".join(f"k{i}:{tag} {i}\n".encode() for i in range(20))
    kcat(broker, *creds, "-P", "-t", topic, "-p", "0", "-K", ":", input=lines)
    out = kcat(broker, *creds, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-J").stdout
    msgs = [json.loads(ln) for ln in out.decode().splitlines() if ln.strip()]
    assert [(m["offset"], m["key"], m["payload"]) for m in msgs] == \
        [(i, f"k{i}", f"{tag} {i}") for i in range(20)], msgs


def test_sasl_plain_produce_consume(broker_factory, topic):
    b = sasl_broker(broker_factory, acls=False)
    ck_sasl_create_topic(b, topic)
    kcat_sasl_roundtrip(b, topic, sasl_x("alice", SASL_USERS["alice"]), "plain")
    assert "SASL authentication succeeded" in b.log_text() and "principal=User:alice" \
        in b.log_text(), b.log_tail(4000)


def test_sasl_scram_sha256_produce_consume(broker_factory, topic, kcat_version):
    if "sasl_scram" not in kcat_version:
        pytest.skip(f"this kcat's librdkafka lacks SCRAM (builtin.features): {kcat_version}")
    b = sasl_broker(broker_factory, acls=False)
    ck_sasl_add_scram_user(b, SCRAM_USER, SCRAM_PASSWORD)
    ck_sasl_create_topic(b, topic)
    # The credential works with a current librdkafka (confluent-kafka), so a failure below is
    # about what this older client sends.
    assert topic in ck_sasl_topics(b, SCRAM_USER, SCRAM_PASSWORD, "SCRAM-SHA-256")
    kcat_sasl_roundtrip(b, topic, sasl_x(SCRAM_USER, SCRAM_PASSWORD, "SCRAM-SHA-256"), "scram")
    assert f"principal=User:{SCRAM_USER}" in b.log_text(), b.log_tail(4000)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_sasl_wrong_password_fails(broker_factory, topic, mechanism):
    """A wrong password: kcat -L (metadata timeout -m 8) and kcat -P (message.timeout.ms=8000)
    both exit non-zero within bounded time and report the SASL authentication error; the broker
    refused every attempt for its credentials (and never logs the password)."""
    b = sasl_broker(broker_factory, acls=False)
    user = "alice"
    if mechanism != "PLAIN":
        ck_sasl_add_scram_user(b, SCRAM_USER, SCRAM_PASSWORD)
        user = SCRAM_USER
    ck_sasl_create_topic(b, topic)
    wrong = "wr0ng-Kc4t-pw"
    creds = sasl_x(user, wrong, mechanism)
    for args, stdin in ((["-L", "-m", "8"], None),
                        (["-P", "-t", topic, "-p", "0", "-X", "message.timeout.ms=8000"], b"x\n")):
        t0 = time.monotonic()
        r = kcat(b, *creds, *args, input=stdin, timeout=60, check=False)
        elapsed = time.monotonic() - t0
        assert r.returncode != 0, f"kcat {args} succeeded with a wrong password: {r}"
        assert elapsed < 40, f"kcat {args} took {elapsed:.1f}s to fail"
        assert b"SASL authentication error" in r.stderr \
            or b"Authentication failed" in r.stderr, r.stderr.decode(errors="replace")[-3000:]
    # Refused for the password, not for a protocol error (e.g. a SCRAM message the broker misread).
    rejected = [ln for ln in b.log_text().splitlines()
                if "connection rejected: SASL authentication failed" in ln]
    assert rejected, b.log_tail(4000)
    credentials = ("Invalid username or password", "due to invalid credentials")
    assert all(any(c in ln for c in credentials) for ln in rejected), rejected
    assert wrong not in b.log_text(), "the client's password was written to the broker log"
    # Nothing was written by the refused producer.
    out = kcat(b, *sasl_x("admin", SASL_USERS["admin"]), "-C", "-t", topic, "-p", "0",
               "-o", "beginning", "-e").stdout
    assert out == b"", out


def test_sasl_metadata_lists_only_described_topics(broker_factory, topic):
    """ACLs on: alice may DESCRIBE one topic only; `kcat -L` as alice lists that topic and no
    other, while the super user admin sees both."""
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    b = sasl_broker(broker_factory, acls=True)
    visible, hidden = f"{topic}-seen", f"{topic}-hidden"
    ck_sasl_create_topic(b, visible, partitions=2)
    ck_sasl_create_topic(b, hidden)
    binding = AclBinding(ResourceType.TOPIC, visible, ResourcePatternType.LITERAL, "User:alice",
                         "*", AclOperation.DESCRIBE, AclPermissionType.ALLOW)
    ck_sasl_create_acls(b, [binding])

    md = json.loads(kcat(b, *sasl_x("admin", SASL_USERS["admin"]), "-L", "-J", "-m", "15").stdout)
    assert {visible, hidden} <= {t["topic"] for t in md["topics"]}, md

    md = json.loads(kcat(b, *sasl_x("alice", SASL_USERS["alice"]), "-L", "-J", "-m", "15").stdout)
    assert [t["topic"] for t in md["topics"]] == [visible], md
    [t] = md["topics"]
    assert "error" not in t and sorted(p["partition"] for p in t["partitions"]) == [0, 1], t
    assert [(br["id"], br["name"]) for br in md["brokers"]] == [(1, b.bootstrap)], md
    # Naming the hidden topic gives alice an authorization error for it, not its partitions.
    md = json.loads(kcat(b, *sasl_x("alice", SASL_USERS["alice"]), "-L", "-J", "-m", "15",
                         "-t", hidden).stdout)
    assert all(not t.get("partitions") for t in md["topics"] if t["topic"] == hidden), md
