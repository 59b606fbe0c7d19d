#!/usr/bin/env bash
# Runs librdkafka's own test suite (the tests/ directory of the librdkafka source shipped in the
# rdkafka-sys crate, the version in Cargo.lock) against a 3-node Kavka cluster, in quick mode
# (test-runner -Q), cluster tests only (-L: the broker-less tests against librdkafka's mock
# cluster say nothing about Kavka). Each test number runs in its own test-runner process with a
# time limit. The cluster is set up like the suite's "default" scenario: 3 brokers,
# num.partitions=4, default.replication.factor=3, auto topic creation on, min.insync.replicas=1.
#
# The script fails only on a failure that is not listed in compat/librdkafka/known-failures.txt.
# See docs/compatibility.md for the reason behind each listed test.
#
# Usage: scripts/librdkafka-suite.sh
# Environment:
#   KAVKA_BIN                     broker binary (default: build target/release/kavka)
#   LIBRDKAFKA_TESTS              "quick" (default: the test numbers in
#                                 compat/librdkafka/quick-tests.txt, about 3.5 minutes), "all"
#                                 (every cluster test, listed failures included, about 13 minutes
#                                 with LIBRDKAFKA_SUITE_TIMEOUT=150), or test numbers
#                                 separated by commas or spaces ("0001,0012 0081")
#   LIBRDKAFKA_SUITE_BUILD_DIR    where librdkafka and its test-runner are built (cached)
#                                 (default: target/librdkafka-suite)
#   LIBRDKAFKA_SUITE_TIMEOUT      seconds per test number (default 300); the test-runner also
#                                 enforces each test's own time limit
#   LIBRDKAFKA_SUITE_KAFKA_VERSION  broker version told to the suite (default 4.0.0)
#   LIBRDKAFKA_SUITE_SCENARIO     "default" (auto topic creation on) or "noautocreate" (off; runs
#                                 the tests of that scenario, 0045's and 0107, 0111)
#   LIBRDKAFKA_SUITE_KEEP         directory to copy results, test outputs and node logs to
# Needs: gcc, g++, make, pkg-config, python3, libssl-dev, zlib1g-dev, libzstd-dev; rapidjson-dev
# too, or the statistics tests (0053, 0110) skip themselves.
set -euo pipefail

ROOT=${KAVKA_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
COMPAT="$ROOT/compat/librdkafka"
ALLOWLIST="$COMPAT/known-failures.txt"
QUICKLIST="$COMPAT/quick-tests.txt"
SELECTION=${LIBRDKAFKA_TESTS:-quick}
PER_TEST_TIMEOUT=${LIBRDKAFKA_SUITE_TIMEOUT:-300}
KAFKA_VERSION=${LIBRDKAFKA_SUITE_KAFKA_VERSION:-4.0.0}
BUILD_DIR=${LIBRDKAFKA_SUITE_BUILD_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/librdkafka-suite}
SCENARIO=${LIBRDKAFKA_SUITE_SCENARIO:-default}
case "$SCENARIO" in
    default) AUTO_CREATE=true ;;
    noautocreate) AUTO_CREATE=false ;;
    *) echo "[librdkafka-suite] unsupported LIBRDKAFKA_SUITE_SCENARIO=$SCENARIO (default or noautocreate)" >&2; exit 2 ;;
esac

log() { echo "[librdkafka-suite] $*" >&2; }

for tool in gcc g++ make pkg-config python3 timeout setsid; do
    command -v "$tool" >/dev/null || { log "missing tool: $tool"; exit 2; }
done

# The librdkafka the project links is the one inside rdkafka-sys, at the version in Cargo.lock.
SYS_VERSION=$(awk '/^name = "rdkafka-sys"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock")
[[ -n "$SYS_VERSION" ]] || { log "rdkafka-sys not found in Cargo.lock"; exit 2; }
find_src() { ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"rdkafka-sys-$SYS_VERSION/librdkafka" 2>/dev/null | head -1; }
SRC=$(find_src)
if [[ -z "$SRC" ]]; then
    (cd "$ROOT" && cargo fetch >/dev/null)
    SRC=$(find_src)
fi
[[ -f "$SRC/tests/test.c" ]] || { log "no tests/ in the librdkafka source of rdkafka-sys $SYS_VERSION at '$SRC'"; exit 2; }

# A private copy, built once: the registry source must stay pristine.
LRK="$BUILD_DIR/librdkafka-$SYS_VERSION"
TESTS_DIR="$LRK/tests"
if [[ ! -x "$TESTS_DIR/test-runner" || ! -f "$LRK/.kavka-built" ]]; then
    log "building librdkafka $SYS_VERSION and its test-runner in $LRK (about 3 minutes on 2 cores)"
    rm -rf "$LRK"
    mkdir -p "$BUILD_DIR"
    cp -a "$SRC" "$LRK"
    chmod -R u+w "$LRK"
    jobs=$(nproc 2>/dev/null || echo 2)
    (cd "$LRK" \
        && ./configure --no-download --disable-gssapi --disable-lz4-ext --disable-curl \
        && make -j"$jobs" libs \
        && make -j"$jobs" -C tests test-runner) >"$BUILD_DIR/build.log" 2>&1 \
        || { tail -40 "$BUILD_DIR/build.log" >&2; log "build failed, see $BUILD_DIR/build.log"; exit 2; }
    touch "$LRK/.kavka-built"
fi

if [[ -z "${KAVKA_BIN:-}" ]]; then
    log "building kavka (release)"
    (cd "$ROOT" && cargo build --release --bin kavka >&2)
    KAVKA_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/kavka"
fi
[[ -x "$KAVKA_BIN" ]] || { log "no broker binary at $KAVKA_BIN"; exit 2; }

WORK=$(mktemp -d -t kavka-librdkafka-suite.XXXXXX)
CLUSTER_PID=""
stop_cluster() {
    [[ -n "$CLUSTER_PID" ]] || return 0
    if kill -0 "$CLUSTER_PID" 2>/dev/null; then
        kill -TERM "$CLUSTER_PID" 2>/dev/null || true
        for _ in $(seq 300); do kill -0 "$CLUSTER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CLUSTER_PID" 2>/dev/null || true
    fi
    # Nodes the supervisor did not stop (it was killed, or a node hung): by their pid files.
    local f pid
    for f in "$WORK"/cluster/node-*/pid; do
        [[ -f "$f" ]] || continue
        pid=$(cat "$f")
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            sleep 2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    CLUSTER_PID=""
}
cleanup() {
    stop_cluster
    if [[ -n "${LIBRDKAFKA_SUITE_KEEP:-}" ]]; then
        mkdir -p "$LIBRDKAFKA_SUITE_KEEP"
        cp -r "$WORK/results.txt" "$WORK/out" "$LIBRDKAFKA_SUITE_KEEP/" 2>/dev/null || true
        for d in "$WORK"/cluster/node-*; do
            [[ -f "$d/kavka.log" ]] && cp "$d/kavka.log" "$LIBRDKAFKA_SUITE_KEEP/$(basename "$d").log"
        done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Three consecutive free client ports and the three controller ports 100 above them.
BASE_PORT=$(python3 - <<'EOF'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    p = random.randrange(20000, 30000)
    if all(free(q) for q in (p, p + 1, p + 2, p + 100, p + 101, p + 102)):
        print(p)
        break
EOF
)
[[ -n "$BASE_PORT" ]] || { log "no free ports found"; exit 2; }

start_cluster() {
    : >"$WORK/cluster.out"
    # Own session: a timed-out test-runner or Ctrl-C must not reach the nodes; the trap stops them.
    setsid "$KAVKA_BIN" cluster up --nodes 3 --dir "$WORK/cluster" --base-port "$BASE_PORT" \
        >"$WORK/cluster.out" 2>&1 &
    CLUSTER_PID=$!
    for _ in $(seq 900); do
        grep -q '^bootstrap.servers=' "$WORK/cluster.out" && return 0
        kill -0 "$CLUSTER_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$WORK/cluster.out" >&2
    log "the cluster did not come up"
    exit 2
}

# `cluster up` writes each node's server.properties once and reuses it: start once to have them
# written, then set the suite's default scenario and start again. min.insync.replicas goes back
# to Kafka's default of 1 (`cluster up` writes 2), as in the suite's trivup clusters: many tests
# create topics with replication factor 1 and produce with acks=all, which min.insync.replicas=2
# answers with NOT_ENOUGH_REPLICAS on Kafka too.
start_cluster
stop_cluster
for i in 1 2 3; do
    props="$WORK/cluster/node-$i/server.properties"
    [[ -f "$props" ]] || { log "no $props"; exit 2; }
    sed -i -e '/^num\.partitions=/d' -e '/^default\.replication\.factor=/d' \
        -e '/^auto\.create\.topics\.enable=/d' -e '/^min\.insync\.replicas=/d' \
        -e '/^authorizer\.class\.name=/d' -e '/^super\.users=/d' -e '/^allow\.everyone/d' "$props"
    printf '%s\n' num.partitions=4 default.replication.factor=3 auto.create.topics.enable=$AUTO_CREATE \
        min.insync.replicas=1 >>"$props"
    # ACLs on, as in the suite's own clusters, so that the ACL admin tests (0081) can run; every client is
    # User:ANONYMOUS on these PLAINTEXT listeners, and may do everything.
    printf '%s\n' authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer \
        super.users=User:ANONYMOUS allow.everyone.if.no.acl.found=true >>"$props"
done
start_cluster
BOOTSTRAP=$(sed -n 's/^bootstrap.servers=//p' "$WORK/cluster.out" | head -1)
log "3-node cluster (supervisor pid $CLUSTER_PID) at $BOOTSTRAP"
printf 'bootstrap.servers=%s\n' "$BOOTSTRAP" >"$WORK/test.conf"

# The suite's test table: "number name flags scenarios" per test.
python3 - "$TESTS_DIR/test.c" >"$WORK/tests.txt" <<'EOF'
import re, sys
src = open(sys.argv[1]).read()
body = src[src.index("struct test tests[] = {"):]
body = body[:body.index("{NULL}}")]
starts = [m.start() for m in re.finditer(r"_TEST\(", body)] + [len(body)]
for a, b in zip(starts, starts[1:]):
    entry = body[a:b]
    m = re.match(r"_TEST\(\s*(\d{4})_(\w+)\s*,\s*([^,)]*)", entry)
    if not m:
        continue
    flags = re.sub(r"\s+", "", m.group(3)) or "0"
    sc = re.search(r'\.scenario\s*=\s*"([^"]*)"', entry)
    print(m.group(1), m.group(1) + "_" + m.group(2), flags, sc.group(1) if sc else "default")
EOF
# Numbers with at least one test that needs a cluster (not TEST_F_LOCAL, not manual).
CLUSTER_NUMBERS=$(awk '$3 !~ /TEST_F_LOCAL|TEST_F_MANUAL/ { print $1 }' "$WORK/tests.txt" | sort -u)

case "$SELECTION" in
    quick) NUMBERS=$(grep -Eo '^[0-9]{4}' "$QUICKLIST" | sort -u) ;;
    all) NUMBERS=$CLUSTER_NUMBERS ;;
    *) NUMBERS=$(echo "$SELECTION" | tr ', ' '\n\n' | grep -E '^[0-9]{4}$' | sort -u) ;;
esac
[[ -n "$NUMBERS" ]] || { log "no tests selected by LIBRDKAFKA_TESTS=$SELECTION"; exit 2; }

declare -A KNOWN=()
if [[ -f "$ALLOWLIST" ]]; then
    while read -r num _; do
        [[ -z "$num" || "$num" == \#* ]] && continue
        KNOWN[$num]=1
    done <"$ALLOWLIST"
fi

# Classifies one test number from the runner's JSON report and output:
# prints "status detail", status one of pass, fail, skipped.
classify() {
    python3 - "$1" "$2" "$3" "$WORK/tests.txt" "$SCENARIO" <<'EOF'
import json, re, sys
num, report, out, table, scenario = sys.argv[1:6]
scenarios, flags = {}, {}
for line in open(table):
    f = line.split()
    if len(f) == 4:
        flags[f[1]], scenarios[f[1]] = f[2], f[3]
try:
    text = open(out, errors="replace").read()
except OSError:
    text = ""
text = re.sub(r"\x1b\[[0-9;]*m|\x1b\(B", "", text)
try:
    tests = json.load(open(report))["tests"]
except Exception:
    tests = None
if tests is None:
    print("fail no-report")
    sys.exit()
mine = {k: v for k, v in tests.items() if k.startswith(num + "_")}
states = {k: v["state"] for k, v in mine.items()}
failed = [k for k, s in states.items() if s in ("FAILED", "RUNNING")]
passed = [k for k, s in states.items() if s == "PASSED"]
def summary_text(name, state):
    # The summary table: "| <name> | <STATE> | <secs> | <failure or skip reason>"
    m = re.search(r"^\|[ \t]*" + re.escape(name) + r"[ \t]*\|[ \t]*" + state
                  + r"[ \t]*\|[^|\n]*\|[ \t]*([^\n]*)", text, re.M)
    return m.group(1).strip() if m else ""
def skip_reason(name):
    m = re.search(r"^\[" + re.escape(name) + r"\s*/[^]]*\] WARN: SKIPPING TEST: ([^\n\[]*)", text, re.M)
    reason = (m.group(1).strip() if m else "") or summary_text(name, "SKIPPED")
    if reason == "Filtered due to negative test flags":
        if "TEST_F_LOCAL" in flags.get(name, ""):
            reason = "broker-less test, not run (-L)"
        elif "TEST_F_KNOWN_ISSUE" in flags.get(name, ""):
            reason = "flagged TEST_F_KNOWN_ISSUE by librdkafka, not run"
    if not reason and scenario not in scenarios.get(name, "default").split(","):
        reason = "needs scenario " + scenarios.get(name) + " (LIBRDKAFKA_SUITE_SCENARIO)"
    return reason
if failed:
    reasons = []
    for name in failed:
        # '### Test "<name> (<subtest>)" failed at <file>:<line>:<func>() at <date>: ###' and,
        # on the next line, the reason.
        m = re.search(r'### Test "' + re.escape(name) + r'( \([^\n]*\))?" failed at (\S+?)\(\) at [^\n]*\n([^\n]*)', text)
        if m:
            reasons.append(f"{name}{m.group(1) or ''}: {m.group(2)}: {m.group(3).strip()}")
        else:
            reasons.append(f"{name}: {summary_text(name, states[name]) or states[name]}")
    print("fail " + "; ".join(reasons)[:500])
elif passed:
    skipped = [f"{k} skipped ({skip_reason(k)})" for k, s in states.items() if s == "SKIPPED" and skip_reason(k)]
    print("pass " + ", ".join(passed) + ("; " + "; ".join(skipped) if skipped else ""))
else:
    print("skipped " + "; ".join(f"{k}: {skip_reason(k) or states[k]}" for k in states)[:500])
EOF
}

mkdir -p "$WORK/out" "$WORK/reports"
RESULTS="$WORK/results.txt"
: >"$RESULTS"
SUITE_START=$(date +%s)
for num in $NUMBERS; do
    if ! grep -qx "$num" <<<"$CLUSTER_NUMBERS"; then
        echo "$num skipped 0s not a cluster test (local/mock or manual)" >>"$RESULTS"
        continue
    fi
    if ! kill -0 "$CLUSTER_PID" 2>/dev/null; then
        log "the cluster supervisor exited before test $num; last lines of node logs:"
        tail -n 20 "$WORK"/cluster/node-*/kavka.log >&2 || true
        exit 1
    fi
    start=$(date +%s)
    rc=0
    (cd "$TESTS_DIR" && env LD_LIBRARY_PATH="$LRK/src:$LRK/src-cpp" \
        RDKAFKA_TEST_CONF="$WORK/test.conf" TEST_KAFKA_VERSION="$KAFKA_VERSION" \
        TESTS="$num" TEST_REPORT="$WORK/reports/$num.json" RDKAFKA_GITVER="$SYS_VERSION" \
        timeout --kill-after=10 "$PER_TEST_TIMEOUT" ./test-runner -Q -L -s "$SCENARIO" \
        >"$WORK/out/$num.txt" 2>&1) || rc=$?
    secs=$(( $(date +%s) - start ))
    if [[ $rc -ne 0 && $secs -ge $PER_TEST_TIMEOUT ]]; then
        status=fail
        detail="no result within LIBRDKAFKA_SUITE_TIMEOUT=${PER_TEST_TIMEOUT}s (exit $rc)"
    elif [[ ! -s "$WORK/reports/$num.json" ]]; then
        status=fail
        detail="test-runner exited with status $rc without a report (crash?)"
    else
        read -r status detail < <(classify "$num" "$WORK/reports/$num.json" "$WORK/out/$num.txt")
        # The runner exits non-zero on failures; a crash with a passing report is a failure too.
        [[ "$status" == pass && $rc -ne 0 ]] && { status=fail; detail="exit $rc; $detail"; }
    fi
    known=${KNOWN[$num]:-0}
    case "$status" in
        fail)
            if [[ "$known" == 1 ]]; then
                status=fail-known
            else
                log "UNEXPECTED failure: $num (${secs}s): $detail"
            fi ;;
        pass) [[ "$known" == 1 ]] && status=pass-but-listed ;;
    esac
    echo "$num $status ${secs}s $detail" >>"$RESULTS"
    log "$num $status ${secs}s"
done
ELAPSED=$(( $(date +%s) - SUITE_START ))

echo "librdkafka $SYS_VERSION test suite (quick mode, cluster tests, LIBRDKAFKA_TESTS=$SELECTION, scenario $SCENARIO) against a 3-node kavka cluster, ${ELAPSED}s:"
sed 's/^/  /' "$RESULTS"
count() { awk -v s="$1" '$2 == s' "$RESULTS" | wc -l; }
passed=$(count pass)
listed_pass=$(count pass-but-listed)
unexpected=$(count fail)
known=$(count fail-known)
skipped=$(count skipped)
[[ "$listed_pass" -gt 0 ]] && log "$listed_pass listed test(s) now pass: remove them from $ALLOWLIST"
echo "librdkafka-suite: $((passed + listed_pass)) passed, $unexpected failed, $known known failures, $skipped skipped"
[[ "$unexpected" -eq 0 ]]
