"""The seeded fault schedule. One fault at a time: apply, hold, heal, then wait until every
partition's ISR is full again, so that at most one node is ever faulted (and the workload
must keep making progress throughout)."""

from __future__ import annotations

import random
import re
import subprocess
import time
from dataclasses import dataclass

from .cluster import Cluster, Node
from .history import History
from .workload import fetch_metadata

KINDS = [
    "kill-random", "kill-leader", "kill-controller", "pause", "isolate", "isolate-leader",
    "split", "one-way", "loss", "bandwidth", "disk-full", "clock-skew",
]
NEEDS_SHAPING = {"bandwidth"}
NEEDS_PEER_RULES = {"isolate-leader", "split", "one-way"}


@dataclass
class Fault:
    kind: str
    nodes: list[str]
    detail: str
    started: float
    hold: float


class FaultInjector:
    def __init__(self, cluster: Cluster, topic: str, history: History, rng: random.Random,
                 metadata_v7, only: list[str] | None = None):
        self.cluster = cluster
        self.topic = topic
        self.history = history
        self.rng = rng
        self.metadata_v7 = metadata_v7
        self.kinds = [k for k in KINDS
                      if (cluster.net.shaping or k not in NEEDS_SHAPING)
                      and (cluster.net.namespaces or k not in NEEDS_PEER_RULES)
                      and (not only or k in only)]
        self.skipped_kinds = [k for k in KINDS
                              if k not in self.kinds and (not only or k in only)]
        self.counts: dict[str, int] = {}
        self.isr_waits: list[float] = []

    # ------------------------------------------------------------------ targets
    def _any(self, nodes: list[Node]) -> Node:
        return self.rng.choice(sorted(nodes, key=lambda n: n.name))

    def _leader(self) -> Node:
        """The leader of a random partition, as the live brokers see it."""
        for b in self.cluster.brokers():
            md = fetch_metadata(self.cluster, b, self.topic, self.metadata_v7)
            if md:
                p = self.rng.choice(sorted(md))
                node = self.cluster.by_id(md[p]["leader"])
                if node is not None:
                    return node
        return self._any(self.cluster.brokers())

    def _active_controller(self) -> Node:
        r = subprocess.run([str(self.cluster.bin), "cluster", "status", "--bootstrap-server",
                            self.cluster.bootstrap()], capture_output=True, text=True, timeout=30)
        m = re.search(r"Active controller: (\d+)", r.stdout)
        node = self.cluster.by_id(int(m.group(1))) if m else None
        return node if node is not None else self._any(self.cluster.controllers())

    # ------------------------------------------------------------------ apply / heal
    def apply(self, kind: str) -> Fault:
        c, net, rng = self.cluster, self.cluster.net, self.rng
        every = list(c.nodes.values())
        hold = rng.uniform(5, 12)
        if kind == "kill-random":
            n = self._any(every)
            c.kill(n)
            f = Fault(kind, [n.name], "kill -9", time.time(), hold)
        elif kind == "kill-leader":
            n = self._leader()
            c.kill(n)
            f = Fault(kind, [n.name], "kill -9 of a partition leader", time.time(), hold)
        elif kind == "kill-controller":
            n = self._active_controller()
            c.kill(n)
            f = Fault(kind, [n.name], "kill -9 of the active controller", time.time(), hold)
        elif kind == "pause":
            n = self._any(every)
            hold = rng.uniform(5, 15)
            c.pause(n)
            f = Fault(kind, [n.name], "SIGSTOP", time.time(), hold)
        elif kind == "isolate":
            n = self._any(every)
            net.isolate(n.name)
            f = Fault(kind, [n.name], "isolated from nodes and clients", time.time(), hold)
        elif kind == "isolate-leader":
            n = self._leader()
            peers = [p.name for p in every if p is not n]
            net.cut(n.name, peers)
            f = Fault(kind, [n.name], f"leader cut from {','.join(peers)}, clients reach it",
                      time.time(), hold)
        elif kind == "split":
            # Minority: one broker (and in the split profile one controller) against the rest.
            minority = [self._any(c.brokers())]
            if c.profile == "split":
                minority.append(self._any(c.controllers()))
            majority = [p.name for p in every if p not in minority]
            for n in minority:
                net.cut(n.name, majority)
            f = Fault(kind, [n.name for n in minority],
                      f"minority {','.join(n.name for n in minority)} | majority "
                      f"{','.join(majority)}", time.time(), hold)
        elif kind == "one-way":
            n = self._any(every)
            peer = self._any([p for p in every if p is not n])
            net.drop_from(n.name, peer.name)
            f = Fault(kind, [n.name], f"drops packets from {peer.name}", time.time(), hold)
        elif kind == "loss":
            n = self._any(every)
            prob = rng.choice([0.1, 0.3, 0.5])
            net.loss(n.name, prob)
            f = Fault(kind, [n.name], f"{int(prob * 100)}% packet loss", time.time(), hold)
        elif kind == "bandwidth":
            n = self._any(every)
            rate = rng.choice(["256kbit", "1mbit"])
            net.limit_bandwidth(n.name, rate)
            f = Fault(kind, [n.name], f"tc tbf {rate}", time.time(), hold)
        elif kind == "disk-full":
            n = self._any(every)
            c.fill_disk(n)
            f = Fault(kind, [n.name], "tmpfs full", time.time(), hold)
        elif kind == "clock-skew":
            n = self._any(every)
            skew = rng.choice(["-600s", "-90s", "+90s", "+3600s"])
            c.kill(n)
            c.start(n, clock_skew=skew)
            f = Fault(kind, [n.name], f"restarted with clock {skew}", time.time(), hold)
        else:
            raise ValueError(kind)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.history.add("info", "fault-start", "nemesis", kind=kind, nodes=f.nodes,
                         detail=f.detail)
        return f

    def heal(self, f: Fault | None = None) -> None:
        """Undoes `f` (or everything): network rules, pauses, full disks, dead nodes, skewed
        clocks."""
        c = self.cluster
        c.net.heal_all()
        for n in c.nodes.values():
            c.resume(n)
            c.free_disk(n)
            if n.proc is None:
                c.start(n)
            elif n.clock_skew:
                c.kill(n)
                c.start(n)
        self.history.add("info", "fault-end", "nemesis", kind=f.kind if f else "heal-all",
                         nodes=f.nodes if f else [])

    def wait_isr_full(self, timeout: float) -> bool:
        """True once every live broker reports a full ISR and a leader for every partition."""
        start = time.time()
        deadline = start + timeout
        want = len(self.cluster.brokers())
        while time.time() < deadline:
            # A node can stop on its full metadata disk after the heal, too.
            self.cluster.restart_halted()
            views = [fetch_metadata(self.cluster, b, self.topic, self.metadata_v7)
                     for b in self.cluster.brokers()]
            if all(v for v in views) and all(
                    len(p["isr"]) == want and p["leader"] >= 0
                    for v in views for p in v.values()):
                self.isr_waits.append(time.time() - start)
                return True
            time.sleep(0.5)
        self.isr_waits.append(time.time() - start)
        return False

    def schedule(self, quick: bool, count: int) -> list[str]:
        """Quick mode covers every kind once, in a seeded order; full mode draws freely."""
        if quick:
            kinds = list(self.kinds)
            self.rng.shuffle(kinds)
            return kinds[:count] if count else kinds
        return [self.rng.choice(self.kinds) for _ in range(count)]
