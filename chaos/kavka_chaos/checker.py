"""The invariants, checked on the history alone. Each returns a count (zero when it holds)
and up to a few examples for the report."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

EXAMPLES = 5


@dataclass
class Result:
    name: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, example: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(example)


def _drain(events: list[dict]) -> dict[tuple[int, int], str]:
    return {(e["partition"], e["offset"]): e["value"] for e in events
            if e["f"] == "drain" and e["type"] == "ok"}


def lost_writes(events: list[dict]) -> Result:
    """1. Every acknowledged record is at its acknowledged partition and offset."""
    r = Result("lost writes")
    drain = _drain(events)
    drained_values = set(drain.values())
    for e in events:
        if e["f"] == "produce" and e["type"] == "ok":
            if e["offset"] is None:
                # Acknowledged without an offset (see acked_without_offset): it must be there.
                if e["value"] not in drained_values:
                    r.add(f"{e['value']} acked (no offset) in partition {e['partition']}, "
                          "not in the drain")
                continue
            got = drain.get((e["partition"], e["offset"]))
            if got != e["value"]:
                r.add(f"{e['value']} acked at {e['partition']}@{e['offset']}, drain has {got!r}")
    return r


def inconsistent_offsets(events: list[dict]) -> Result:
    """2. No offset ever returned two different records (consumers and final drain)."""
    r = Result("inconsistent offsets")
    seen: dict[tuple[int, int], set[str]] = defaultdict(set)
    for e in events:
        if e["f"] in ("poll", "drain") and e["type"] == "ok":
            seen[(e["partition"], e["offset"])].add(e["value"])
    for (p, o), values in sorted(seen.items()):
        if len(values) > 1:
            r.add(f"{p}@{o} returned {sorted(values)}")
    return r


def duplicates(events: list[dict]) -> Result:
    """3. No record at two offsets."""
    r = Result("duplicates")
    where: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for e in events:
        if e["f"] in ("poll", "drain") and e["type"] == "ok":
            where[e["value"]].add((e["partition"], e["offset"]))
    for value, places in sorted(where.items()):
        if len(places) > 1:
            r.add(f"{value} at {sorted(places)}")
    return r


def nonmonotonic(events: list[dict]) -> Result:
    """4. Within one assignment a consumer reads each partition's offsets in order without
    skipping any that exist; each producer's acknowledged offsets per partition increase
    with its sequence."""
    r = Result("non-monotonic or skipped reads/acks")
    drain = _drain(events)
    last: dict[tuple[str, int], int] = {}
    for e in events:
        if e["f"] in ("assign", "revoke"):
            for p in e["partitions"]:
                last.pop((e["process"], p), None)
        elif e["f"] == "poll" and e["type"] == "ok":
            key = (e["process"], e["partition"])
            prev = last.get(key)
            if prev is not None:
                if e["offset"] <= prev:
                    r.add(f"{e['process']} read {e['partition']}@{e['offset']} after @{prev}")
                else:
                    skipped = [o for o in range(prev + 1, e["offset"])
                               if (e["partition"], o) in drain]
                    if skipped:
                        r.add(f"{e['process']} skipped {e['partition']}@{skipped[0]}.."
                              f"{skipped[-1]} ({len(skipped)} records)")
            last[key] = e["offset"]
    acks: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for e in events:
        if e["f"] == "produce" and e["type"] == "ok" and e["offset"] is not None:
            acks[(e["process"], e["partition"])].append((e["seq"], e["offset"]))
    for (proc, p), pairs in sorted(acks.items()):
        pairs.sort()
        for (s1, o1), (s2, o2) in zip(pairs, pairs[1:]):
            if o2 <= o1:
                r.add(f"{proc} partition {p}: seq {s2} acked at {o2} after seq {s1} at {o1}")
    return r


def committed_offsets(events: list[dict], log_end: dict[int, int]) -> Result:
    """5. A committed offset never moves backwards (there are no resets in this workload)
    and is never above the partition's final high watermark."""
    r = Result("committed offsets backwards or above HW")
    last: dict[int, int] = {}
    for e in events:
        if e["f"] == "committed" and e["type"] == "ok":
            for p, o in e["offsets"].items():
                p = int(p)
                if o < last.get(p, -1):
                    r.add(f"partition {p} committed offset went {last[p]} -> {o} at t={e['t']}")
                last[p] = max(o, last.get(p, -1))
                if p in log_end and o > log_end[p]:
                    r.add(f"partition {p} committed {o} above high watermark {log_end[p]}")
    return r


def leader_epochs(events: list[dict]) -> Result:
    """6. Each broker's view of a partition's leader epoch never goes back, and no epoch
    has two leaders."""
    r = Result("leader epoch regressions or split leadership")
    last: dict[tuple[str, int], int] = {}
    leaders: dict[tuple[int, int], set[int]] = defaultdict(set)
    for e in events:
        if e["f"] != "metadata" or e["type"] != "ok" or e["error"] != 0 or e["leader"] < 0:
            continue
        key = (e["process"], e["partition"])
        if e["epoch"] < last.get(key, -1):
            r.add(f"{e['process']} partition {e['partition']} epoch {last[key]} -> {e['epoch']} "
                  f"at t={e['t']}")
        last[key] = max(e["epoch"], last.get(key, -1))
        leaders[(e["partition"], e["epoch"])].add(e["leader"])
    for (p, epoch), ls in sorted(leaders.items()):
        if len(ls) > 1:
            r.add(f"partition {p} epoch {epoch} had leaders {sorted(ls)}")
    return r


def liveness(events: list[dict], workload_end: float, max_gap: float,
             unexpected_exits: list[str], panics: dict[str, int],
             heal_ok: bool, probe_seconds: float | None) -> Result:
    """7. The workload keeps making progress while one node is faulted (no gap between
    acknowledged writes longer than `max_gap`), produce and consume work within 30 s of
    healing, no node exits unasked, no log has a panic."""
    r = Result("liveness")
    gap = longest_ack_gap(events, workload_end)
    if gap is not None and gap[0] > max_gap:
        r.add(f"no acknowledged write for {gap[0]:.1f}s (from t={gap[1]:.1f})")
    acks = [e for e in events if e["f"] == "produce" and e["type"] == "ok"]
    if not acks:
        r.add("no write was ever acknowledged")
    for exit_ in unexpected_exits:
        r.add(f"unexpected exit: {exit_}")
    for node, count in panics.items():
        r.add(f"{node}: {count} panic(s) in its log")
    if not heal_ok:
        r.add("ISRs not full within the heal timeout")
    if probe_seconds is None or probe_seconds > 30:
        r.add(f"produce+consume after healing took {probe_seconds!r}s (limit 30 s)")
    return r


def longest_ack_gap(events: list[dict], workload_end: float) -> tuple[float, float] | None:
    """(seconds, start) of the longest stretch without an acknowledged write, from one second
    before the first fault to the end of the workload; None when there were no faults."""
    acks = sorted(e["t"] for e in events if e["f"] == "produce" and e["type"] == "ok")
    starts = [e["t"] for e in events if e["f"] == "fault-start"]
    if not starts or not acks:
        return None
    prev = starts[0] - 1.0
    best = (0.0, prev)
    for t in [a for a in acks if a > prev] + [workload_end]:
        if t - prev > best[0]:
            best = (t - prev, prev)
        prev = max(prev, t)
    return best


def leader_changes(events: list[dict]) -> int:
    """How many (partition, epoch) pairs the observer saw: the number of elections it saw."""
    return len({(e["partition"], e["epoch"]) for e in events
                if e["f"] == "metadata" and e["type"] == "ok" and e["error"] == 0})
