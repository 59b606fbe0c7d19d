"""SASL authentication and ACL authorization on a three-node Kavka cluster, with confluent-kafka
(librdkafka) and hand-built frames (rawkafka).

The cluster (one module-scoped fixture, stopped at the end): three combined broker/controller nodes.
Each has a SASL_SSL client listener CLIENT (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; PLAIN users admin,
alice, bob from the listener's JAAS configuration), and SSL listeners INTERNAL (inter-broker) and
CONTROLLER with ssl.client.auth=required and the node certificates of `kavka certs` (nodes are
super users by their certificate DN). ACLs are on (StandardAuthorizer, User:admin is a super user).
Node 1 also has a PLAINTEXT listener OPEN (principal User:ANONYMOUS) and a SASL_PLAINTEXT listener
SASLPLAIN, and connection.failed.authentication.delay.ms=500.

What is checked:
1. SASL_SSL PLAIN: the right password produces and consumes; a wrong one is refused (librdkafka
   reports _AUTHENTICATION "SASL authentication error"), and the broker logs "connection rejected:
   SASL authentication failed" naming the peer, never the password.
2. SCRAM-SHA-256 and SCRAM-SHA-512: the admin (PLAIN, super user) creates alice's credentials with
   AlterUserScramCredentials through node 1; alice authenticates on each node alone;
   DescribeUserScramCredentials lists mechanisms and iterations; a wrong password is refused;
   iterations < 4096 are refused with UNACCEPTABLE_CREDENTIAL; after every node restarts, alice
   still authenticates (the credentials live in the replicated metadata log).
3. ACLs: bob, allowed Read on topic `temperature` and group `app`, consumes what the admin
   produced; he cannot produce, create or delete topics (TOPIC_AUTHORIZATION_FAILED) and does not
   see other topics; DENY Read on PREFIXED `temp` overrides the allow; the super user needs no ACL;
   describe_acls/delete_acls round-trip; bob's create_acls/describe_acls fail with
   CLUSTER_AUTHORIZATION_FAILED.
4. A forged replica id: a Fetch with replica_id=1 from User:ANONYMOUS on the PLAINTEXT listener gets
   Kafka's answer for a follower without ClusterAction (each partition TOPIC_AUTHORIZATION_FAILED,
   no records), and Metadata there shows no topics.
5. A failed TLS handshake is logged and the connection closes after the failed-authentication delay.
   Before authentication on SASL_PLAINTEXT (raw frames): ApiVersions is answered; Metadata and a
   200 KiB frame close the connection; an unknown mechanism gets UNSUPPORTED_SASL_MECHANISM with the
   enabled list; a raw PLAIN exchange succeeds and Metadata is then answered; a wrong password gets
   SASL_AUTHENTICATION_FAILED no sooner than connection.failed.authentication.delay.ms, then the
   connection closes.
7. SASL between the nodes (a second cluster, SASL_PLAINTEXT on every listener): the nodes log in to
   each other's inter-broker and controller listeners with PLAIN, or with SCRAM from credentials of
   `kavka storage format --add-scram` (sasl.mechanism.*.protocol and the JAAS username/password),
   replicate an RF3 topic with acks=all and a full ISR, and serve a SCRAM
   client with ACLs; a node with a wrong inter-broker password is refused by the others.
6. Re-authentication (KIP-368) on a single node with connections.max.reauth.ms=3000: the session
   lifetime is reported; a request after expiry closes the connection; re-authenticating before
   expiry keeps it open; re-authenticating as another user fails; a confluent-kafka producer keeps
   producing over more than two lifetimes.
   kafka-python (which does not re-authenticate) produces and consumes across an expiry by
   reconnecting, and fails on a wrong password.
"""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

import rawkafka as rk
from kavka_harness import Broker, free_port, kavka_certs, node_store_settings

CLUSTER_ID = "kavkaSaslAclCluster001"
USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret",
         # One user per authorization test below, so that their ACLs do not meet.
         "writer": "writer-secret", "nobody": "nobody-secret", "viewer": "viewer-secret",
         "creator": "creator-secret"}
JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
        + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")
NODE_DN = "CN=node-{},O=Kavka"
# ssl.principal.mapping.rules of the INTERNAL listener: client certificates named app-<letters> map to
# that name; everything else (the nodes) keeps its DN.
MTLS_CLIENT = "app-mtls"
MAPPING_RULES = "RULE:^CN=(app-[a-z]+),O=Kavka$/$1/,DEFAULT"
FAILED_DELAY_MS = 500
# The wrong passwords this file sends: none may ever appear in a broker log.
WRONG_PASSWORDS = ["wr0ng-Pl41n-pw-7c1e", "wr0ng-Scr4m-pw-91ab"]
SCRAM_PASSWORD = "alice-scram-pw-5f2d"
# Kavka's sasl.server.max.receive.size default (Kafka's is 512 KiB), which the cluster leaves unset.
PRE_AUTH_FRAME_LIMIT = 128 * 1024


def wait_until(what: str, check, timeout: float = 30.0, interval: float = 0.3):
    """Polls check() until it returns a truthy value (returned) or the timeout (fails with the
    last exception or value)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as e:  # noqa: BLE001 - reported below
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: last result {last!r}")


class Cluster:
    def __init__(self, nodes: list[Broker], ports: list[dict], certs: Path):
        self.nodes = nodes
        self.ports = ports
        self.certs = certs

    def client_bootstrap(self, i: int | None = None) -> str:
        idx = range(3) if i is None else [i]
        return ",".join(f"127.0.0.1:{self.ports[j]['CLIENT']}" for j in idx)

    def conf(self, user: str, password: str | None = None, mechanism: str = "PLAIN",
             node: int | None = None, errors: list | None = None, **extra) -> dict:
        c = {
            "bootstrap.servers": self.client_bootstrap(node),
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": mechanism,
            "sasl.username": user,
            "sasl.password": USERS[user] if password is None else password,
            "ssl.ca.location": str(self.certs / "ca.pem"),
            "socket.timeout.ms": 10000,
            "reconnect.backoff.max.ms": 1000,
        }
        if errors is not None:
            c["error_cb"] = errors.append
        c.update(extra)
        return c

    def admin(self, user: str = "admin", **kw) -> AdminClient:
        return AdminClient(self.conf(user, **kw))

    def logs(self) -> str:
        return "\n".join(n.log_text() for n in self.nodes)

    def start_all(self) -> None:
        for n in self.nodes:
            n.start(timeout=90)

    def stop_all(self) -> None:
        for n in self.nodes:
            n.stop()


@pytest.fixture(scope="module")
def cluster(kavka_bin, tmp_path_factory):
    base = tmp_path_factory.mktemp("sasl-acl")
    certs = base / "certs"
    kavka_certs(kavka_bin, certs, "ca")
    for i in (1, 2, 3):
        kavka_certs(kavka_bin, certs, "node", "--name", f"node-{i}", "--dns", "localhost",
                    "--ip", "127.0.0.1")
    kavka_certs(kavka_bin, certs, "client", "--name", MTLS_CLIENT)
    ports = [{"CLIENT": free_port(), "INTERNAL": free_port(), "CONTROLLER": free_port()}
             for _ in range(3)]
    ports[0]["OPEN"] = free_port()
    ports[0]["SASLPLAIN"] = free_port()
    voters = ",".join(f"{i + 1}@127.0.0.1:{p['CONTROLLER']}" for i, p in enumerate(ports))
    super_users = ";".join(f"User:{NODE_DN.format(i)}" for i in (1, 2, 3)) + ";User:admin"
    nodes = []
    for i, p in enumerate(ports):
        node_id = i + 1
        workdir = base / f"node{node_id}"
        data = workdir / "data"
        data.mkdir(parents=True)
        (data / "meta.properties").write_text(
            f"version=1\ncluster.id={CLUSTER_ID}\nnode.id={node_id}\n")
        listeners = ",".join(f"{name}://127.0.0.1:{port}" for name, port in p.items())
        advertised = ",".join(f"{name}://127.0.0.1:{port}" for name, port in p.items()
                              if name != "CONTROLLER")
        conf = {
            "process.roles": "broker,controller",
            "node.id": str(node_id),
            "log.dirs": str(data),
            "listeners": listeners,
            "advertised.listeners": advertised,
            "listener.security.protocol.map": "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL,"
                                              "OPEN:PLAINTEXT,SASLPLAIN:SASL_PLAINTEXT",
            "inter.broker.listener.name": "INTERNAL",
            "controller.listener.names": "CONTROLLER",
            "controller.quorum.voters": voters,
            **node_store_settings(certs, f"node-{node_id}"),
            "listener.name.internal.ssl.client.auth": "required",
            "listener.name.controller.ssl.client.auth": "required",
            "listener.name.internal.ssl.principal.mapping.rules": MAPPING_RULES,
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.client.plain.sasl.jaas.config": JAAS,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": super_users,
            "offsets.topic.replication.factor": "3",
        }
        if node_id == 1:
            conf["listener.name.saslplain.plain.sasl.jaas.config"] = JAAS
            conf["connection.failed.authentication.delay.ms"] = str(FAILED_DELAY_MS)
        nodes.append(Broker(workdir, overrides=conf, set_listener_and_dirs=False,
                            port=p["CLIENT"], name=f"node{node_id}", binary=kavka_bin))
    c = Cluster(nodes, ports, certs)
    try:
        c.start_all()
        # Ready when the admin sees all three brokers.
        wait_until("three brokers in the admin's metadata",
                   lambda: len(c.admin().list_topics(timeout=5).brokers) == 3, timeout=60)
        yield c
    finally:
        c.stop_all()


@pytest.fixture(autouse=True)
def _attach_logs(request):
    """On failure, kavka_fixtures' report hook attaches the log of every node the test used."""
    brokers: list = []
    setattr(request.node, "_kavka_brokers", brokers)
    if "reauth_broker" in request.fixturenames:
        brokers.append(request.getfixturevalue("reauth_broker"))
    elif "sasl_only_cluster" in request.fixturenames:
        brokers.extend(request.getfixturevalue("sasl_only_cluster")[0])
    else:
        brokers.extend(request.getfixturevalue("cluster").nodes)
    yield


# ---------------------------------------------------------------- helpers


def create_topic(admin: AdminClient, name: str, partitions: int = 1, rf: int = 3) -> None:
    fs = admin.create_topics([NewTopic(name, partitions, rf)], operation_timeout=15)
    fs[name].result(timeout=30)


def produce(conf: dict, topic: str, values: list[bytes], timeout: float = 30) -> list:
    """Produces and flushes; returns the delivery errors (None for each success)."""
    reports = []
    p = Producer({**conf, "message.timeout.ms": int(timeout * 1000) - 2000})
    for v in values:
        p.produce(topic, v, on_delivery=lambda err, msg: reports.append(err))
    p.flush(timeout)
    assert len(reports) == len(values), f"only {len(reports)} of {len(values)} delivery reports"
    return reports


def consume(conf: dict, topic: str, group: str, want: int, timeout: float = 30):
    """Subscribes and polls until `want` records arrive; returns (values, errors)."""
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 10000})
    values, errors = [], []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(values) < want:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                errors.append(m.error())
                if m.error().code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    break
                continue
            values.append(m.value())
    finally:
        c.close()
    return values, errors


def authenticates(conf: dict) -> tuple[bool, list]:
    """Whether a Metadata request through an admin client with this config succeeds; the errors
    its error callback saw."""
    errors: list = []
    admin = AdminClient({**conf, "error_cb": errors.append})
    try:
        admin.list_topics(timeout=6)
        return True, errors
    except KafkaException as e:
        admin.poll(1.0)  # serves the error callbacks of the failed connection attempts
        errors.append(e.args[0])
        return False, errors


def is_auth_error(err) -> bool:
    return err.code() == KafkaError._AUTHENTICATION or "SASL authentication error" in err.str()


def rejected_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if "connection rejected: SASL authentication failed" in ln]


def assert_closed(conn: rk.Conn, timeout: float = 10.0) -> None:
    """The broker closed the connection: recv returns b"" (or the socket was reset)."""
    conn.sock.settimeout(timeout)
    try:
        data = conn.sock.recv(65536)
    except ConnectionResetError:
        return
    except socket.timeout:
        raise AssertionError(f"the connection is still open after {timeout}s") from None
    assert data == b"", f"expected the connection to be closed, got {data[:64]!r}"


def scram_conf(cluster: Cluster, mechanism: str, node: int | None, password: str = SCRAM_PASSWORD):
    return cluster.conf("alice", password=password, mechanism=mechanism, node=node)


# ---------------------------------------------------------------- 1. SASL_SSL PLAIN


def test_sasl_ssl_plain(cluster):
    topic = f"plain-{uuid.uuid4().hex[:8]}"
    admin = cluster.admin()
    create_topic(admin, topic)
    values = [f"plain-{i}".encode() for i in range(5)]
    assert produce(cluster.conf("admin"), topic, values) == [None] * 5
    got, errors = consume(cluster.conf("admin"), topic, f"g-{topic}", 5)
    assert sorted(got) == sorted(values), errors

    before = len(rejected_lines(cluster.logs()))
    ok, errors = authenticates(cluster.conf("admin", password=WRONG_PASSWORDS[0], node=0))
    assert not ok, "a wrong PLAIN password was accepted"
    assert any(is_auth_error(e) for e in errors), f"no SASL authentication error: {errors}"
    assert any("SASL authentication error" in e.str() for e in errors), errors

    def new_rejections():
        lines = rejected_lines(cluster.nodes[0].log_text())
        return lines if len(rejected_lines(cluster.logs())) > before else None
    lines = wait_until("the broker's rejection line", new_rejections, timeout=10)
    assert any(re.search(r"peer=127\.0\.0\.1:\d+", ln) and "listener=CLIENT" in ln
               for ln in lines), lines
    for pw in WRONG_PASSWORDS:
        assert pw not in cluster.logs(), "a client's password was written to the broker log"
    for ln in lines:
        assert not any(p in ln for p in USERS.values()), ln


# ---------------------------------------------------------------- 2. SCRAM


@pytest.fixture(scope="module")
def scram_users(cluster):
    admin = cluster.admin(node=0)
    upserts = [UserScramCredentialUpsertion(
        "alice", ScramCredentialInfo(mech, iters), SCRAM_PASSWORD.encode())
        for mech, iters in ((ScramMechanism.SCRAM_SHA_256, 4096),
                            (ScramMechanism.SCRAM_SHA_512, 8192))]
    for user, f in admin.alter_user_scram_credentials(upserts).items():
        f.result(timeout=30)
    return {"SCRAM-SHA-256": 4096, "SCRAM-SHA-512": 8192}


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256"])
def test_scram_on_every_node(cluster, scram_users, mechanism):
    for node in range(3):
        ok, errors = wait_until(
            f"alice ({mechanism}) to authenticate on node {node + 1}",
            lambda: (r := authenticates(scram_conf(cluster, mechanism, node)))[0] and r, timeout=30)
        assert ok
    ok, errors = authenticates(scram_conf(cluster, mechanism, 1, password=WRONG_PASSWORDS[1]))
    assert not ok, f"a wrong {mechanism} password was accepted"
    assert any(is_auth_error(e) for e in errors), errors


def test_scram_describe_and_unacceptable_iterations(cluster, scram_users):
    admin = cluster.admin()
    desc = admin.describe_user_scram_credentials(["alice"])["alice"].result(timeout=30)
    got = {info.mechanism: info.iterations for info in desc.scram_credential_infos}
    assert got == {ScramMechanism.SCRAM_SHA_256: 4096, ScramMechanism.SCRAM_SHA_512: 8192}, got

    bad = UserScramCredentialUpsertion(
        "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 1024), b"carol-pw")
    with pytest.raises(KafkaException) as exc:
        admin.alter_user_scram_credentials([bad])["carol"].result(timeout=30)
    assert exc.value.args[0].code() == KafkaError.UNACCEPTABLE_CREDENTIAL, exc.value
    # Nothing was stored for carol.
    with pytest.raises(KafkaException) as exc:
        admin.describe_user_scram_credentials(["carol"])["carol"].result(timeout=30)
    assert exc.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND, exc.value


def test_scram_survives_restart_of_every_node(cluster, scram_users):
    cluster.stop_all()
    cluster.start_all()
    wait_until("three brokers after the restart",
               lambda: len(cluster.admin().list_topics(timeout=5).brokers) == 3, timeout=60)
    for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
        for node in range(3):
            wait_until(f"alice ({mechanism}) to authenticate on node {node + 1} after the restart",
                       lambda: authenticates(scram_conf(cluster, mechanism, node))[0], timeout=30)


# ---------------------------------------------------------------- 3. ACLs


def acl(resource_type, name, operation, permission=AclPermissionType.ALLOW,
        pattern=ResourcePatternType.LITERAL, principal="User:bob") -> AclBinding:
    return AclBinding(resource_type, name, pattern, principal, "*", operation, permission)


def bob_filter(permission=AclPermissionType.ANY) -> AclBindingFilter:
    return AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:bob", None,
                            AclOperation.ANY, permission)


def wait_acls_everywhere(cluster: Cluster, expected: set) -> None:
    """Every node's own view of bob's ACLs equals `expected` (ACLs travel in the metadata log)."""
    for node in range(3):
        admin = cluster.admin(node=node)

        def same():
            got = admin.describe_acls(bob_filter()).result(timeout=10)
            return set(got) == expected
        wait_until(f"bob's ACLs on node {node + 1}", same, timeout=30)


def test_acls(cluster):
    admin = cluster.admin()
    for t in ("temperature", "pressure"):
        if t not in admin.list_topics(timeout=10).topics:
            create_topic(admin, t)
    values = [f"{20 + i}.5C".encode() for i in range(5)]
    # Super user: no ACL at all is needed to produce.
    assert produce(cluster.conf("admin"), "temperature", values) == [None] * 5
    assert produce(cluster.conf("admin"), "pressure", [b"1013hPa"]) == [None]

    allows = [acl(ResourceType.TOPIC, "temperature", AclOperation.READ),
              acl(ResourceType.GROUP, "app", AclOperation.READ)]
    for f in admin.create_acls(allows).values():
        f.result(timeout=30)
    wait_acls_everywhere(cluster, set(allows))

    bob = cluster.conf("bob")
    got, errors = consume(bob, "temperature", "app", 5)
    assert sorted(got) == sorted(values), f"bob could not consume: {errors}"

    # Not allowed to write.
    reports = produce({**bob, "retries": 0}, "temperature", [b"hot"], timeout=20)
    assert reports[0] is not None and reports[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, \
        reports

    bob_admin = cluster.admin("bob")
    fs = bob_admin.create_topics([NewTopic("bob-topic", 1, 1)], operation_timeout=10)
    with pytest.raises(KafkaException) as exc:
        fs["bob-topic"].result(timeout=30)
    assert exc.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, exc.value
    for victim in ("temperature", "pressure"):
        fs = bob_admin.delete_topics([victim], operation_timeout=10)
        with pytest.raises(KafkaException) as exc:
            fs[victim].result(timeout=30)
        assert exc.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (victim, exc.value)
    assert {"temperature", "pressure"} <= set(admin.list_topics(timeout=10).topics)

    # Metadata shows bob only what he may describe.
    seen = set(bob_admin.list_topics(timeout=10).topics)
    assert "temperature" in seen and "pressure" not in seen, seen
    assert "bob-topic" not in admin.list_topics(timeout=10).topics

    # Only a principal with ALTER (DESCRIBE) on the cluster manages (lists) ACLs.
    with pytest.raises(KafkaException) as exc:
        list(bob_admin.create_acls([acl(ResourceType.TOPIC, "pressure", AclOperation.READ)])
             .values())[0].result(timeout=30)
    assert exc.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED, exc.value
    # DescribeAcls: checked on the wire (librdkafka 2.16 hands an empty list to the application
    # when the response carries a top-level error).
    with rk.Conn(cluster.ports[0]["SASLPLAIN"]) as conn:
        assert rk.sasl_plain_login(conn, "bob", USERS["bob"])["error"] == 0
        r = rk.describe_acls_v1(conn)
        assert r["error"] == KafkaError.CLUSTER_AUTHORIZATION_FAILED and not r["resources"], r

    # DENY wins over ALLOW.
    deny = acl(ResourceType.TOPIC, "temp", AclOperation.READ, AclPermissionType.DENY,
               ResourcePatternType.PREFIXED)
    for f in admin.create_acls([deny]).values():
        f.result(timeout=30)
    wait_acls_everywhere(cluster, set(allows) | {deny})
    got, errors = consume(bob, "temperature", "app", 1, timeout=20)
    assert not got, "bob read despite DENY Read on PREFIXED temp"
    assert any(e.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED for e in errors), errors

    # describe/delete round trip.
    listed = admin.describe_acls(bob_filter()).result(timeout=30)
    assert set(listed) == set(allows) | {deny}, listed
    only_deny = bob_filter(AclPermissionType.DENY)
    deleted = admin.delete_acls([only_deny])[only_deny].result(timeout=30)
    assert deleted == [deny], deleted
    wait_acls_everywhere(cluster, set(allows))
    # With the DENY gone, bob reads again (a new group member starting from the beginning).
    for f in admin.create_acls([acl(ResourceType.GROUP, "app2", AclOperation.READ)]).values():
        f.result(timeout=30)
    wait_acls_everywhere(cluster, set(allows) | {acl(ResourceType.GROUP, "app2", AclOperation.READ)})
    got, errors = consume(bob, "temperature", "app2", 5)
    assert sorted(got) == sorted(values), errors


def grant(cluster: Cluster, *bindings: AclBinding) -> None:
    """Creates the ACLs through node 1 and waits until every node decides with them."""
    admin = cluster.admin()
    for f in admin.create_acls(list(bindings)).values():
        f.result(timeout=30)
    principals = {b.principal for b in bindings}
    for node in range(3):
        node_admin = cluster.admin(node=node)
        for principal in principals:
            flt = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal,
                                   None, AclOperation.ANY, AclPermissionType.ANY)
            wanted = {b for b in bindings if b.principal == principal}
            wait_until(f"{principal}'s ACLs on node {node + 1}",
                       lambda: wanted <= set(node_admin.describe_acls(flt).result(timeout=10)),
                       timeout=30)


def denial_lines(text: str, principal: str) -> list[str]:
    return [ln for ln in text.splitlines()
            if "authorization denied" in ln and f"principal={principal} " in ln + " "]


def raw_login(cluster: Cluster, user: str) -> rk.Conn:
    """A raw connection to node 1's SASL_PLAINTEXT listener, logged in with PLAIN as `user`."""
    conn = rk.Conn(cluster.ports[0]["SASLPLAIN"])
    assert rk.sasl_plain_login(conn, user, USERS[user])["error"] == 0
    return conn


def test_idempotent_produce_authorization(cluster):
    """Kafka 4: WRITE on a topic is enough for an idempotent producer (IDEMPOTENT_WRITE on the cluster
    is the other way), and the failed cluster check on the way is not a logged denial. Without
    either, InitProducerId and an idempotent Produce get CLUSTER_AUTHORIZATION_FAILED."""
    topic = f"idem-{uuid.uuid4().hex[:8]}"
    create_topic(cluster.admin(), topic)
    grant(cluster, acl(ResourceType.TOPIC, topic, AclOperation.WRITE, principal="User:writer"))

    conf = {**cluster.conf("writer"), "enable.idempotence": True}
    p = Producer(conf)
    reports = []
    for i in range(5):  # one Produce request each
        p.produce(topic, b"idem-%d" % i, on_delivery=lambda err, msg: reports.append(err))
        assert p.flush(30) == 0
    assert reports == [None] * 5, reports
    got, errors = consume(cluster.conf("admin"), topic, f"g-{topic}", 5)
    assert sorted(got) == [b"idem-%d" % i for i in range(5)], errors
    assert denial_lines(cluster.logs(), "User:writer") == [], \
        "an allowed idempotent producer left denial lines"

    with raw_login(cluster, "nobody") as conn:
        err, pid, _ = rk.init_producer_id(conn)
        assert (err, pid) == (KafkaError.CLUSTER_AUTHORIZATION_FAILED, -1)
        batch = rk.record_batch([b"x"], producer_id=1000, producer_epoch=0, base_sequence=0)
        err, _ = rk.produce_v3(conn, topic, 0, batch)
        assert err == KafkaError.CLUSTER_AUTHORIZATION_FAILED, err
    # One line per refused request, in the log of the node that decided it (InitProducerId is
    # forwarded to the active controller).
    wait_until("nobody's refusals in the logs",
               lambda: len(denial_lines(cluster.logs(), "User:nobody")) >= 2)
    time.sleep(1)
    lines = denial_lines(cluster.logs(), "User:nobody")
    assert len(lines) == 2 and all("operation=IDEMPOTENT_WRITE" in ln for ln in lines), lines


def test_transactional_id_needs_write(cluster):
    """InitProducerId with a transactional id the principal may not WRITE:
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED, with the refusal logged for that resource."""
    tid = f"txn-{uuid.uuid4().hex[:8]}"
    with raw_login(cluster, "nobody") as conn:
        err, pid, _ = rk.init_producer_id(conn, transactional_id=tid)
    assert (err, pid) == (KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1)
    wait_until("the transactional id refusal in the log",
               lambda: any("resource_type=TRANSACTIONAL_ID" in ln and f"resource={tid}" in ln
                           for ln in denial_lines(cluster.logs(), "User:nobody")))


def test_list_groups_shows_only_describable_groups(cluster):
    """ListGroups shows a principal only the groups it may DESCRIBE."""
    topic = f"lg-{uuid.uuid4().hex[:8]}"
    create_topic(cluster.admin(), topic)
    groups = [f"lg-visible-{topic}", f"lg-hidden-{topic}"]
    grant(cluster, acl(ResourceType.GROUP, "lg-visible-", AclOperation.DESCRIBE,
                       pattern=ResourcePatternType.PREFIXED, principal="User:viewer"))
    admins = {user: cluster.admin(user) for user in ("admin", "viewer")}
    # Two live groups: one consumer each, kept in its group while the groups are listed.
    consumers = [Consumer({**cluster.conf("admin"), "group.id": g, "session.timeout.ms": 10000})
                 for g in groups]
    try:
        for c in consumers:
            c.subscribe([topic])

        def listed(user):
            for c in consumers:
                c.poll(0.2)
            result = admins[user].list_consumer_groups().result(timeout=30)
            return {g.group_id for g in result.valid}
        everything = wait_until("both groups listed for the admin",
                                lambda: (ids := listed("admin")) >= set(groups) and ids)
        seen = listed("viewer")
    finally:
        for c in consumers:
            c.close()
    assert groups[0] in seen and groups[1] not in seen, seen
    assert seen <= everything and all(g.startswith("lg-visible-") for g in seen), seen


def test_auto_topic_creation_needs_create(cluster):
    """Metadata auto-creates a missing topic only for a principal with CREATE (on the cluster or the
    topic). Without it Kafka answers TOPIC_AUTHORIZATION_FAILED (KafkaApis' unauthorizedForCreateTopics)
    and creates nothing."""
    prefix = f"auto-{uuid.uuid4().hex[:8]}-"
    grant(cluster, acl(ResourceType.TOPIC, prefix, AclOperation.DESCRIBE,
                       pattern=ResourcePatternType.PREFIXED, principal="User:creator"))
    admin = cluster.admin()
    with raw_login(cluster, "creator") as conn:
        md = rk.metadata_v1(conn, [prefix + "a"])  # v1: auto-creation allowed
        assert md["topics"][prefix + "a"][0] == KafkaError.TOPIC_AUTHORIZATION_FAILED, md
    time.sleep(1)
    assert prefix + "a" not in admin.list_topics(timeout=10).topics

    grant(cluster, acl(ResourceType.TOPIC, prefix, AclOperation.CREATE,
                       pattern=ResourcePatternType.PREFIXED, principal="User:creator"))
    with raw_login(cluster, "creator") as conn:
        md = rk.metadata_v1(conn, [prefix + "b"])
        assert md["topics"][prefix + "b"][0] in (0, KafkaError.LEADER_NOT_AVAILABLE), md
    wait_until("the auto-created topic", lambda: prefix + "b" in admin.list_topics(timeout=5).topics)


def test_describe_cluster_without_privileges(cluster):
    """DescribeCluster is never refused (Kafka's AuthHelper.computeDescribeClusterResponse): a
    principal without cluster DESCRIBE gets the brokers and no authorized operations."""
    nobody, admin = cluster.admin("nobody"), cluster.admin()  # alive until their answers arrive
    result = nobody.describe_cluster(include_authorized_operations=True).result(timeout=30)
    assert len(result.nodes) == 3 and result.cluster_id == CLUSTER_ID, result
    assert not result.authorized_operations, result.authorized_operations
    admin_ops = admin.describe_cluster(
        include_authorized_operations=True).result(timeout=30).authorized_operations
    assert AclOperation.DESCRIBE in admin_ops and AclOperation.ALTER in admin_ops, admin_ops


def test_ssl_principal_mapping_rules(cluster):
    """mTLS on the INTERNAL listener: the client certificate CN=app-mtls,O=Kavka maps to
    User:app-mtls by ssl.principal.mapping.rules, and an ACL for that principal lets it produce."""
    topic = f"mtls-{uuid.uuid4().hex[:8]}"
    create_topic(cluster.admin(), topic)
    conf = {
        "bootstrap.servers": f"127.0.0.1:{cluster.ports[0]['INTERNAL']}",
        "security.protocol": "SSL",
        "ssl.ca.location": str(cluster.certs / "ca.pem"),
        "ssl.certificate.location": str(cluster.certs / f"{MTLS_CLIENT}.pem"),
        "ssl.key.location": str(cluster.certs / f"{MTLS_CLIENT}-key.pem"),
        "socket.timeout.ms": 10000,
    }
    reports = produce({**conf, "retries": 0}, topic, [b"refused"], timeout=20)
    assert reports[0] is not None and \
        reports[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, reports
    grant(cluster, acl(ResourceType.TOPIC, topic, AclOperation.WRITE,
                       principal=f"User:{MTLS_CLIENT}"))
    assert produce(conf, topic, [b"mapped"]) == [None]
    assert any(f"principal=User:{MTLS_CLIENT} " in ln and f"resource={topic}" in ln
               for ln in cluster.logs().splitlines()
               if "authorization denied" in ln), "the refusal did not name the mapped principal"


def test_acls_survive_restart_of_every_node(cluster):
    """ACLs live in the replicated metadata log: after every node restarts, each node still has them
    and still decides with them."""
    topic = f"restart-acl-{uuid.uuid4().hex[:8]}"
    create_topic(cluster.admin(), topic)
    binding = acl(ResourceType.TOPIC, topic, AclOperation.WRITE, principal="User:writer")
    grant(cluster, binding)
    cluster.stop_all()
    cluster.start_all()
    wait_until("three brokers after the restart",
               lambda: len(cluster.admin().list_topics(timeout=5).brokers) == 3, timeout=60)
    flt = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, None, None,
                           AclOperation.ANY, AclPermissionType.ANY)
    for node in range(3):
        node_admin = cluster.admin(node=node)
        wait_until(f"the ACL on node {node + 1} after the restart",
                   lambda: node_admin.describe_acls(flt).result(timeout=10) == [binding])
    assert produce(cluster.conf("writer"), topic, [b"after-restart"]) == [None]
    reports = produce({**cluster.conf("nobody"), "retries": 0}, topic, [b"no"], timeout=20)
    assert reports[0] is not None and \
        reports[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, reports


# ---------------------------------------------------------------- 4. forged replica id


def test_forged_replica_id_on_plaintext_listener(cluster):
    topic = f"forged-{uuid.uuid4().hex[:8]}"
    admin = cluster.admin()
    create_topic(admin, topic)
    assert produce(cluster.conf("admin"), topic, [b"secret-1", b"secret-2"]) == [None, None]
    open_port = cluster.ports[0]["OPEN"]
    with rk.Conn(open_port) as conn:
        md = rk.metadata_v1(conn)
        assert md["brokers"], md
        assert md["topics"] == {}, f"User:ANONYMOUS without ACLs sees topics: {md['topics']}"
        # A consumer's fetch (replica_id -1) of a topic ANONYMOUS may not read: refused per
        # partition (this also checks the hand-built v4/v11 frames against the broker).
        for v in (4, 11):
            r = rk.fetch_with_replica_id(conn, topic, 0, 0, replica_id=-1, version=v)
            assert [(p["topic"], p["partition"], p["error"]) for p in r["partitions"]] \
                == [(topic, 0, 29)] and not r["partitions"][0]["records"], (v, r)
        answers = {v: rk.fetch_with_replica_id(conn, topic, 0, 0, replica_id=1, version=v)
                   for v in (4, 11)}
    # No data, whatever the form of the refusal.
    for r in answers.values():
        assert all(not p["records"] for p in r["partitions"]), answers
    # Kafka (KafkaApis.handleFetchRequest): a fetch from a follower without ClusterAction answers
    # every requested partition TOPIC_AUTHORIZATION_FAILED (29) and, from v7, top-level NONE.
    got = {v: (r["error"], [(p["topic"], p["partition"], p["error"]) for p in r["partitions"]])
           for v, r in answers.items()}
    assert got == {4: (None, [(topic, 0, 29)]), 11: (0, [(topic, 0, 29)])}, \
        f"Fetch with a forged replica id, by version: {got}"


# ---------------------------------------------------------------- 5. before authentication


def test_failed_tls_handshake_closes_after_the_delay(cluster):
    """A peer that fails the TLS handshake of node 1's INTERNAL listener (here: it does not speak TLS)
    gets the alert at once, but its connection closes only after
    connection.failed.authentication.delay.ms, as after a failed SASL login."""
    with socket.create_connection(("127.0.0.1", cluster.ports[0]["INTERNAL"]), timeout=10) as s:
        start = time.monotonic()
        s.sendall(rk.request_frame(18, 0, 1, b""))  # ApiVersions in the clear
        received = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        elapsed = time.monotonic() - start
    assert received[:1] == b"\x15", f"expected a TLS alert record, got {received[:16]!r}"
    assert elapsed >= (FAILED_DELAY_MS / 1000) * 0.8, f"closed after {elapsed:.3f}s"
    assert "connection rejected: TLS handshake failed" in cluster.nodes[0].log_text()


def test_pre_authentication_limits(cluster):
    port = cluster.ports[0]["SASLPLAIN"]
    with rk.Conn(port) as conn:
        err, apis = rk.api_versions_v0(conn)
        assert err == 0 and 17 in apis and 36 in apis, apis
        conn.send_raw(rk.request_frame(3, 1, 99, struct.pack(">i", -1)))
        assert_closed(conn)

    # The pre-authentication frame limit (sasl.server.max.receive.size), with
    # the one request that is served before authentication, so that only the size decides: an
    # ApiVersions frame just under the limit (zero padding after the empty v0 body) is answered, one
    # byte over it closes the connection.
    def padded_api_versions(size: int) -> bytes:
        payload = rk.request_frame(18, 0, 1, b"")[4:]
        return struct.pack(">i", size) + payload + b"\0" * (size - len(payload))

    with rk.Conn(port) as conn:
        conn.send_raw(padded_api_versions(PRE_AUTH_FRAME_LIMIT - 1024))
        body = conn.recv_frame()
        assert struct.unpack(">ih", body[:6]) == (1, 0), body[:16]
    with rk.Conn(port) as conn:
        try:
            conn.send_raw(padded_api_versions(PRE_AUTH_FRAME_LIMIT + 1))
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert_closed(conn)

    with rk.Conn(port) as conn:
        err, mechanisms = rk.sasl_handshake_v1(conn, "GSSAPI")
        assert err == 33, err
        assert mechanisms == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], mechanisms

    with rk.Conn(port) as conn:
        r = rk.sasl_plain_login(conn, "alice", "alice-secret")
        assert r["error"] == 0, r
        md = rk.metadata_v1(conn)
        assert any(b[0] == 1 for b in md["brokers"]), md

    with rk.Conn(port) as conn:
        err, _ = rk.sasl_handshake_v1(conn, "PLAIN")
        assert err == 0
        start = time.monotonic()
        r = rk.sasl_authenticate_v1(conn, b"\0alice\0" + WRONG_PASSWORDS[0].encode())
        elapsed = time.monotonic() - start
        assert r["error"] == 58, r
        assert elapsed >= 0.4, f"the failure came after {elapsed:.3f}s, not after the delay"
        assert_closed(conn)
    assert WRONG_PASSWORDS[0] not in cluster.logs()


# ---------------------------------------------------------------- 6. re-authentication


@pytest.fixture(scope="module")
def reauth_broker(kavka_bin, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reauth")
    ports = {"SASLPLAIN": free_port(), "INTERNAL": free_port(), "CONTROLLER": free_port()}
    data = workdir / "data"
    data.mkdir()
    (data / "meta.properties").write_text(f"version=1\ncluster.id={CLUSTER_ID}\nnode.id=1\n")
    conf = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "log.dirs": str(data),
        "listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in ports.items()),
        "advertised.listeners": f"SASLPLAIN://127.0.0.1:{ports['SASLPLAIN']},"
                                f"INTERNAL://127.0.0.1:{ports['INTERNAL']}",
        "listener.security.protocol.map":
            "SASLPLAIN:SASL_PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL",
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.voters": f"1@127.0.0.1:{ports['CONTROLLER']}",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.saslplain.plain.sasl.jaas.config": JAAS,
        "connections.max.reauth.ms": "3000",
        "offsets.topic.replication.factor": "1",
    }
    b = Broker(workdir, overrides=conf, set_listener_and_dirs=False, port=ports["SASLPLAIN"],
               name="reauth", binary=kavka_bin)
    try:
        b.start()
        yield b
    finally:
        b.stop()


def test_reauthentication(reauth_broker):
    b = reauth_broker
    conf = {"bootstrap.servers": b.bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-secret"}
    topic = f"reauth-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)

    # librdkafka re-authenticates by itself (KIP-368): one producer, one message every 0.5 s for
    # more than two session lifetimes, all delivered, and no connection ended by expiry.
    errors, reports = [], []
    p = Producer({**conf, "error_cb": errors.append, "linger.ms": 0})
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < 7.5:
        p.produce(topic, f"m{i}".encode(), on_delivery=lambda err, msg: reports.append(err))
        assert p.flush(10) == 0
        i += 1
        time.sleep(0.5)
    assert reports == [None] * i, reports
    assert not errors, errors
    assert "expired without re-authentication" not in b.log_text(), b.log_tail(4000)
    got, cerrors = consume(conf, topic, "reauth-g", i)
    assert len(got) == i, cerrors

    with rk.Conn(b.port) as conn:
        r = rk.sasl_plain_login(conn, "alice", "alice-secret")
        assert r["error"] == 0 and r["session_lifetime_ms"] == 3000, r
        rk.metadata_v1(conn)
        time.sleep(3.5)
        conn.send_raw(rk.request_frame(3, 1, 50, struct.pack(">i", -1)))
        assert_closed(conn)
    assert "expired without re-authentication" in b.log_text()

    with rk.Conn(b.port) as conn:
        r = rk.sasl_plain_login(conn, "alice", "alice-secret")
        assert r["error"] == 0 and r["session_lifetime_ms"] == 3000, r
        time.sleep(2.0)
        r = rk.sasl_plain_login(conn, "alice", "alice-secret")
        assert r["error"] == 0 and r["session_lifetime_ms"] == 3000, r
        time.sleep(2.0)  # 4 s after the first authentication, 2 s after the second
        md = rk.metadata_v1(conn)
        assert md["brokers"], md

    with rk.Conn(b.port) as conn:
        assert rk.sasl_plain_login(conn, "alice", "alice-secret")["error"] == 0
        r = rk.sasl_plain_login(conn, "bob", "bob-secret")
        assert r["error"] == 58, r
        assert_closed(conn)


# ---------------------------------------------------------------- SASL between the nodes

NODE_JAAS = ('{module} required username="node" password="{password}" '
             'user_node="node-secret" user_admin="admin-secret";')
LOGIN_MODULES = {"PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
                 "SCRAM": "org.apache.kafka.common.security.scram.ScramLoginModule"}


def node_jaas(mechanism: str, password: str) -> str:
    return NODE_JAAS.format(module=LOGIN_MODULES[mechanism.split("-")[0]], password=password)


@pytest.fixture(params=["PLAIN", "SCRAM"])
def sasl_only_cluster(request, kavka_bin, tmp_path):
    """Three combined nodes with SASL_PLAINTEXT on every listener. The nodes log in to each other with
    PLAIN, or with SCRAM-SHA-512 (inter-broker) and SCRAM-SHA-256 (controllers) from credentials of
    `kavka storage format --add-scram`. Node 3 logs in with a wrong password until the test fixes it."""
    scram = request.param == "SCRAM"
    inter_broker, controller = ("SCRAM-SHA-512", "SCRAM-SHA-256") if scram else ("PLAIN", "PLAIN")
    ports = [{"CLIENT": free_port(), "INTERNAL": free_port(), "CONTROLLER": free_port()}
             for _ in range(3)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{p['CONTROLLER']}" for i, p in enumerate(ports))
    cluster_id = subprocess.run([str(kavka_bin), "storage", "random-uuid"], capture_output=True,
                                text=True, check=True).stdout.strip()
    nodes = []
    for i, p in enumerate(ports):
        node_id = i + 1
        data = tmp_path / f"node{node_id}" / "data"
        password = "node-secret" if node_id != 3 else "not-the-password"
        conf = {
            "process.roles": "broker,controller",
            "node.id": str(node_id),
            "log.dirs": str(data),
            "listeners": ",".join(f"{n}://127.0.0.1:{port}" for n, port in p.items()),
            "advertised.listeners": f"CLIENT://127.0.0.1:{p['CLIENT']},"
                                    f"INTERNAL://127.0.0.1:{p['INTERNAL']}",
            "listener.security.protocol.map":
                "CLIENT:SASL_PLAINTEXT,INTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name": "INTERNAL",
            "controller.listener.names": "CONTROLLER",
            "controller.quorum.voters": voters,
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol": inter_broker,
            "sasl.mechanism.controller.protocol": controller,
            # PLAIN users for clients and PLAIN logins; the node's own login for each mechanism.
            "sasl.jaas.config": node_jaas("PLAIN", password),
            f"listener.name.internal.{inter_broker.lower()}.sasl.jaas.config":
                node_jaas(inter_broker, password),
            f"listener.name.controller.{controller.lower()}.sasl.jaas.config":
                node_jaas(controller, password),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:node;User:admin",
            "default.replication.factor": "3",
            "min.insync.replicas": "2",
            "offsets.topic.replication.factor": "3",
        }
        fmt = [str(kavka_bin), "storage", "format", "-t", cluster_id]
        for key, value in conf.items():
            fmt += ["--override", f"{key}={value}"]
        if scram:
            fmt += ["--add-scram", "SCRAM-SHA-512=[name=node,password=node-secret]",
                    "--add-scram", "SCRAM-SHA-256=[name=node,password=node-secret,iterations=8192]"]
        r = subprocess.run(fmt, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        nodes.append(Broker(tmp_path / f"node{node_id}", overrides=conf,
                            set_listener_and_dirs=False, port=p["CLIENT"],
                            name=f"sasl-node{node_id}", binary=kavka_bin))
    try:
        yield nodes, (inter_broker, controller)
    finally:
        for n in nodes:
            n.stop()


def test_sasl_between_nodes(sasl_only_cluster):
    nodes, (inter_broker, controller) = sasl_only_cluster
    nodes[0].start(timeout=90)
    nodes[1].start(timeout=90)

    def conf(user, password, mechanism="PLAIN", node=None):
        servers = [n.bootstrap for n in nodes[:2]] if node is None else [nodes[node].bootstrap]
        return {"bootstrap.servers": ",".join(servers), "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password,
                "socket.timeout.ms": 10000}

    admin = AdminClient(conf("admin", "admin-secret"))
    wait_until("two brokers registered over SASL",
               lambda: len(admin.list_topics(timeout=5).brokers) == 2, timeout=60)
    # Node 3 cannot log in to the others: it never joins, and they log why.
    nodes[2].start(timeout=90)
    wait_until("node 3 refused by the others",
               lambda: "connection rejected: SASL authentication failed"
               in nodes[0].log_text() + nodes[1].log_text(), timeout=30)
    assert "not-the-password" not in nodes[0].log_text() + nodes[1].log_text()
    time.sleep(3)
    assert len(admin.list_topics(timeout=5).brokers) == 2

    # With the right password node 3 joins, and an RF3 topic replicates over the SASL listeners.
    nodes[2].stop()
    for key in ("sasl.jaas.config",
                f"listener.name.internal.{inter_broker.lower()}.sasl.jaas.config",
                f"listener.name.controller.{controller.lower()}.sasl.jaas.config"):
        mechanism = key.split(".")[3] if key.startswith("listener.") else "PLAIN"
        nodes[2].overrides[key] = node_jaas(mechanism.upper(), "node-secret")
    nodes[2].start(timeout=90)
    wait_until("three brokers", lambda: len(admin.list_topics(timeout=5).brokers) == 3, timeout=60)
    create_topic(admin, "sasl-rf3", partitions=3, rf=3)
    errors = produce({**conf("admin", "admin-secret"), "acks": "all"}, "sasl-rf3",
                     [b"r%d" % i for i in range(30)])
    assert errors == [None] * 30, errors

    def full_isr():
        parts = admin.list_topics("sasl-rf3", timeout=5).topics["sasl-rf3"].partitions.values()
        return all(len(p.isrs) == 3 for p in parts) and len(parts) == 3
    wait_until("a full ISR on every partition", full_isr, timeout=30)

    # A SCRAM user created through the admin API reads with an ACL, through node 3 alone.
    fs = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"carol-secret")])
    for f in fs.values():
        f.result(timeout=30)
    acls = [AclBinding(ResourceType.TOPIC, "sasl-rf3", ResourcePatternType.LITERAL, "User:carol",
                       "*", AclOperation.READ, AclPermissionType.ALLOW),
            AclBinding(ResourceType.GROUP, "carol-g", ResourcePatternType.LITERAL, "User:carol",
                       "*", AclOperation.READ, AclPermissionType.ALLOW)]
    for f in admin.create_acls(acls).values():
        f.result(timeout=30)
    carol = conf("carol", "carol-secret", "SCRAM-SHA-512", node=2)
    got = wait_until("carol reads the topic through node 3",
                     lambda: len(consume(carol, "sasl-rf3", "carol-g", 30)[0]) == 30, timeout=60)
    assert got
    if inter_broker.startswith("SCRAM"):
        # The --add-scram users are in the log now (DescribeUserScramCredentials lists them).
        described = admin.describe_user_scram_credentials(["node"])["node"].result(timeout=30)
        mechanisms = {i.mechanism for i in described.scram_credential_infos}
        assert mechanisms == {ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512}


def test_kafka_python_plain_across_session_expiry(reauth_broker):
    """kafka-python (PLAIN over SASL_PLAINTEXT) produces and consumes. It does not re-authenticate
    (KIP-368), so once connections.max.reauth.ms (3 s) has passed the broker closes its connection at
    the next request; the client reconnects, logs in again, and no record is lost."""
    kafka = pytest.importorskip("kafka", reason="kafka-python is not installed")
    b = reauth_broker
    sasl = {"bootstrap_servers": b.bootstrap, "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN", "sasl_plain_username": "alice",
            "sasl_plain_password": "alice-secret"}
    topic = f"kafka-python-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": b.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanism": "PLAIN", "sasl.username": "alice",
                         "sasl.password": "alice-secret"})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    producer = kafka.KafkaProducer(**sasl, retries=5, request_timeout_ms=10000)
    try:
        for i in range(3):
            producer.send(topic, b"before-%d" % i).get(timeout=15)
        time.sleep(3.5)
        for i in range(3):
            producer.send(topic, b"after-%d" % i).get(timeout=15)
    finally:
        producer.close()
    consumer = kafka.KafkaConsumer(topic, **sasl, auto_offset_reset="earliest",
                                   consumer_timeout_ms=8000)
    try:
        values = [m.value for m in consumer]
    finally:
        consumer.close()
    assert values == [b"before-%d" % i for i in range(3)] + [b"after-%d" % i for i in range(3)]
    with pytest.raises(kafka.errors.KafkaError):
        kafka.KafkaProducer(**{**sasl, "sasl_plain_password": "wrong"}, max_block_ms=5000)
