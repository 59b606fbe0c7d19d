"""The Kavka processes under test: configuration, data directories on size-limited tmpfs,
start, kill -9, pause, restart (optionally with a skewed clock), and their logs."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .net import Network, sh

CLIENT_PORT = 9092
CONTROLLER_PORT = 9093
# What a node logs when it stops because its metadata log could not be written.
METADATA_LOG_FAILED = "the metadata log in "
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@dataclass
class Node:
    name: str
    node_id: int
    roles: str  # "broker,controller", "broker" or "controller"
    dir: Path
    proc: subprocess.Popen | None = None
    paused: bool = False
    clock_skew: str | None = None
    # Exits nobody asked for: (time, exit code). Invariant 7 wants none.
    unexpected_exits: list[tuple[float, int]] = field(default_factory=list)
    expected_exit: bool = False
    disk_full: bool = False
    disk_filled_since_start: bool = False
    # Stops because the metadata log could not be written on a full disk (Kafka halts a node whose
    # metadata log directory fails; so does Kavka): expected after a disk-full fault, restarted
    # once the disk has room again.
    disk_halts: list[float] = field(default_factory=list)

    @property
    def is_broker(self) -> bool:
        return "broker" in self.roles

    @property
    def is_controller(self) -> bool:
        return "controller" in self.roles

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def log(self) -> Path:
        return self.dir / "kavka.log"


class Cluster:
    def __init__(self, kavka_bin: Path, root: Path, net: Network, profile: str,
                 tmpfs_mb: int, tmpfs: bool = True):
        self.bin = kavka_bin
        self.root = root
        self.net = net
        self.profile = profile
        self.tmpfs_mb = tmpfs_mb
        self.tmpfs = tmpfs
        self.nodes: dict[str, Node] = {}
        if profile == "combined":
            for i in (1, 2, 3):
                self.nodes[f"n{i}"] = Node(f"n{i}", i, "broker,controller", root / f"n{i}")
        elif profile == "split":
            for i in (1, 2, 3):
                self.nodes[f"b{i}"] = Node(f"b{i}", i, "broker", root / f"b{i}")
            for i in (1, 2, 3):
                self.nodes[f"c{i}"] = Node(f"c{i}", 100 + i, "controller", root / f"c{i}")
        else:
            raise ValueError(f"unknown profile {profile}")

    @staticmethod
    def node_names(profile: str) -> list[str]:
        if profile == "combined":
            return ["n1", "n2", "n3"]
        return ["b1", "b2", "b3", "c1", "c2", "c3"]

    # ------------------------------------------------------------------ views
    def brokers(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.is_broker]

    def controllers(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.is_controller]

    def by_id(self, node_id: int) -> Node | None:
        return next((n for n in self.nodes.values() if n.node_id == node_id), None)

    def addr(self, node: Node) -> str:
        return self.net.addr[node.name]

    def bootstrap(self) -> str:
        return ",".join(f"{self.addr(b)}:{CLIENT_PORT}" for b in self.brokers())

    # ------------------------------------------------------------------ config
    def _properties(self, node: Node) -> str:
        voters = ",".join(f"{c.node_id}@{self.addr(c)}:{CONTROLLER_PORT}" for c in self.controllers())
        a = self.addr(node)
        lines = [
            f"process.roles={node.roles}",
            f"node.id={node.node_id}",
            f"controller.quorum.voters={voters}",
            "controller.listener.names=CONTROLLER",
            f"log.dirs={node.data}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ]
        if node.is_broker and node.is_controller:
            lines.append(f"listeners=PLAINTEXT://{a}:{CLIENT_PORT},CONTROLLER://{a}:{CONTROLLER_PORT}")
        elif node.is_broker:
            lines.append(f"listeners=PLAINTEXT://{a}:{CLIENT_PORT}")
        else:
            lines.append(f"listeners=CONTROLLER://{a}:{CONTROLLER_PORT}")
        if node.is_broker:
            lines += [
                f"advertised.listeners=PLAINTEXT://{a}:{CLIENT_PORT}",
                "inter.broker.listener.name=PLAINTEXT",
                "default.replication.factor=3",
                "min.insync.replicas=2",
                "offsets.topic.replication.factor=3",
                "offsets.topic.num.partitions=6",
                "transaction.state.log.replication.factor=3",
                "transaction.state.log.min.isr=2",
                "auto.create.topics.enable=false",
                "unclean.leader.election.enable=false",
                # Kafka's system tests shorten these too: faults come every 10-15 s.
                "replica.lag.time.max.ms=10000",
                "group.initial.rebalance.delay.ms=0",
            ]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ lifecycle
    def prepare(self) -> None:
        cluster_id = subprocess.run([str(self.bin), "storage", "random-uuid"], check=True,
                                    capture_output=True, text=True).stdout.strip()
        for node in self.nodes.values():
            node.dir.mkdir(parents=True, exist_ok=True)
            node.data.mkdir(exist_ok=True)
            if self.tmpfs:
                sh("mount", "-t", "tmpfs", "-o", f"size={self.tmpfs_mb}m", "tmpfs", str(node.data))
            (node.dir / "server.properties").write_text(self._properties(node))
            r = subprocess.run([str(self.bin), "storage", "format", "--config",
                                str(node.dir / "server.properties"), f"--cluster-id={cluster_id}",
                                "--ignore-formatted"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"storage format of {node.name}: {r.stderr.strip()}")

    def start(self, node: Node, clock_skew: str | None = None) -> None:
        env = dict(os.environ, RUST_BACKTRACE="1")
        env.setdefault("RUST_LOG", "info")
        if clock_skew:
            # Only the wall clock: an NTP step moves CLOCK_REALTIME, not CLOCK_MONOTONIC.
            env.update(LD_PRELOAD=LIBFAKETIME, FAKETIME=clock_skew,
                       FAKETIME_DONT_FAKE_MONOTONIC="1", FAKETIME_NO_CACHE="1")
        node.clock_skew = clock_skew
        with open(node.log, "ab") as log:
            log.write(f"\n=== chaos: start {node.name} at {time.time():.3f}"
                      f"{' clock ' + clock_skew if clock_skew else ''}\n".encode())
            log.flush()
            node.proc = subprocess.Popen(
                self.net.exec_prefix(node.name)
                + [str(self.bin), "broker", "--config", str(node.dir / "server.properties")],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        node.paused = False
        node.expected_exit = False
        node.disk_filled_since_start = False

    def start_all(self) -> None:
        for node in self.nodes.values():
            self.start(node)

    def wait_listening(self, node: Node, timeout: float = 60.0) -> bool:
        port = CLIENT_PORT if node.is_broker else CONTROLLER_PORT
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.alive(node):
                return False
            try:
                with socket.create_connection((self.addr(node), port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.2)
        return False

    def alive(self, node: Node) -> bool:
        return node.proc is not None and node.proc.poll() is None

    def kill(self, node: Node) -> None:
        """kill -9; the node is down until `start`."""
        if node.proc is None:
            return
        node.expected_exit = True
        if node.paused:
            os.kill(node.proc.pid, signal.SIGCONT)
        try:
            os.kill(node.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        node.proc.wait()
        node.proc = None
        node.paused = False

    def pause(self, node: Node) -> None:
        if self.alive(node):
            os.kill(node.proc.pid, signal.SIGSTOP)
            node.paused = True

    def resume(self, node: Node) -> None:
        if node.paused and self.alive(node):
            os.kill(node.proc.pid, signal.SIGCONT)
        node.paused = False

    def _halted_on_full_disk(self, node: Node) -> bool:
        """Whether the node exited because its metadata log failed after its disk was filled
        (recorded, and the node marked down, if so)."""
        if node.proc is None or node.proc.poll() is None or node.expected_exit:
            return False
        if not node.disk_filled_since_start or node.proc.returncode != 1:
            return False
        this_run = node.log.read_text(errors="replace").rsplit("=== chaos: start", 1)[-1]
        if METADATA_LOG_FAILED not in this_run:
            return False
        node.disk_halts.append(time.time())
        node.proc = None
        return True

    def restart_halted(self) -> None:
        """Starts again the nodes that stopped on a full disk, once the disk has room."""
        for node in self.nodes.values():
            self._halted_on_full_disk(node)
            if node.disk_halts and node.proc is None and not node.disk_full \
                    and not node.expected_exit:
                self.start(node)

    def check_exits(self) -> list[str]:
        """Nodes that exited without being killed by the schedule (recorded once each). A node
        that stopped because its metadata log failed on a full disk is not among them."""
        died = []
        for node in self.nodes.values():
            if self._halted_on_full_disk(node):
                continue
            if node.proc is not None and node.proc.poll() is not None and not node.expected_exit:
                node.unexpected_exits.append((time.time(), node.proc.returncode))
                died.append(f"{node.name} exited with {node.proc.returncode}")
                node.proc = None
        return died

    # ------------------------------------------------------------------ disk
    def filler(self, node: Node) -> Path:
        return node.data / "chaos-disk-filler"

    def fill_disk(self, node: Node) -> None:
        """Takes every free byte of the node's tmpfs."""
        node.disk_full = True
        node.disk_filled_since_start = True
        fd = os.open(self.filler(node), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            st = os.statvfs(node.data)
            try:
                os.posix_fallocate(fd, 0, max(st.f_bavail * st.f_frsize, 1))
            except OSError:
                pass  # ENOSPC after taking what there was is the point
            # fallocate may leave a few pages: take them with unbuffered writes.
            chunk = b"\0" * 4096
            try:
                while os.write(fd, chunk) > 0:
                    pass
            except OSError:
                pass
        finally:
            os.close(fd)

    def free_disk(self, node: Node) -> None:
        node.disk_full = False
        try:
            self.filler(node).unlink()
        except FileNotFoundError:
            pass

    # ------------------------------------------------------------------ teardown
    def stop_all(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None:
                self.resume(node)
                node.expected_exit = True
                node.proc.terminate()
        for node in self.nodes.values():
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()
                node.proc = None

    def panics(self) -> dict[str, int]:
        found = {}
        for node in self.nodes.values():
            if node.log.exists():
                text = node.log.read_text(errors="replace")
                count = text.count("panicked at")
                if count:
                    found[node.name] = count
        return found

    def save_logs(self, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        for node in self.nodes.values():
            if node.log.exists():
                shutil.copy(node.log, dest / f"{node.name}.log")
            props = node.dir / "server.properties"
            if props.exists():
                shutil.copy(props, dest / f"{node.name}.properties")

    def unmount(self) -> None:
        if not self.tmpfs:
            return
        for node in self.nodes.values():
            sh("umount", "-l", str(node.data), check=False)
