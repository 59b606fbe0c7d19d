"""The network the cluster under test lives on, and the network faults.

Preferred: one network namespace per node, joined by veth pairs to a bridge in the root
namespace, addresses from the 198.18.0.0/24 benchmark range. Partitions are then real
packet drops (iptables inside the node's namespace), and `tc` shapes the node's own link.
A blackhole route for 198.18.0.0/15 goes in first, so that even a half-built setup can
never send a packet of the range anywhere but the bridge.

Fallback, where namespaces are not permitted: distinct 127.0.10.x addresses on `lo` with
iptables rules in the root namespace. Nodes' outgoing connections then all come from
127.0.0.1, so faults can only be keyed on a node's own address: isolation becomes "nobody
can reach the node", and cuts from chosen peers, one-way drops and link shaping are not
available (the schedule skips them, and the report says so; `cut` and `drop_from` fall
back to isolation should a caller ask anyway).
"""

from __future__ import annotations

import subprocess

CHAIN = "KAVKA-CHAOS"


class NetError(Exception):
    """A network set-up command failed."""


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise NetError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def namespaces_permitted() -> bool:
    probe = "kvchaos-probe"
    r = sh("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return False
    sh("ip", "netns", "del", probe, check=False)
    return True


class Network:
    """Addresses for `names` and the faults on them. `prefix` keeps concurrent runs apart."""

    namespaces = True
    shaping = True

    def __init__(self, names: list[str], prefix: str = "kvc"):
        self.names = list(names)
        self.prefix = prefix
        self.bridge = f"{prefix}br0"
        self.addr = {n: f"198.18.0.{11 + i}" for i, n in enumerate(self.names)}
        self.client_addr = "198.18.0.1"

    # ------------------------------------------------------------------ set-up
    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def exec_prefix(self, name: str) -> list[str]:
        """Command prefix that runs a program inside `name`'s namespace."""
        return ["ip", "netns", "exec", self.ns(name)]

    def up(self) -> None:
        self.down()
        sh("ip", "route", "replace", "blackhole", "198.18.0.0/15")
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.client_addr}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for i, n in enumerate(self.names):
            ns, host_if = self.ns(n), f"{self.prefix}v{i}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", host_if, "master", self.bridge, "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.addr[n]}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            self._ipt(n, "-N", CHAIN)
            self._ipt(n, "-I", "INPUT", "-j", CHAIN)
            self._ipt(n, "-I", "OUTPUT", "-j", CHAIN)
        for n in self.names:
            route = sh("ip", "route", "get", self.addr[n]).stdout
            if f"dev {self.bridge}" not in route:
                raise NetError(f"route to {self.addr[n]} does not use {self.bridge}: {route.strip()}")

    def down(self) -> None:
        for n in self.names:
            sh("ip", "netns", "del", self.ns(n), check=False)
        sh("ip", "link", "del", self.bridge, check=False)

    # ------------------------------------------------------------------ faults
    def _ipt(self, name: str, *rule: str) -> None:
        sh(*self.exec_prefix(name), "iptables", "-w", *rule)

    def isolate(self, name: str) -> None:
        """`name` can reach nobody and nobody reaches it (clients neither)."""
        self._ipt(name, "-A", CHAIN, "-o", "lo", "-j", "RETURN")
        self._ipt(name, "-A", CHAIN, "-i", "lo", "-j", "RETURN")
        self._ipt(name, "-A", CHAIN, "-j", "DROP")

    def cut(self, name: str, peers: list[str]) -> None:
        """Drops traffic between `name` and `peers` both ways; clients still reach it."""
        for p in peers:
            self._ipt(name, "-A", CHAIN, "-s", self.addr[p], "-j", "DROP")
            self._ipt(name, "-A", CHAIN, "-d", self.addr[p], "-j", "DROP")

    def drop_from(self, name: str, peer: str) -> None:
        """One-way: `name` no longer receives packets from `peer` (it still sends to it)."""
        self._ipt(name, "-A", CHAIN, "-i", "eth0", "-s", self.addr[peer], "-j", "DROP")

    def loss(self, name: str, probability: float) -> None:
        """Random loss of incoming packets on `name`'s link."""
        self._ipt(name, "-A", CHAIN, "-i", "eth0", "-m", "statistic", "--mode", "random",
                  "--probability", f"{probability:.2f}", "-j", "DROP")

    def limit_bandwidth(self, name: str, rate: str) -> None:
        sh(*self.exec_prefix(name), "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf",
           "rate", rate, "burst", "32kbit", "latency", "400ms")

    def heal(self, name: str) -> None:
        self._ipt(name, "-F", CHAIN)
        sh(*self.exec_prefix(name), "tc", "qdisc", "del", "dev", "eth0", "root", check=False)

    def heal_all(self) -> None:
        for n in self.names:
            self.heal(n)


class LoopbackNetwork(Network):
    """The fallback without namespaces: 127.0.10.x addresses, rules on `lo`."""

    namespaces = False
    shaping = False

    def __init__(self, names: list[str], prefix: str = "kvc"):
        super().__init__(names, prefix)
        self.addr = {n: f"127.0.10.{11 + i}" for i, n in enumerate(self.names)}
        self.client_addr = "127.0.0.1"
        self.chain = f"{CHAIN}-{prefix}"

    def exec_prefix(self, name: str) -> list[str]:
        return []

    def up(self) -> None:
        self.down()
        sh("iptables", "-w", "-N", self.chain)
        sh("iptables", "-w", "-I", "INPUT", "-j", self.chain)

    def down(self) -> None:
        sh("iptables", "-w", "-D", "INPUT", "-j", self.chain, check=False)
        sh("iptables", "-w", "-F", self.chain, check=False)
        sh("iptables", "-w", "-X", self.chain, check=False)

    def _rule(self, *rule: str) -> None:
        sh("iptables", "-w", "-A", self.chain, *rule)

    def isolate(self, name: str) -> None:
        self._rule("-d", self.addr[name], "-j", "DROP")

    def cut(self, name: str, peers: list[str]) -> None:
        self.isolate(name)

    def drop_from(self, name: str, peer: str) -> None:
        self.isolate(name)

    def loss(self, name: str, probability: float) -> None:
        self._rule("-d", self.addr[name], "-m", "statistic", "--mode", "random",
                   "--probability", f"{probability:.2f}", "-j", "DROP")

    def limit_bandwidth(self, name: str, rate: str) -> None:
        raise NetError("bandwidth caps need network namespaces")

    def heal(self, name: str) -> None:
        sh("iptables", "-w", "-F", self.chain, check=False)

    def heal_all(self) -> None:
        sh("iptables", "-w", "-F", self.chain, check=False)
