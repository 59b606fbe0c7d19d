"""The `kavka broker` command line: --config, --override, key aliases, bad values,
unknown keys, JSON logs, defaults."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest

from kavka_harness import BrokerError, port_accepts
from kclients import ck_admin, ck_produce, ck_producer


def metadata(broker):
    return ck_admin(broker).list_topics(timeout=20)


def test_bad_value_stops_startup_naming_key_and_value(broker_factory):
    b = broker_factory(start=False, **{"num.partitions": "lots"})
    with pytest.raises(BrokerError):
        b.start(timeout=20)
    assert b.exit_codes and b.exit_codes[-1] != 0
    log = b.log_text()
    assert "num.partitions" in log and "lots" in log, log[-2000:]


def test_unknown_key_is_logged_and_ignored(broker_factory, topic):
    b = broker_factory(**{"kavka.test.no.such.key": "1"})
    ck_produce(ck_producer(b), topic, [(None, b"x")])
    assert "kavka.test.no.such.key" in b.log_text(), "unknown key not logged"


def test_config_file_and_override_precedence(broker_factory, tmp_path, topic):
    from kavka_harness import free_port
    port = free_port()
    props = tmp_path / "server.properties"
    props.write_text(
        "# a Kafka-style properties file\n"
        f"listeners=PLAINTEXT://127.0.0.1:{port}\n"
        f"log.dirs={tmp_path / 'from-file-data'}\n"
        "num.partitions=2\n"
        "node.id=0\n")
    b = broker_factory(port=port, set_listener_and_dirs=False,
                       extra_args=["--config", str(props)],
                       **{"num.partitions": "3"})  # --override wins over the file
    ck_produce(ck_producer(b), topic, [(None, b"x")])
    assert len(metadata(b).topics[topic].partitions) == 3
    assert (tmp_path / "from-file-data").is_dir(), "log.dirs from the file not used"


def test_broker_id_and_log_dir_aliases(broker_factory, tmp_path, topic):
    from kavka_harness import free_port
    port = free_port()
    data = tmp_path / "alias-data"
    b = broker_factory(port=port, set_listener_and_dirs=False, **{
        "listeners": f"PLAINTEXT://127.0.0.1:{port}", "log.dir": str(data), "broker.id": "7"})
    ck_produce(ck_producer(b), topic, [(None, b"x")])
    md = metadata(b)
    assert list(md.brokers) == [7]
    assert md.topics[topic].partitions[0].leader == 7
    assert data.is_dir()


def test_advertised_listeners(broker_factory):
    b = broker_factory(**{"advertised.listeners": "PLAINTEXT://localhost:1234"})
    # metadata is fetched through the bootstrap connection; the broker list then names
    # the advertised address, as Kafka does
    md = ck_admin(b).list_topics(timeout=20)
    assert [(x.host, x.port) for x in md.brokers.values()] == [("localhost", 1234)]


def test_json_log_format(broker_factory):
    b = broker_factory(extra_args=["--log-format", "json"])
    time.sleep(0.3)
    lines = [ln for ln in b.log_text().splitlines()
             if ln.strip() and not ln.startswith("=====")]
    assert lines, "no log output"
    for ln in lines:
        json.loads(ln)  # every line is a JSON object


def test_defaults_without_arguments(tmp_path, kavka_bin):
    """`kavka broker` alone: 127.0.0.1:9092 and ./kavka-data (skipped if 9092 is taken)."""
    if port_accepts(9092):
        pytest.skip("port 9092 is in use on this machine")
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 9092))
        except OSError:
            pytest.skip("port 9092 cannot be bound")
    log = open(tmp_path / "stderr.log", "wb")
    proc = subprocess.Popen([str(kavka_bin), "broker"], cwd=tmp_path, stdout=log, stderr=log,
                            env={**os.environ, "NO_COLOR": "1"})
    try:
        deadline = time.monotonic() + 30
        while not port_accepts(9092) and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "stderr.log").read_text()
            time.sleep(0.05)
        assert port_accepts(9092)
        assert (tmp_path / "kavka-data").is_dir()
        proc.terminate()
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
