"""examples/walkthrough.sh, the operator's first session (docs/quickstart.md), end to end on a
local 3-node cluster: create a topic with RF 3, produce and consume keyed records in a group, kill -9
the leader of partition 0, see a new leader, keep consuming in the same group, restart the node and
wait for a full ISR. The script checks every step itself; this test runs it (with the binary under
test and a free port range) and requires exit 0. THREE-NODE TEST (`kavka cluster up --nodes 3`).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
from pathlib import Path

import pytest

from kavka_harness import REPO_ROOT

SCRIPT = REPO_ROOT / "examples" / "walkthrough.sh"
TIMEOUT_S = 280


def free_base_port() -> int:
    """A base port with base..base+2 and base+100..base+102 free (the script's layout)."""
    for _ in range(200):
        base = random.randrange(20000, 40000)
        socks = []
        try:
            for p in [base + i for i in range(3)] + [base + 100 + i for i in range(3)]:
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError("no free port range")


@pytest.mark.timeout(TIMEOUT_S + 30)
def test_walkthrough_script(kavka_bin: Path, tmp_path: Path):
    assert SCRIPT.exists() and os.access(SCRIPT, os.X_OK), f"{SCRIPT} missing or not executable"
    env = {**os.environ, "KAVKA_BIN": str(kavka_bin),
           "KAVKA_WALKTHROUGH_BASE_PORT": str(free_base_port()),
           "KAVKA_WALKTHROUGH_DIR": str(tmp_path / "walkthrough"),
           "KAVKA_WALKTHROUGH_TIMEOUT": "90", "RUST_BACKTRACE": "1"}
    proc = subprocess.Popen(["bash", str(SCRIPT)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # SIGTERM: the script's trap stops the cluster it started
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        pytest.fail(f"the walkthrough did not finish within {TIMEOUT_S}s:\n{out[-15000:]}")
    assert proc.returncode == 0, f"walkthrough.sh exited {proc.returncode}:\n{out[-15000:]}"
    assert "Walkthrough complete" in out, out[-5000:]
    assert "panicked at" not in out and "stack backtrace" not in out, out[-5000:]
    # nothing left running from the script's cluster directory
    leftovers = []
    for pid_file in (tmp_path / "walkthrough" / "cluster").glob("node-*/pid"):
        pid = pid_file.read_text().strip()
        if pid and Path(f"/proc/{pid}/cmdline").exists():
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(tmp_path) in cmd:
                leftovers.append((pid, cmd))
    assert not leftovers, f"processes left running after the script: {leftovers}"
