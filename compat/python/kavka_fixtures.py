"""Fixtures shared by the compatibility suites (compat/python, compat/kcat): a fresh Kavka
broker per test. Each suite's conftest.py star-imports this module.

- `broker`: one node on a free loopback port in a temporary directory, stopped
  (SIGTERM) after the test.
- `broker_factory(**overrides)`: more nodes, or nodes with Kafka config overrides,
  e.g. `broker_factory(**{"message.max.bytes": "10000"})`.
- `topic`: a unique topic name for the test.
When a test fails, the stderr log of every broker it started is attached to the report.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from pathlib import Path

import pytest

from kavka_harness import Broker, kavka_binary  # noqa: E402

# kafka-python logs every reconnect at WARNING/ERROR; keep the failure output readable.
logging.getLogger("kafka").setLevel(logging.CRITICAL)

_BROKERS_ATTR = "_kavka_brokers"


@pytest.fixture(scope="session")
def kavka_bin() -> Path:
    path = kavka_binary()
    if not path.exists():
        pytest.fail(f"broker binary {path} not found: run `cargo build --release` or set KAVKA_BIN",
                    pytrace=False)
    return path


@pytest.fixture
def broker_factory(request, tmp_path, kavka_bin):
    started: list[Broker] = []
    setattr(request.node, _BROKERS_ATTR, started)

    def make(port: int | None = None, name: str | None = None, start: bool = True,
             extra_args: list[str] | None = None, set_listener_and_dirs: bool = True,
             **overrides: str) -> Broker:
        # Keyword arguments use Kafka's dotted keys via **{"a.b": "v"}; underscores are
        # accepted too for convenience (message_max_bytes -> message.max.bytes).
        conf = {k.replace("_", "."): str(v) for k, v in overrides.items()}
        n = len(started)
        b = Broker(tmp_path / f"broker{n}", overrides=conf, port=port,
                   name=name or f"broker{n}", binary=kavka_bin, extra_args=extra_args,
                   set_listener_and_dirs=set_listener_and_dirs)
        started.append(b)
        if start:
            b.start()
        return b

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()


@pytest.fixture
def topic(request) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:150]
    return f"{base}-{uuid.uuid4().hex[:8]}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for b in getattr(item, _BROKERS_ATTR, []):
            max_chars = int(os.environ.get("KAVKA_LOG_TAIL_CHARS", "20000"))
            report.sections.append((f"kavka broker log: {b.name} ({report.when})",
                                    b.log_tail(max_chars)))
