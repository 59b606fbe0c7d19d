#!/usr/bin/env bash
# Kavka benchmark: produce throughput and latency (p50/p99), consume throughput, and this
# machine's own limits (sequential write bandwidth with dd, loopback TCP with iperf3), all in
# one run, written as a Markdown table to bench/results/; then the consumer-group benchmarks
# (group vs assign() throughput, rebalance times); on request the log cleaner's throughput and
# its effect on produce (section "compaction") and a 3-node replicated cluster's produce
# throughput and leader failover time (section "cluster"). Not part of CI.
#
# Usage: bench/run.sh
# Environment:
#   BENCH_DIR           where the broker's log.dirs and the dd file go (default target/bench-data,
#                       i.e. the repository's filesystem)
#   BENCH_RECORDS_1K    records per 1 KiB run (default 500000, ~488 MiB)
#   BENCH_RECORDS_100   records per 100-byte run (default 2000000, ~191 MiB)
#   BENCH_LATENCY_RATE  records/s of the paced latency runs (default 10000)
#   BENCH_SECTIONS      which parts to run: "core" (produce/consume/latency and machine limits),
#                       "groups" (consumer groups), "compaction" (log cleaner; its own broker,
#                       ~3 minutes and ~20 GB in BENCH_DIR), "cluster" (3-node cluster, replication
#                       factor 3: throughput vs one node, leader failover; ~8 minutes, ~4 GB),
#                       "security" (one broker: PLAINTEXT vs SSL vs SASL_SSL; ~3 minutes, ~3 GB);
#                       default "core groups"
#   BENCH_GROUP_RECORDS 1 KiB records preloaded for group-vs-assign (default 300000, ~293 MiB)
#   BENCH_GROUP_ROUNDS  alternating assign/group rounds of group-vs-assign (default 6)
#   BENCH_COMPACTION_MIB          phase A: MiB of 1 KiB records loaded, then cleaned (default 500)
#   BENCH_COMPACTION_DIRTY_MIB    phase B: MiB loaded per round for the cleaner to work on (default 2000)
#   BENCH_COMPACTION_ROUNDS       phase B: rounds of (idle, busy) produce runs (default 6)
#   BENCH_COMPACTION_PRODUCE_SECS phase B: seconds per produce run (default 3)
#   BENCH_COMPACTION_OVERRIDES    extra broker settings for the compaction broker, space-separated
#                                 key=value (e.g. log.cleaner.io.max.bytes.per.second=150000000)
#   BENCH_CLUSTER_RECORDS     cluster: 1 KiB records per throughput run (default 300000, ~293 MiB)
#   BENCH_CLUSTER_ROUNDS      cluster: alternating single-node/cluster throughput rounds (default 3;
#                             0 skips the throughput part and runs only the failover part)
#   BENCH_CLUSTER_PARTITIONS  cluster: partition counts of the throughput runs (default "1 3")
#   BENCH_FAILOVER_REPS       cluster: failover repetitions per case (default 5)
#   BENCH_FAILOVER_SESSIONS   cluster: broker.session.timeout.ms values to measure (default "9000 3000";
#                             9000 is the default and uses the generated configuration unchanged)
#   BENCH_SECURITY_RECORDS    security: 1 KiB records per run (default 300000, ~293 MiB)
#   BENCH_SECURITY_ROUNDS     security: rounds over PLAINTEXT, SSL and SASL_SSL, order rotating (default 3)
#   KAVKA_BIN           broker binary (default: build target/release/kavka)
# Needs: cmake, libcurl4-openssl-dev and libssl-dev (librdkafka build, with TLS), iperf3, python3.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$ROOT/target/bench-data}
RECORDS_1K=${BENCH_RECORDS_1K:-500000}
RECORDS_100=${BENCH_RECORDS_100:-2000000}
SECTIONS=" ${BENCH_SECTIONS:-core groups} "
GROUP_RECORDS=${BENCH_GROUP_RECORDS:-300000}
GROUP_ROUNDS=${BENCH_GROUP_ROUNDS:-6}
CMP_MIB=${BENCH_COMPACTION_MIB:-500}
CMP_DIRTY_MIB=${BENCH_COMPACTION_DIRTY_MIB:-2000}
CMP_ROUNDS=${BENCH_COMPACTION_ROUNDS:-6}
CMP_PRODUCE_SECS=${BENCH_COMPACTION_PRODUCE_SECS:-3}
CMP_OVERRIDES=${BENCH_COMPACTION_OVERRIDES:-}
CL_RECORDS=${BENCH_CLUSTER_RECORDS:-300000}
CL_ROUNDS=${BENCH_CLUSTER_ROUNDS:-3}
CL_PARTITIONS=${BENCH_CLUSTER_PARTITIONS:-1 3}
SEC_RECORDS=${BENCH_SECURITY_RECORDS:-300000}
SEC_ROUNDS=${BENCH_SECURITY_ROUNDS:-3}
FO_REPS=${BENCH_FAILOVER_REPS:-5}
FO_SESSIONS=${BENCH_FAILOVER_SESSIONS:-9000 3000}
has() { [[ "$SECTIONS" == *" $1 "* ]]; }
OUT_DIR="$ROOT/bench/results"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$OUT_DIR/results-$STAMP.md"

log() { echo "[bench] $*" >&2; }
for tool in iperf3 dd python3 cargo; do
    command -v "$tool" >/dev/null || { log "missing tool: $tool (apt-get install iperf3)"; exit 2; }
done

mkdir -p "$BENCH_DIR" "$OUT_DIR"
RUN_DIR=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
BROKER_PID=""
IPERF_PID=""
stop_broker() {
    if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$BROKER_PID" 2>/dev/null || true
    fi
    BROKER_PID=""
}
# The `kavka cluster up` process of the cluster section, its nodes' pids, its bootstrap list.
CLUSTER_UP_PID=""
CLUSTER_NODE_PIDS=""
CLUSTER_BOOT=""
cluster_stop() {
    if [[ -n "$CLUSTER_UP_PID" ]]; then
        # cluster up stops its nodes on SIGTERM (SIGKILL after 15 s of grace).
        kill -TERM "$CLUSTER_UP_PID" 2>/dev/null || true
        for _ in $(seq 300); do kill -0 "$CLUSTER_UP_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CLUSTER_UP_PID" 2>/dev/null || true
        wait "$CLUSTER_UP_PID" 2>/dev/null || true
        # Only the node pids this run started, and only if cluster up left one behind.
        for pid in $CLUSTER_NODE_PIDS; do
            if kill -0 "$pid" 2>/dev/null && grep -qa kavka "/proc/$pid/cmdline" 2>/dev/null; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done
    fi
    CLUSTER_UP_PID=""
    CLUSTER_NODE_PIDS=""
}
cleanup() {
    [[ -n "$IPERF_PID" ]] && kill "$IPERF_PID" 2>/dev/null || true
    stop_broker
    cluster_stop
    rm -rf "$RUN_DIR"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- build -------------------------------------------------------------------------------
if [[ -z "${KAVKA_BIN:-}" ]]; then
    log "building kavka (release)"
    (cd "$ROOT" && cargo build --release --bin kavka >&2)
    KAVKA_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/kavka"
fi
log "building the load generator (release)"
BENCH_TARGET=${BENCH_TARGET_DIR:-$ROOT/target/bench}
(cd "$ROOT/bench" && CARGO_TARGET_DIR="$BENCH_TARGET" cargo build --release >&2)
GEN="$BENCH_TARGET/release/kavka-bench"

# ---- machine -----------------------------------------------------------------------------
CPU=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
CORES=$(nproc)
MEM=$(awk '/MemTotal/ { printf "%.1f GiB", $2/1048576 }' /proc/meminfo)
KERNEL=$(uname -r)
FS=$(df -T "$RUN_DIR" | awk 'NR==2 { print $1 " (" $2 ")" }')

# ---- machine limits ----------------------------------------------------------------------
if has core; then
log "dd: sequential write 1 GiB with fdatasync in $RUN_DIR"
DD_OUT=$(dd if=/dev/zero of="$RUN_DIR/dd.bin" bs=1M count=1024 conv=fdatasync 2>&1 | tail -1)
rm -f "$RUN_DIR/dd.bin"
# "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 2.1 s, 511 MB/s"
DD_MIB=$(echo "$DD_OUT" | python3 -c '
import re, sys
line = sys.stdin.read()
b = int(line.split()[0]); s = float(re.search(r"copied, ([0-9.]+) s", line).group(1))
print(f"{b / s / 1048576:.1f}")')
log "dd: $DD_MIB MiB/s ($DD_OUT)"

log "iperf3: loopback TCP, 10 s"
IPORT=$(free_port)
iperf3 -s -1 -p "$IPORT" >/dev/null 2>&1 &
IPERF_PID=$!
sleep 0.5
iperf3 -c 127.0.0.1 -p "$IPORT" -t 10 -J >"$RUN_DIR/iperf.json"
IPERF_BPS=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"])' "$RUN_DIR/iperf.json")
IPERF_MIB=$(python3 -c "print(f'{$IPERF_BPS / 8 / 1048576:.1f}')")
wait "$IPERF_PID" 2>/dev/null || true
IPERF_PID=""
log "iperf3: $IPERF_MIB MiB/s"
fi

# ---- broker ------------------------------------------------------------------------------
# start_broker NAME [key=value...]: a broker with data in $RUN_DIR/NAME and its log in
# $RUN_DIR/NAME.log (BROKER_LOG); sets BROKER_PID and BOOT.
start_broker() {
    local name=$1
    shift
    local port
    port=$(free_port)
    mkdir -p "$RUN_DIR/$name"
    BROKER_LOG="$RUN_DIR/$name.log"
    local args=(--override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$RUN_DIR/$name")
    for kv in "$@"; do args+=(--override "$kv"); done
    "$KAVKA_BIN" broker "${args[@]}" >"$BROKER_LOG" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        kill -0 "$BROKER_PID" 2>/dev/null || { cat "$BROKER_LOG" >&2; exit 1; }
        sleep 0.1
    done
    BOOT="127.0.0.1:$port"
    log "broker $name pid $BROKER_PID on $BOOT"
}
if has core || has groups; then
    start_broker kavka "group.initial.rebalance.delay.ms=0"
fi

field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }

ROWS=""
LAT_ROWS=""
if has core; then
BEST_P1K=0
BEST_C1K=0
BEST_R1K=0
for size in 100 1024; do
    if [[ $size == 1024 ]]; then count=$RECORDS_1K; else count=$RECORDS_100; fi
    for parts in 1 8; do
        for acks in 1 all; do
            topic="bench-s$size-p$parts-a$acks-$STAMP"
            "$GEN" create-topic --bootstrap "$BOOT" --topic "$topic" --partitions "$parts"
            log "produce size=$size partitions=$parts acks=$acks records=$count"
            P=$("$GEN" produce --bootstrap "$BOOT" --topic "$topic" --size "$size" --count "$count" --acks "$acks")
            log "  $P"
            log "consume size=$size partitions=$parts"
            C=$("$GEN" consume --bootstrap "$BOOT" --topic "$topic" --partitions "$parts" --count "$count")
            log "  $C"
            R=$("$GEN" fetch-raw --bootstrap "$BOOT" --topic "$topic" --partitions "$parts")
            log "  $R"
            pm=$(field "$P" mib_per_s); cm=$(field "$C" mib_per_s); rm_=$(field "$R" mib_per_s)
            ROWS+="| $size B | $parts | $acks | $count | $(field "$P" rec_per_s) | $pm | $(field "$P" p50_ms) | $(field "$P" p99_ms) | $(field "$P" errors) | $(field "$C" rec_per_s) | $cm | $rm_ |"$'\n'
            if [[ $size == 1024 ]]; then
                BEST_P1K=$(python3 -c "print(max($BEST_P1K, $pm))")
                BEST_C1K=$(python3 -c "print(max($BEST_C1K, $cm))")
                BEST_R1K=$(python3 -c "print(max($BEST_R1K, $rm_))")
            fi
        done
    done
done

# Latency below saturation: paced producers (BENCH_LATENCY_RATE records/s for 10 s, 1 partition).
LAT_RATE=${BENCH_LATENCY_RATE:-10000}
LAT_ROWS=""
for size in 100 1024; do
    for acks in 1 all; do
        topic="bench-lat-s$size-a$acks-$STAMP"
        "$GEN" create-topic --bootstrap "$BOOT" --topic "$topic" --partitions 1
        log "paced produce size=$size acks=$acks rate=$LAT_RATE/s"
        P=$("$GEN" produce --bootstrap "$BOOT" --topic "$topic" --size "$size" --count $((LAT_RATE * 10)) --acks "$acks" --rate "$LAT_RATE" --linger-ms 0)
        log "  $P"
        LAT_ROWS+="| $size B | $acks | $LAT_RATE | $(field "$P" p50_ms) | $(field "$P" p99_ms) | $(field "$P" max_ms) | $(field "$P" errors) |"$'\n'
    done
done

P_RATIO=$(python3 -c "print(f'{100 * $BEST_P1K / $DD_MIB:.0f}')")
C_RATIO=$(python3 -c "print(f'{100 * $BEST_C1K / $IPERF_MIB:.0f}')")
R_RATIO=$(python3 -c "print(f'{100 * $BEST_R1K / $IPERF_MIB:.0f}')")
fi

# ---- consumer groups ---------------------------------------------------------------------
# The broker runs with group.initial.rebalance.delay.ms=0 (Kafka's default is 3000), so the
# join and rebalance times below carry no deliberate broker wait.
GVA_ROWS=""
RB_ROWS=""
KIP848=no
if has groups; then
    KIP848=$("$GEN" has-kip848 --bootstrap "$BOOT" | sed 's/kip848=//')
    PROTOCOLS="classic"
    [[ $KIP848 == yes ]] && PROTOCOLS="classic consumer"
    for proto in $PROTOCOLS; do
        log "group-vs-assign protocol=$proto records=$GROUP_RECORDS rounds=$GROUP_ROUNDS"
        G=$("$GEN" group-vs-assign --bootstrap "$BOOT" --count "$GROUP_RECORDS" --rounds "$GROUP_ROUNDS" --protocol "$proto")
        echo "$G" | sed 's/^/[bench]   /' >&2
        S=$(echo "$G" | grep 'summary=1')
        GVA_ROWS+="| $proto | $(field "$S" records) | $(field "$S" rounds) | $(field "$S" assign_mib_per_s) | $(field "$S" group_mib_per_s) | **$(field "$S" ratio)** | $(field "$S" join_ms) | $(field "$S" group_incl_join_mib_per_s) | $(field "$S" ratio_incl_join) | $(field "$S" commits) | $(field "$S" assign_runs) | $(field "$S" group_runs) |"$'\n'
    done
    # Classic members learn of a rebalance on their next heartbeat (heartbeat.interval.ms,
    # librdkafka default 3000): the 100 ms runs show how much of the wall time that is.
    RB_CASES="classic:range:default classic:cooperative-sticky:default classic:range:100 classic:cooperative-sticky:100"
    [[ $KIP848 == yes ]] && RB_CASES+=" consumer:uniform:default"
    for case in $RB_CASES; do
        IFS=: read -r proto assignor hb <<<"$case"
        hb_arg=()
        [[ $hb != default ]] && hb_arg=(--heartbeat-ms "$hb")
        log "rebalance protocol=$proto assignor=$assignor heartbeat=$hb"
        R=$("$GEN" rebalance --bootstrap "$BOOT" --partitions 100 --members 10 --protocol "$proto" --assignor "$assignor" "${hb_arg[@]}")
        echo "$R" | sed 's/^/[bench]   /' >&2
        S=$(echo "$R" | grep 'summary=1')
        L=$(python3 "$ROOT/bench/group_log.py" "$BROKER_LOG" "$(field "$S" group)")
        log "  broker log: $L"
        RB_ROWS+="| $proto | $assignor | $(field "$S" heartbeat_ms) | $(field "$S" join_secs) | $(field "$S" add_secs) | $(field "$S" remove_secs) | $(field "$L" rebalances) | $(field "$L" rejoin_wait_total_ms) | $(field "$L" sync_max_ms) |"$'\n'
    done
fi

# ---- cluster: replication factor 3 --------------------------------------------------------
# A 3-node cluster (`kavka cluster up`: three combined broker+controller processes) next to a
# single broker of the same binary: produce throughput with RF 3 vs one node, then the time
# produce is interrupted when a partition leader is killed with SIGKILL (kavka-bench failover).

# A base port P such that P..P+2 (clients) and P+100..P+102 (controllers) are free on 127.0.0.1.
free_cluster_base() {
    python3 -c '
import random, socket
for _ in range(200):
    base = random.randrange(20000, 40000)
    socks = []
    try:
        for p in [base, base + 1, base + 2, base + 100, base + 101, base + 102]:
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks: s.close()
    print(base); break
else:
    raise SystemExit("no free port range")'
}
# cluster_start DIR: starts `kavka cluster up --nodes 3` on DIR with empty data directories
# (server.properties kept; the previous run's node logs moved to DIR/logs/); sets
# CLUSTER_UP_PID, CLUSTER_NODE_PIDS and CLUSTER_BOOT.
CLUSTER_STARTS=0
cluster_start() {
    local dir=$1 base
    mkdir -p "$dir/logs"
    if [[ -f "$dir/base-port" ]]; then base=$(cat "$dir/base-port"); else base=$(free_cluster_base); echo "$base" >"$dir/base-port"; fi
    CLUSTER_STARTS=$((CLUSTER_STARTS + 1))
    for n in "$dir"/node-*; do
        [[ -d "$n" ]] || continue
        rm -rf "$n/data"
        [[ -f "$n/kavka.log" ]] && mv "$n/kavka.log" "$dir/logs/start$CLUSTER_STARTS-$(basename "$n").log"
    done
    "$KAVKA_BIN" cluster up --nodes 3 --dir "$dir" --base-port "$base" >"$dir/up.out" 2>"$dir/up.err" &
    CLUSTER_UP_PID=$!
    for _ in $(seq 900); do
        grep -q '^bootstrap.servers=' "$dir/up.out" 2>/dev/null && break
        if ! kill -0 "$CLUSTER_UP_PID" 2>/dev/null; then cat "$dir/up.err" >&2; exit 1; fi
        sleep 0.1
    done
    CLUSTER_BOOT=$(sed -n 's/^bootstrap.servers=//p' "$dir/up.out")
    if [[ -z "$CLUSTER_BOOT" ]]; then
        log "cluster in $dir not ready; cluster up's output and the nodes' log tails:"
        cat "$dir/up.out" "$dir/up.err" >&2
        for n in "$dir"/node-*; do tail -5 "$n/kavka.log" >&2 2>/dev/null || true; done
        exit 1
    fi
    CLUSTER_NODE_PIDS=$(cat "$dir"/node-*/pid)
    log "cluster $dir: up pid $CLUSTER_UP_PID, nodes $(echo $CLUSTER_NODE_PIDS), bootstrap $CLUSTER_BOOT"
}
# cluster_prepare DIR [key=value...]: generates DIR's server.properties (one start and stop of
# cluster up) and appends the given settings to every node's file.
cluster_prepare() {
    local dir=$1
    shift
    cluster_start "$dir"
    cluster_stop
    for n in "$dir"/node-*; do
        for kv in "$@"; do echo "$kv" >>"$n/server.properties"; done
    done
}
# CPU accounting: cpu_snap PID... prints "total_jiffies busy_jiffies pid_jiffies..." (all cores);
# cpu_delta "BEFORE" "AFTER" prints machine busy % and the cores used by the listed pids together
# and by everything else (the load generator plus other work on the machine).
cpu_snap() {
    python3 - "$@" <<'EOF'
import sys
f = open("/proc/stat").readline().split()[1:]
v = list(map(int, f))
total = sum(v[:8]); busy = total - v[3] - v[4]
out = [total, busy]
for pid in sys.argv[1:]:
    try:
        st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        out.append(int(st[11]) + int(st[12]))
    except OSError:
        out.append(0)
print(" ".join(map(str, out)))
EOF
}
cpu_delta() {
    python3 - "$1" "$2" "$(nproc)" <<'EOF'
import sys
a = list(map(int, sys.argv[1].split())); b = list(map(int, sys.argv[2].split())); n = int(sys.argv[3])
d = [y - x for x, y in zip(a, b)]
total, busy, procs = d[0], d[1], d[2:]
cores = lambda j: j / total * n if total else 0.0
print(f"cpu_busy_pct={100 * busy / total if total else 0:.0f} broker_cores={cores(sum(procs)):.2f} rest_cores={cores(busy - sum(procs)):.2f}")
EOF
}

CL_TPUT_ROWS=""
CL_LAT_ROWS=""
CL_SUMMARY=""
FO_ROWS=""
FO_SUMMARY=""
if has cluster; then
    stop_broker
    if (( CL_ROUNDS > 0 )); then
    start_broker kavka-single
    SINGLE_BOOT=$BOOT
    SINGLE_PID=$BROKER_PID
    CL_DIR="$RUN_DIR/cluster-9000"
    cluster_prepare "$CL_DIR"
    cluster_start "$CL_DIR"
    TPUT_FILE="$RUN_DIR/cluster-tput.txt"
    : >"$TPUT_FILE"
    # cl_run single|cluster ACKS PARTITIONS COUNT [produce args...]: one produce run to a fresh topic.
    cl_run() {
        local target=$1 acks=$2 parts=$3 count=$4 boot pids rf
        shift 4
        if [[ $target == single ]]; then boot=$SINGLE_BOOT pids=$SINGLE_PID rf=1; else boot=$CLUSTER_BOOT pids=$CLUSTER_NODE_PIDS rf=3; fi
        local topic="cl-$target-a$acks-p$parts-$RANDOM$RANDOM"
        "$GEN" create-topic --bootstrap "$boot" --topic "$topic" --partitions "$parts" --replication-factor "$rf" --config "min.insync.replicas=$((rf < 2 ? 1 : 2))"
        sleep 1 # let every replica's fetcher start before the clock runs
        local before after
        # shellcheck disable=SC2086 # pids is a list
        before=$(cpu_snap $pids)
        P=$("$GEN" produce --bootstrap "$boot" --topic "$topic" --size 1024 --count "$count" --acks "$acks" "$@")
        # shellcheck disable=SC2086
        after=$(cpu_snap $pids)
        CL_CPU=$(cpu_delta "$before" "$after")
        log "  $target acks=$acks partitions=$parts: $P $CL_CPU"
    }
    for round in $(seq "$CL_ROUNDS"); do
        for parts in $CL_PARTITIONS; do
            if (( round % 2 )); then order="single:1 cluster:all cluster:1"; else order="cluster:1 cluster:all single:1"; fi
            for run in $order; do
                IFS=: read -r target acks <<<"$run"
                cl_run "$target" "$acks" "$parts" "$CL_RECORDS"
                echo "$target $acks $parts $(field "$P" mib_per_s) $(field "$P" rec_per_s) $(field "$P" p50_ms) $(field "$P" p99_ms) $(field "$P" errors) $(field "$CL_CPU" cpu_busy_pct) $(field "$CL_CPU" broker_cores) $(field "$CL_CPU" rest_cores)" >>"$TPUT_FILE"
                CL_TPUT_ROWS+="| $round | $target | $parts | $acks | $(field "$P" rec_per_s) | $(field "$P" mib_per_s) | $(field "$P" p50_ms) | $(field "$P" p99_ms) | $(field "$P" errors) | $(field "$CL_CPU" cpu_busy_pct) | $(field "$CL_CPU" broker_cores) | $(field "$CL_CPU" rest_cores) |"$'\n'
            done
        done
    done
    CL_SUMMARY=$(python3 - "$TPUT_FILE" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    t, acks, parts, mib = line.split()[:4]
    runs.setdefault((t, acks, parts), []).append(float(mib))
med = {k: statistics.median(v) for k, v in runs.items()}
for parts in sorted({k[2] for k in runs}, key=int):
    s = med.get(("single", "1", parts)); c = med.get(("cluster", "all", parts)); c1 = med.get(("cluster", "1", parts))
    if s and c:
        print(f"| {parts} | {s:.1f} | {c:.1f} | {c1:.1f} | **{100 * c / s:.0f}%** | {100 * c1 / s:.0f}% | {'met' if c / s >= 0.4 else 'not met'} |")
bs = max(v for k, v in med.items() if k[:2] == ("single", "1"))
bc = max(v for k, v in med.items() if k[:2] == ("cluster", "all"))
print(f"| best of each | {bs:.1f} | {bc:.1f} | | **{100 * bc / bs:.0f}%** | | {'met' if bc / bs >= 0.4 else 'not met'} |")
EOF
)
    # Latency below saturation: 2,000 records/s of 1 KiB for 5 s, linger.ms=0, one partition.
    for run in single:1 cluster:1 cluster:all; do
        IFS=: read -r target acks <<<"$run"
        cl_run "$target" "$acks" 1 10000 --rate 2000 --linger-ms 0
        CL_LAT_ROWS+="| $target | $acks | $(field "$P" p50_ms) | $(field "$P" p99_ms) | $(field "$P" max_ms) | $(field "$P" errors) |"$'\n'
    done
    cluster_stop
    stop_broker
    fi

    # Failover: a fresh cluster per repetition (the killed node is not restarted).
    FO_FILE="$RUN_DIR/failover.txt"
    : >"$FO_FILE"
    for st in $FO_SESSIONS; do
        dir="$RUN_DIR/cluster-$st"
        if [[ ! -d $dir ]]; then
            if [[ $st == 9000 ]]; then cluster_prepare "$dir"; else cluster_prepare "$dir" "broker.session.timeout.ms=$st"; fi
        fi
        for rep in $(seq "$FO_REPS"); do
            for victim in leader leader-controller; do
                cluster_start "$dir"
                log "failover session=$st victim=$victim rep=$rep"
                F=$("$GEN" failover --cluster-dir "$dir" --bootstrap "$CLUSTER_BOOT" --victim "$victim") || F="mode=failover victim=$victim failed=1"
                log "  $F"
                cluster_stop
                echo "$F" >>"$FO_FILE"
                FO_ROWS+="| $(field "$F" session_timeout_ms) | $victim | $rep | $(field "$F" killed_was_controller) | $(field "$F" failover_ms) | $(field "$F" ack_gap_ms) | $(field "$F" fenced_ms) | $(field "$F" client_ms) | $(field "$F" controller_ms) | $(field "$F" errors) | $(field "$F" met) |"$'\n'
            done
        done
    done
    FO_SUMMARY=$(python3 - "$FO_FILE" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
    if "failover_ms" not in kv:
        continue
    runs.setdefault((int(kv["session_timeout_ms"]), kv["victim"]), []).append(kv)
def col(rs, k):
    return [float(r[k]) for r in rs if r.get(k, "none") != "none"]
def mm(v):
    return f"{statistics.median(v):.0f} / {max(v):.0f}" if v else "-"
for (st, victim), rs in sorted(runs.items(), key=lambda x: (-x[0][0], x[0][1])):
    f = col(rs, "failover_ms"); target = st + 2000
    missing = len(rs) - len(f)
    verdict = "met" if f and not missing and max(f) <= target else ("median met, max not" if f and statistics.median(f) <= target else "not met")
    print(f"| {st} | {victim} | {len(rs)} | **{mm(f)}** | {mm(col(rs, 'ack_gap_ms'))} | {mm(col(rs, 'fenced_ms'))} | {mm(col(rs, 'client_ms'))} | {mm(col(rs, 'controller_ms'))} | {target} | {verdict} |")
EOF
)
fi

# ---- log cleaner -------------------------------------------------------------------------
# Its own broker: log.cleaner.backoff.ms=100 (Kafka's default is 15000) so that the cleaner
# starts within 0.1 s of the trigger (see bench/src/compaction.rs), and none of the other
# sections' data in its log directory or the page cache.
CMP_A=""
CMP_B_ROWS=""
CMP_S=""
if has compaction; then
    stop_broker
    # shellcheck disable=SC2086 # CMP_OVERRIDES is a space-separated list on purpose
    start_broker kavka-compaction "log.cleaner.backoff.ms=100" $CMP_OVERRIDES
    log "compaction: phase A $CMP_MIB MiB; phase B $CMP_ROUNDS rounds of $CMP_DIRTY_MIB MiB, ${CMP_PRODUCE_SECS}s produce runs"
    C=$("$GEN" compaction --bootstrap "$BOOT" --broker-log "$BROKER_LOG" --broker-pid "$BROKER_PID" \
        --mib "$CMP_MIB" --dirty-mib "$CMP_DIRTY_MIB" --rounds "$CMP_ROUNDS" --produce-secs "$CMP_PRODUCE_SECS")
    echo "$C" | sed 's/^/[bench]   /' >&2
    CMP_A=$(echo "$C" | grep 'phase=a')
    CMP_S=$(echo "$C" | grep 'summary=1')
    while read -r line; do
        CMP_B_ROWS+="| $(field "$line" round) | $(field "$line" cleaner) | $(field "$line" secs) | $(field "$line" mib_per_s) | $(field "$line" overlap_pct) | $(field "$line" clean_mb_per_s) | $(field "$line" cpu_busy_pct) | $(field "$line" broker_cores) | $(field "$line" generator_cores) | $(field "$line" other_cores) |"$'\n'
    done < <(echo "$C" | grep 'cleaner=')
    stop_broker
fi

# ---- TLS and SASL ------------------------------------------------------------------------
# One broker with three client listeners (PLAINTEXT, SSL, SASL_SSL with PLAIN; certificates from
# `kavka certs`), the same load on each in rotating order: what encryption and authentication cost.
SEC_ROWS=""
SEC_SUMMARY=""
if has security; then
    stop_broker
    SEC_CERTS="$RUN_DIR/security-certs"
    "$KAVKA_BIN" certs ca --out "$SEC_CERTS" >/dev/null
    "$KAVKA_BIN" certs node --name broker --ip 127.0.0.1 --dns localhost --out "$SEC_CERTS" >/dev/null
    SEC_PORTS=("$(free_port)" "$(free_port)" "$(free_port)")
    mkdir -p "$RUN_DIR/security"
    BROKER_LOG="$RUN_DIR/security.log"
    "$KAVKA_BIN" broker \
        --override "listeners=PLAINTEXT://127.0.0.1:${SEC_PORTS[0]},SSL://127.0.0.1:${SEC_PORTS[1]},SASL_SSL://127.0.0.1:${SEC_PORTS[2]}" \
        --override "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL" \
        --override "inter.broker.listener.name=PLAINTEXT" --override "log.dirs=$RUN_DIR/security" \
        --override "ssl.keystore.type=PKCS12" --override "ssl.keystore.location=$SEC_CERTS/broker.p12" \
        --override "ssl.keystore.password=$(cat "$SEC_CERTS/broker.password")" \
        --override "sasl.enabled.mechanisms=PLAIN" \
        --override 'listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_bench="bench-secret";' \
        >"$BROKER_LOG" 2>&1 &
    BROKER_PID=$!
    for port in "${SEC_PORTS[@]}"; do
        for _ in $(seq 300); do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            kill -0 "$BROKER_PID" 2>/dev/null || { cat "$BROKER_LOG" >&2; exit 1; }
            sleep 0.1
        done
    done
    SEC_NAMES=(PLAINTEXT SSL SASL_SSL)
    SEC_CONF=(""
        "security.protocol=ssl,ssl.ca.location=$SEC_CERTS/ca.pem"
        "security.protocol=sasl_ssl,ssl.ca.location=$SEC_CERTS/ca.pem,sasl.mechanism=PLAIN,sasl.username=bench,sasl.password=bench-secret")
    SEC_RAW=""
    for round in $(seq "$SEC_ROUNDS"); do
        for k in 0 1 2; do
            i=$(( (k + round - 1) % 3 ))
            name=${SEC_NAMES[$i]}
            topic="bench-security-$name-$round-$STAMP"
            "$GEN" create-topic --bootstrap "127.0.0.1:${SEC_PORTS[0]}" --topic "$topic" --partitions 1
            log "security round $round: $name produce $SEC_RECORDS x 1 KiB, acks=1"
            P=$(KAVKA_BENCH_CLIENT_CONF="${SEC_CONF[$i]}" "$GEN" produce --bootstrap "127.0.0.1:${SEC_PORTS[$i]}" \
                --topic "$topic" --size 1024 --count "$SEC_RECORDS" --acks 1)
            log "  $P"
            C=$(KAVKA_BENCH_CLIENT_CONF="${SEC_CONF[$i]}" "$GEN" consume --bootstrap "127.0.0.1:${SEC_PORTS[$i]}" \
                --topic "$topic" --partitions 1 --count "$SEC_RECORDS")
            log "  $C"
            SEC_ROWS+="| $round | $name | $(field "$P" rec_per_s) | $(field "$P" mib_per_s) | $(field "$P" p50_ms) | $(field "$P" p99_ms) | $(field "$P" errors) | $(field "$C" mib_per_s) |"$'\n'
            SEC_RAW+="$name $(field "$P" mib_per_s) $(field "$C" mib_per_s)"$'\n'
        done
    done
    stop_broker
    SEC_SUMMARY=$(echo "$SEC_RAW" | python3 -c '
import statistics, sys
runs = {}
for line in sys.stdin:
    f = line.split()
    if len(f) == 3:
        runs.setdefault(f[0], []).append((float(f[1]), float(f[2])))
med = {k: (statistics.median(p for p, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
base = med.get("PLAINTEXT")
for name in ("PLAINTEXT", "SSL", "SASL_SSL"):
    if name in med and base:
        p, c = med[name]
        print(f"| {name} | {p:.1f} | {p / base[0] * 100:.0f}% | {c:.1f} | {c / base[1] * 100:.0f}% |")
')
fi

KAVKA_REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
# The broker may be built from uncommitted work: say so (diff-index only reads).
(cd "$ROOT" && git diff-index --quiet HEAD -- 2>/dev/null) || KAVKA_REV+=" plus uncommitted changes"

{
    echo "# Kavka benchmark run $STAMP"
    echo
    echo "- Machine: $CPU, $CORES cores, $MEM RAM, Linux $KERNEL; data on $FS"
    echo "- Kavka revision: $KAVKA_REV; broker defaults (no fsync per write: log.flush.interval.messages unset) except group.initial.rebalance.delay.ms=0 (core and groups; only affects group joins) and the log cleaner section's own settings"
    echo "- Load generator: bench/ (rdkafka 0.39 / librdkafka), linger.ms=5, batch.size=1000000, no compression, null keys; one producer process, one consumer process, on the same machine as the broker"
    echo "- Command: bench/run.sh (BENCH_SECTIONS=\"$(echo $SECTIONS)\" BENCH_RECORDS_1K=$RECORDS_1K BENCH_RECORDS_100=$RECORDS_100 BENCH_GROUP_RECORDS=$GROUP_RECORDS BENCH_GROUP_ROUNDS=$GROUP_ROUNDS BENCH_COMPACTION_MIB=$CMP_MIB BENCH_COMPACTION_DIRTY_MIB=$CMP_DIRTY_MIB BENCH_COMPACTION_ROUNDS=$CMP_ROUNDS BENCH_COMPACTION_PRODUCE_SECS=$CMP_PRODUCE_SECS BENCH_COMPACTION_OVERRIDES=\"$CMP_OVERRIDES\" BENCH_CLUSTER_RECORDS=$CL_RECORDS BENCH_CLUSTER_ROUNDS=$CL_ROUNDS BENCH_CLUSTER_PARTITIONS=\"$CL_PARTITIONS\" BENCH_FAILOVER_REPS=$FO_REPS BENCH_FAILOVER_SESSIONS=\"$FO_SESSIONS\")"
    echo
    if has core; then
    echo "## Machine limits (same run)"
    echo
    echo "| measure | result |"
    echo "|---|---|"
    echo "| sequential write, \`dd if=/dev/zero bs=1M count=1024 conv=fdatasync\` | $DD_MIB MiB/s |"
    echo "| loopback TCP, \`iperf3 -c 127.0.0.1 -t 10\` | $IPERF_MIB MiB/s |"
    echo
    echo "## Results"
    echo
    echo "Latency is send-to-acknowledgement at full load (queueing included). \"consume\" is librdkafka"
    echo "(rdkafka BaseConsumer, one thread, every record handed to the application); \"raw fetch\" is"
    echo "\`kavka-bench fetch-raw\`: Fetch v12 requests on one connection, 8 MiB per partition, records not decoded."
    echo
    echo "| record | partitions | acks | records | produce rec/s | produce MiB/s | p50 ms | p99 ms | errors | consume rec/s | consume MiB/s | raw fetch MiB/s |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    printf "%s" "$ROWS"
    echo
    echo "## Latency below saturation"
    echo
    echo "One partition, \`linger.ms=0\`, records paced at a fixed rate for 10 s; send-to-acknowledgement."
    echo
    echo "| record | acks | records/s | p50 ms | p99 ms | max ms | errors |"
    echo "|---|---|---|---|---|---|---|"
    printf "%s" "$LAT_ROWS"
    echo
    echo "## Ratios"
    echo
    echo "| target | measured |"
    echo "|---|---|"
    echo "| produce 1 KiB (best) / disk write bandwidth >= 50% | $BEST_P1K / $DD_MIB MiB/s = $P_RATIO% |"
    echo "| consume 1 KiB (best) / loopback bandwidth >= 30% | $BEST_C1K / $IPERF_MIB MiB/s = $C_RATIO% |"
    echo "| raw fetch 1 KiB (best) / loopback bandwidth | $BEST_R1K / $IPERF_MIB MiB/s = $R_RATIO% |"
    echo
    fi
    if has groups; then
    echo "## Consumer groups"
    echo
    echo "Broker started with \`group.initial.rebalance.delay.ms=0\`. KIP-848 (ApiVersions key 68) advertised: $KIP848."
    echo
    echo "### Group vs assign()"
    echo
    echo "\`kavka-bench group-vs-assign\`: one 8-partition topic of 1 KiB records read to its end by a fresh"
    echo "consumer per run, alternating assign() of every partition from offset 0 and subscribe() in a"
    echo "fresh group (auto commit every 100 ms, as librdkafka's auto commit but 50x more often)."
    echo "MiB/s is from the first record to the last for both, median of the rounds; \"ratio\" (group/assign)"
    echo "compares these. \"incl. join\" counts the group member's time from subscribe() to the first"
    echo "record too (\"join ms\", median). Every run's figure is listed in the last two columns."
    echo
    echo "| protocol | records | rounds | assign MiB/s | group MiB/s | ratio | join ms | group incl. join MiB/s | ratio incl. join | commits | assign runs | group runs |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    printf "%s" "$GVA_ROWS"
    echo
    echo "### Rebalance: 10 members, 100 partitions"
    echo
    echo "\`kavka-bench rebalance\`: 10 consumers (one process, session.timeout.ms=10000) subscribe at once;"
    echo "\"join\" is from the first subscribe() until the 10 members own all 100 partitions, each once;"
    echo "\"add\" the same after an 11th member subscribes, \"remove\" after one member closes."
    echo "From the broker's log: \"rejoin wait\" is the time the broker waited for members to rejoin"
    echo "(paced by their heartbeat interval), \"sync max\" the longest join-complete-to-stable step"
    echo "(assignment by the leader plus SyncGroup)."
    echo
    echo "| protocol | assignor | heartbeat ms | join s | add s | remove s | rebalances | rejoin wait total ms | sync max ms |"
    echo "|---|---|---|---|---|---|---|---|---|"
    printf "%s" "$RB_ROWS"
    fi
    if has cluster; then
    echo
    echo "## Cluster (replication factor 3)"
    echo
    echo "\`kavka cluster up --nodes 3\`: three combined broker+controller processes on this machine, generated"
    echo "configuration (default.replication.factor=3, min.insync.replicas=2), next to one broker of the same"
    echo "binary with its defaults. Same load generator settings as above (1 KiB records, linger.ms=5,"
    echo "batch.size=1000000); fresh topic per run (cluster: replication factor 3, min.insync.replicas=2);"
    echo "$CL_RECORDS records per run, $CL_ROUNDS rounds in alternating order. CPU over each run: machine busy %"
    echo "(100 = all $CORES cores), cores used by the broker process(es) and by everything else (the load generator"
    echo "and other work on the machine)."
    echo
    echo "| round | target | partitions | acks | rec/s | MiB/s | p50 ms | p99 ms | errors | machine CPU % | broker cores | rest cores |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    printf "%s" "$CL_TPUT_ROWS"
    echo
    echo "Medians of the rounds (MiB/s); target: cluster acks=all >= 40% of single node acks=1."
    echo
    echo "| partitions | single node acks=1 | cluster acks=all | cluster acks=1 | ratio acks=all | ratio acks=1 | target |"
    echo "|---|---|---|---|---|---|---|"
    printf "%s\n" "$CL_SUMMARY"
    echo
    echo "Latency below saturation: one partition, 2,000 records/s of 1 KiB for 5 s, \`linger.ms=0\`."
    echo
    echo "| target | acks | p50 ms | p99 ms | max ms | errors |"
    echo "|---|---|---|---|---|---|"
    printf "%s" "$CL_LAT_ROWS"
    echo
    echo "### Leader failover"
    echo
    echo "\`kavka-bench failover\` (bench/src/failover.rs), a fresh 3-node cluster per run: one partition, replicas"
    echo "assigned so that the victim leads (\`leader\`: a node that is not the active controller;"
    echo "\`leader-controller\`: the active controller), min.insync.replicas=2; 100-byte records, acks=all,"
    echo "linger.ms=0, 200/s; SIGKILL to the leader after 3 s. failover = kill to the first acknowledgement of a"
    echo "record sent after the kill; ack gap = longest time without any acknowledgement; fenced = kill to the"
    echo "controller's \"brokers fenced: session expired\" log line (the dead leader's partitions move then);"
    echo "client = failover - fenced (new leader reaches the client: metadata, retry backoff); controller = kill to"
    echo "a new active controller (controller case). Target: failover <= broker.session.timeout.ms + 2000."
    echo
    echo "| session timeout ms | victim | runs | failover ms (median / max) | ack gap ms | fenced ms | client ms | controller ms | target ms | target |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    printf "%s\n" "$FO_SUMMARY"
    echo
    echo "| session timeout ms | victim | rep | killed was controller | failover ms | ack gap ms | fenced ms | client ms | controller ms | errors | met |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    printf "%s" "$FO_ROWS"
    fi
    if has security; then
    echo
    echo "## TLS and SASL"
    echo
    echo "One broker, three client listeners: PLAINTEXT, SSL (TLS 1.3, ECDSA P-256 certificate from \`kavka certs\`,"
    echo "no client certificate) and SASL_SSL (the same TLS, then SASL PLAIN). Per run: a fresh one-partition"
    echo "topic, $SEC_RECORDS records of 1 KiB produced with acks=1 (linger.ms=5, batch.size=1000000), then"
    echo "consumed with assign(); $SEC_ROUNDS rounds, the listener order rotating. The client is librdkafka"
    echo "(OpenSSL) in \`kavka-bench\`."
    echo
    echo "| round | listener | produce rec/s | produce MiB/s | p50 ms | p99 ms | errors | consume MiB/s |"
    echo "|---|---|---|---|---|---|---|---|"
    printf "%s" "$SEC_ROWS"
    echo
    echo "Medians of the rounds, and each as a share of PLAINTEXT:"
    echo
    echo "| listener | produce MiB/s | of PLAINTEXT | consume MiB/s | of PLAINTEXT |"
    echo "|---|---|---|---|---|"
    printf "%s\n" "$SEC_SUMMARY"
    fi
    if has compaction; then
    echo
    echo "## Log cleaner"
    echo
    echo "Own broker: \`log.cleaner.backoff.ms=100\`${CMP_OVERRIDES:+, \`$CMP_OVERRIDES\`}, other settings default (one cleaner"
    echo "thread, 128 MiB dedupe buffer, no I/O throttle unless set above). Compacted topics: 1 partition,"
    echo "\`segment.bytes=16777216\`, \`min.cleanable.dirty.ratio=0.5\`, 1 KiB values, keys drawn uniformly from"
    echo "10% of the record count; loaded with \`min.compaction.lag.ms=3600000\` (cleaner held off), then"
    echo "triggered by setting it to 0 (AlterConfigs). Dirty pages are written back (\`sync\`) before each"
    echo "measured window; the loaded data is read by the cleaner from the page cache."
    echo "MB = 10^6 bytes. \"cleaned MB/s\" = read_bytes / elapsed_ms summed over the broker's \"log compacted\""
    echo "lines (read_bytes: the log read by the rewrite pass; elapsed_ms also covers the offset-map pass,"
    echo "which reads the dirty part once more)."
    echo
    echo "### Phase A: cleaner throughput"
    echo
    echo "| loaded | records | unique keys | rounds | read MB | written MB | clean ms | cleaned MB/s | cleaned MiB/s | trigger to done s | MB/s incl. trigger |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    echo "| $CMP_MIB MiB | $(field "$CMP_A" records) | $(field "$CMP_A" unique_keys) | $(field "$CMP_A" clean_rounds) | $(python3 -c "print(f'{$(field "$CMP_A" read_bytes)/1e6:.1f}')") | $(python3 -c "print(f'{$(field "$CMP_A" written_bytes)/1e6:.1f}')") | $(field "$CMP_A" clean_ms) | **$(field "$CMP_A" clean_mb_per_s)** | $(field "$CMP_A" clean_mib_per_s) | $(field "$CMP_A" trigger_to_last_s) | $(field "$CMP_A" wall_mb_per_s) |"
    echo
    echo "### Phase B: produce to another topic, cleaner idle vs busy"
    echo
    echo "Each run produces 1 KiB records (null keys, acks=1, linger.ms=5, 64 MiB client queue) to a fresh"
    echo "1-partition topic for ${CMP_PRODUCE_SECS} s, then flushes; MiB/s counts the flush. Every round first loads"
    echo "a fresh $CMP_DIRTY_MIB MiB dirty compacted topic, then runs \"idle\" (cleaner held off) and \"busy\" (cleaning"
    echo "triggered 0.15 s before the run), in alternating order. \"overlap\" is the share of the busy run"
    echo "during which the cleaner was working (from the log lines' timestamps); \"cleaned MB/s\" is the cleaner's"
    echo "rate in that round. CPU during each run: machine busy % (100 = all $CORES cores), and cores used by"
    echo "the broker, the load generator and everything else on the machine (other engineers' work)."
    echo
    echo "| round | cleaner | secs | produce MiB/s | overlap % | cleaned MB/s | machine CPU % | broker cores | generator cores | other cores |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    printf "%s" "$CMP_B_ROWS"
    echo
    echo "| target | measured |"
    echo "|---|---|"
    echo "| cleaner >= 50 MB/s (1 KiB records, 10% unique keys) | $(field "$CMP_A" clean_mb_per_s) MB/s (phase A); $(field "$CMP_S" busy_clean_mb_per_s) MB/s while producing (phase B) |"
    echo "| produce drop while cleaning < 25% | idle $(field "$CMP_S" idle_mib_per_s) MiB/s, busy $(field "$CMP_S" busy_mib_per_s) MiB/s (means): **$(field "$CMP_S" drop_pct)%**; per round $(field "$CMP_S" round_drops)%, median $(field "$CMP_S" median_round_drop_pct)% |"
    fi
} >"$OUT"
cat "$OUT"
log "written to $OUT"
