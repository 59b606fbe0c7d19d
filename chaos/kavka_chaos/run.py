"""`chaos/run [--quick|--full] [--seed N] [--profile combined|split]`: one or more seeded
runs of workload + faults + checks; exits 1 when any invariant is broken."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "compat" / "python"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from rawkafka import metadata_v7  # noqa: E402

from . import checker  # noqa: E402
from .cluster import Cluster  # noqa: E402
from .faults import KINDS, FaultInjector  # noqa: E402
from .history import History  # noqa: E402
from .net import LoopbackNetwork, Network, namespaces_permitted  # noqa: E402
from .workload import ConsumerWorker, Observer, ProducerWorker, _silent_logger  # noqa: E402

TOPIC = "chaos"
PARTITIONS = 6
QUICK_SEEDS = [1]
MAX_ACK_GAP = 20.0


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def create_topic(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": _silent_logger()})
    deadline = time.time() + 60
    while True:
        fut = admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3,
                                            config={"min.insync.replicas": "2"})],
                                  request_timeout=10)[TOPIC]
        try:
            fut.result()
            return
        except Exception as e:  # noqa: BLE001 - the quorum may still be electing
            if "already exists" in str(e).lower():
                return
            if time.time() > deadline:
                raise
            time.sleep(1)


def probe_after_heal(bootstrap: str) -> float | None:
    """Seconds until a fresh producer's record is acknowledged and read back, or None."""
    start = time.time()
    value = f"probe-{start}".encode()
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "message.timeout.ms": 30000, "logger": _silent_logger()})
    where = {}
    p.produce(TOPIC, value=value, partition=0,
              on_delivery=lambda err, msg: where.update(err=err, offset=msg.offset()))
    p.flush(30)
    if where.get("err") is not None or "offset" not in where:
        return None
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{start}",
                  "enable.auto.commit": False, "logger": _silent_logger()})
    c.assign([TopicPartition(TOPIC, 0, where["offset"])])
    try:
        while time.time() - start < 30:
            msg = c.poll(1.0)
            if msg is not None and not msg.error() and msg.value() == value:
                return time.time() - start
    finally:
        c.close()
    return None


def drain(bootstrap: str, history: History) -> dict[int, int]:
    """Reads every partition from its log start to its high watermark into the history;
    returns the high watermarks."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-drain",
                  "enable.auto.commit": False, "logger": _silent_logger()})
    ends: dict[int, int] = {}
    for p in range(PARTITIONS):
        low, high = c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=30)
        ends[p] = high
        history.add("ok", "watermarks", "drain", partition=p, low=low, high=high)
    c.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    pos = {p: 0 for p in range(PARTITIONS)}
    deadline = time.time() + 180
    while any(pos[p] < ends[p] for p in pos) and time.time() < deadline:
        msg = c.poll(1.0)
        if msg is None or msg.error():
            continue
        history.add("ok", "drain", "drain", partition=msg.partition(), offset=msg.offset(),
                    value=msg.value().decode())
        pos[msg.partition()] = msg.offset() + 1
    c.close()
    short = {p: (pos[p], ends[p]) for p in pos if pos[p] < ends[p]}
    if short:
        history.add("fail", "drain", "drain", short=short)
    return ends


def one_run(args, seed: int, profile: str, kavka_bin: Path, out_root: Path) -> bool:
    rng = random.Random(seed)
    names = Cluster.node_names(profile)
    use_ns = namespaces_permitted() and not args.loopback
    net = (Network if use_ns else LoopbackNetwork)(names, prefix=f"kvc{os.getpid() % 1000}")
    run_dir = Path(args.workdir) / f"{profile}-seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    history = History()
    cluster = Cluster(kavka_bin, run_dir, net, profile, tmpfs_mb=args.tmpfs_mb)
    log(f"seed {seed}, profile {profile}, {'namespaces' if use_ns else 'loopback fallback'}, "
        f"{len(names)} nodes, data under {run_dir}")
    workers: list = []
    observer = None
    injector = FaultInjector(cluster, TOPIC, history, rng, metadata_v7, only=args.kinds)
    heal_ok = False
    probe = None
    log_end: dict[int, int] = {}
    try:
        net.up()
        cluster.prepare()
        cluster.start_all()
        for n in cluster.nodes.values():
            if not cluster.wait_listening(n):
                raise RuntimeError(f"{n.name} did not start; see {n.log}")
        create_topic(cluster.bootstrap())
        if not injector.wait_isr_full(60):
            raise RuntimeError("topic never reached a full ISR")
        debug_dir = run_dir / "logs"
        debug_dir.mkdir(exist_ok=True)
        workers = [ProducerWorker(i, cluster.bootstrap(), TOPIC, history, args.rate,
                                  debug=args.client_debug, debug_dir=debug_dir)
                   for i in range(args.producers)]
        workers += [ConsumerWorker(i, cluster.bootstrap(), TOPIC, history)
                    for i in range(args.consumers)]
        observer = Observer(cluster, TOPIC, PARTITIONS, history, metadata_v7)
        for w in workers + [observer]:
            w.start()
        time.sleep(5)
        plan = injector.schedule(args.quick, args.faults)
        log(f"faults planned: {', '.join(plan)}"
            + (f" (not available here: {', '.join(injector.skipped_kinds)})"
               if injector.skipped_kinds else ""))
        for kind in plan:
            fault = injector.apply(kind)
            log(f"fault {kind}: {fault.detail} on {','.join(fault.nodes)}, hold {fault.hold:.1f}s")
            end = time.time() + fault.hold
            while time.time() < end:
                for died in cluster.check_exits():
                    log(f"UNEXPECTED: {died}")
                time.sleep(0.5)
            injector.heal(fault)
            if not injector.wait_isr_full(60):
                log("ISR not full 60 s after healing")
            for died in cluster.check_exits():
                log(f"UNEXPECTED: {died}")
            time.sleep(rng.uniform(2, 4))
        injector.heal()
        heal_ok = injector.wait_isr_full(120)
        probe = probe_after_heal(cluster.bootstrap())
        log(f"healed: ISR full {heal_ok}, produce+consume probe {probe}")
        workload_end = history.add("info", "workload-stop", "runner")["t"]
        for w in workers:
            w.stop_event.set()
        for w in workers:
            w.join(timeout=150)
        observer.stop_event.set()
        observer.join(timeout=30)
        log_end = drain(cluster.bootstrap(), history)
    except Exception as e:  # noqa: BLE001 - reported as a failed run with its artifacts
        log(f"run aborted: {type(e).__name__}: {e}")
        history.add("fail", "run", "runner", error=f"{type(e).__name__}: {e}")
        workload_end = history.snapshot()[-1]["t"] if history.events else 0.0
    finally:
        for w in workers + ([observer] if observer else []):
            w.stop_event.set()
        unexpected = [f"{n.name} (code {code})" for n in cluster.nodes.values()
                      for _, code in n.unexpected_exits]
        unexpected += cluster.check_exits()
        cluster.stop_all()
        panics = cluster.panics()
        cluster.save_logs(run_dir / "logs")
        cluster.unmount()
        net.down()

    events = history.snapshot()
    history.save(run_dir / "history.jsonl")
    drained = any(e["f"] == "watermarks" for e in events)
    results = [
        checker.lost_writes(events) if drained else checker.Result("lost writes (not checked: "
                                                                   "the run never drained)"),
        checker.inconsistent_offsets(events),
        checker.duplicates(events),
        checker.nonmonotonic(events),
        checker.committed_offsets(events, log_end),
        checker.leader_epochs(events),
        checker.liveness(events, workload_end, MAX_ACK_GAP, unexpected, panics, heal_ok, probe),
    ]
    aborted = [e for e in events if e["f"] == "run" and e["type"] == "fail"]
    drain_short = [e for e in events if e["f"] == "drain" and e["type"] == "fail"]
    ok = not aborted and not drain_short and all(r.count == 0 for r in results)
    report = render_report(seed, profile, use_ns, events, results, injector, aborted,
                           drain_short, ok, workload_end)
    print(report, flush=True)
    (run_dir / "report.txt").write_text(report)
    summary = {"seed": seed, "profile": profile, "ok": ok,
               "invariants": {r.name: r.count for r in results}, "faults": injector.counts,
               "ops": op_counts(events)}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if ok and not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        keep = out_root / f"{profile}-seed{seed}"
        if keep != run_dir:
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(run_dir, keep, ignore=shutil.ignore_patterns("data"))
        log(f"history, logs and report kept in {keep}; replay with: chaos/run --seed {seed} "
            f"--profile {profile}{' --quick' if args.quick else ''}")
    return ok


def op_counts(events: list[dict]) -> dict[str, int]:
    count = lambda f, t: sum(1 for e in events if e["f"] == f and e["type"] == t)  # noqa: E731
    return {"produce attempted": count("produce", "invoke"),
            "produce acknowledged": count("produce", "ok"),
            "produce indeterminate": count("produce", "info"),
            "produce failed": count("produce", "fail"),
            "producer fatal errors (producer recreated)": count("producer-fatal", "info"),
            "records read by consumers": count("poll", "ok"),
            "commits ok": count("commit", "ok"), "commits failed": count("commit", "fail"),
            "records drained": count("drain", "ok"),
            "metadata observations": count("metadata", "ok")}


def render_report(seed, profile, use_ns, events, results, injector, aborted, drain_short,
                  ok, workload_end) -> str:
    lines = [f"== chaos report: seed {seed}, profile {profile}, "
             f"{'network namespaces' if use_ns else 'loopback fallback'}"]
    lines.append("invariants:")
    for i, r in enumerate(results, 1):
        lines.append(f"  {i}. {r.name:<45} {r.count}")
        lines += [f"       e.g. {x}" for x in r.examples]
    lines.append("faults: " + ", ".join(f"{k} {v}" for k, v in sorted(injector.counts.items())))
    halts = sum(len(n.disk_halts) for n in injector.cluster.nodes.values())
    if halts:
        lines.append(f"nodes stopped by a failed metadata log write on a full disk: {halts}")
    if injector.isr_waits:
        lines.append(f"ISR full again after each heal: max {max(injector.isr_waits):.1f}s")
    lines.append("operations: " + ", ".join(f"{k} {v}" for k, v in op_counts(events).items()))
    gap = checker.longest_ack_gap(events, workload_end)
    if gap:
        lines.append(f"longest stretch without an acknowledged write: {gap[0]:.1f}s "
                     f"(limit {MAX_ACK_GAP:.0f}s); partition leader epochs observed: "
                     f"{checker.leader_changes(events)}")
    for e in aborted:
        lines.append(f"RUN ABORTED: {e['error']}")
    for e in drain_short:
        lines.append(f"DRAIN INCOMPLETE: {e['short']}")
    lines.append("RESULT: " + ("PASS" if ok else f"FAIL (replay: chaos/run --seed {seed} "
                                                 f"--profile {profile})"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="chaos/run", description=__doc__)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="CI mode: 3 combined nodes, fixed seeds, every fault kind once (~3.5 min)")
    mode.add_argument("--full", action="store_true",
                      help="both profiles, random seeds, --minutes of faults each (default 15)")
    ap.add_argument("--seed", type=int, action="append", help="run this seed (repeatable)")
    ap.add_argument("--profile", choices=["combined", "split"], action="append",
                    help="cluster profile (repeatable; default: combined, --full: both)")
    ap.add_argument("--minutes", type=float, default=15.0, help="fault phase per run in --full")
    ap.add_argument("--faults", type=int, default=0, help="number of faults (default: by mode)")
    ap.add_argument("--kinds", type=lambda v: v.split(","),
                    help="only these fault kinds, comma separated (to reproduce a finding)")
    ap.add_argument("--client-debug", metavar="CONTEXTS",
                    help="librdkafka debug contexts for the producers (e.g. eos,msg), logged "
                         "to one file per producer next to the node logs")
    ap.add_argument("--producers", type=int, default=3)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=200.0, help="records/s per producer")
    ap.add_argument("--tmpfs-mb", type=int, default=256)
    ap.add_argument("--loopback", action="store_true",
                    help="use the 127.0.10.x fallback even where namespaces work")
    ap.add_argument("--workdir", default="/tmp/kavka-chaos")
    ap.add_argument("--out", default=str(REPO / "chaos" / "results"),
                    help="where failing runs keep history, logs and report")
    ap.add_argument("--keep", action="store_true", help="keep artifacts of passing runs too")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.kinds or []) - set(KINDS))
    if unknown:
        ap.error(f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    if os.geteuid() != 0:
        print("chaos/run needs root (network namespaces, iptables, tmpfs mounts)", file=sys.stderr)
        return 2
    kavka_bin = Path(os.environ.get("KAVKA_BIN") or REPO / "target" / "release" / "kavka")
    if not kavka_bin.exists():
        print(f"no kavka binary at {kavka_bin} (cargo build --release, or set KAVKA_BIN)",
              file=sys.stderr)
        return 2
    profiles = args.profile or (["combined", "split"] if args.full else ["combined"])
    if args.seed:
        seeds = args.seed
    elif args.full:
        seeds = [random.SystemRandom().randrange(1, 1 << 31)]
    else:
        seeds = QUICK_SEEDS
        args.quick = True
    if not args.faults:
        args.faults = int(args.minutes * 60 / 12.5) if args.full else 0
    out_root = Path(args.out)
    out_root.mkdir(parents=True, exist_ok=True)
    failed = []
    for profile in profiles:
        for seed in seeds:
            if not one_run(args, seed, profile, kavka_bin, out_root):
                failed.append(f"{profile} seed {seed}")
    print(f"== chaos: {len(profiles) * len(seeds) - len(failed)} run(s) passed"
          + (f", FAILED: {'; '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0
