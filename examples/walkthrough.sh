#!/usr/bin/env bash
# A first session with Kavka, as an operator would run it (docs/quickstart.md tells the same story):
#
#   1. start a local 3-node cluster (`kavka cluster up`) and look at it (`kavka cluster status`)
#   2. create the topic `temperature` (3 partitions, replication factor 3) and describe it
#   3. produce keyed temperature readings (`kitchen:21.5`) with the console producer
#   4. consume them in the consumer group `dashboard` and look at the group's lag
#   5. kill -9 the node leading partition 0 and watch another node take over
#   6. produce more readings; the same group continues where it stopped and gets all of them
#   7. restart the killed node and wait until every partition's ISR is back to 3
#
# Every step prints what it does and checks its outcome; the script stops at the first failure with
# a message saying what was expected. Every process it starts is stopped on exit, failure included.
#
# Environment:
#   KAVKA_BIN                    the kavka binary (default: target/release/kavka of this repository)
#   KAVKA_WALKTHROUGH_BASE_PORT  client port of node 1; nodes use BASE..BASE+2 and BASE+100..BASE+102
#                                (default: the first free range from 19092 on)
#   KAVKA_WALKTHROUGH_DIR        where the cluster's files go (default: a new temporary directory,
#                                removed at the end)
#   KAVKA_WALKTHROUGH_KEEP=1     keep that directory (logs, data) after the run
#   KAVKA_WALKTHROUGH_TIMEOUT    seconds to wait for each change of state (default 90)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAVKA="${KAVKA_BIN:-$REPO/target/release/kavka}"
TIMEOUT="${KAVKA_WALKTHROUGH_TIMEOUT:-90}"
KEEP="${KAVKA_WALKTHROUGH_KEEP:-}"
TOPIC=temperature
TAB=$'\t'
GROUP=dashboard

CLUSTER_PID=""
HAND_PIDS=()
WORK=""
CREATED_WORK=""

say()  { printf '\n==> %s\n' "$*"; }
okay() { printf '    ok: %s\n' "$*"; }
fail() { printf '\nWALKTHROUGH FAILED: %s\n' "$*" >&2; exit 1; }
indent() { sed 's/^/    /'; }

# Runs `kavka ARGS...`, echoing the command line (with `kavka` for the binary's path). Output goes to
# stdout as usual; a non-zero exit stops the script with the command and its stderr.
kavka() {
    printf '    $ kavka %s\n' "$*" >&2
    local err rc=0
    err="$(mktemp "$WORK/stderr.XXXXXX")"
    "$KAVKA" "$@" 2>"$err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        cat "$err" >&2
        fail "\`kavka $*\` exited with $rc"
    fi
    if grep -qE "panicked at|stack backtrace" "$err"; then
        cat "$err" >&2
        fail "\`kavka $*\` panicked"
    fi
    rm -f "$err"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Stops what this script started: `kavka cluster up` (which stops its nodes), the node restarted by
# hand, and any node process of this cluster's directory that is somehow still alive.
cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    if [ -n "$CLUSTER_PID" ] && kill -0 "$CLUSTER_PID" 2>/dev/null; then
        kill -TERM "$CLUSTER_PID" 2>/dev/null
        for _ in $(seq 1 300); do kill -0 "$CLUSTER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CLUSTER_PID" 2>/dev/null
        wait "$CLUSTER_PID" 2>/dev/null
    fi
    local pid
    for pid in ${HAND_PIDS[@]+"${HAND_PIDS[@]}"}; do
        kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
    done
    if [ -n "$WORK" ]; then
        local pidfile
        for pidfile in "$WORK"/cluster/node-*/pid; do
            [ -f "$pidfile" ] || continue
            pid="$(cat "$pidfile" 2>/dev/null)"
            # only a kavka process of this cluster (a pid may have been reused since)
            if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$WORK/cluster"; then
                kill -TERM "$pid" 2>/dev/null
            fi
        done
    fi
    for pid in ${HAND_PIDS[@]+"${HAND_PIDS[@]}"}; do
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ "$status" -ne 0 ] && [ -n "$WORK" ]; then
        printf '\n--- last lines of the logs (%s) ---\n' "$WORK" >&2
        for f in "$WORK/cluster-up.err" "$WORK"/cluster/node-*/kavka.log; do
            [ -f "$f" ] && { printf -- '--- %s\n' "$f" >&2; tail -n 25 "$f" >&2; }
        done
    fi
    if [ -n "$CREATED_WORK" ] && [ -z "$KEEP" ]; then
        rm -rf "$WORK"
    elif [ -n "$WORK" ]; then
        printf 'files kept in %s\n' "$WORK" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -x "$KAVKA" ] || fail "no kavka binary at $KAVKA: run \`cargo build --release\` or set KAVKA_BIN"

if [ -n "${KAVKA_WALKTHROUGH_DIR:-}" ]; then
    WORK="$KAVKA_WALKTHROUGH_DIR"
    mkdir -p "$WORK"
else
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/kavka-walkthrough.XXXXXX")"
    CREATED_WORK=1
fi
DIR="$WORK/cluster"

if [ -n "${KAVKA_WALKTHROUGH_BASE_PORT:-}" ]; then
    BASE="$KAVKA_WALKTHROUGH_BASE_PORT"
else
    BASE=""
    for candidate in $(seq 19092 300 40000); do
        busy=""
        for p in $candidate $((candidate + 1)) $((candidate + 2)) \
                 $((candidate + 100)) $((candidate + 101)) $((candidate + 102)); do
            if port_in_use "$p"; then busy=1; break; fi
        done
        if [ -z "$busy" ]; then BASE=$candidate; break; fi
    done
    [ -n "$BASE" ] || fail "no free port range found (set KAVKA_WALKTHROUGH_BASE_PORT)"
fi

# ------------------------------------------------------------------ helpers reading `topics --describe`

# describe_topic: the output of `kavka topics --describe --topic temperature` (quietly)
describe_topic() { "$KAVKA" topics --bootstrap-server "$BOOTSTRAP" --describe --topic "$TOPIC" 2>/dev/null; }

# field PARTITION NAME < describe output: the value of NAME (Leader, Replicas, Isr) on that partition's line
field() {
    awk -F'\t' -v p="$1" -v name="$2" '
        /^\t/ {
            split("", kv)
            for (i = 2; i <= NF; i++) { n = index($i, ": "); kv[substr($i, 1, n - 1)] = substr($i, n + 2) }
            if (kv["Partition"] == p) print kv[name]
        }'
}

count_ids() { [ -z "$1" ] && { echo 0; return; }; echo "$1" | tr ',' '\n' | grep -c .; }

# wait_for WHAT COMMAND...: runs COMMAND every second until it succeeds, for at most $TIMEOUT s
wait_for() {
    local what="$1"; shift
    local deadline=$((SECONDS + TIMEOUT))
    printf '    waiting for %s ' "$what"
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || { echo; fail "timed out after ${TIMEOUT}s waiting for $what"; }
        printf '.'
        sleep 1
    done
    printf ' done (%ss)\n' "$((SECONDS - deadline + TIMEOUT))"
}

all_isr_full() {
    local out p isr
    out="$(describe_topic)" || return 1
    for p in 0 1 2; do
        isr="$(field "$p" Isr <<<"$out")"
        [ "$(count_ids "$isr")" -eq 3 ] || return 1
    done
}

# ------------------------------------------------------------------ 1. the cluster

say "1. Start a local 3-node cluster in $DIR (client ports $BASE-$((BASE + 2)))"
printf '    $ kavka cluster up --nodes 3 --dir %s --base-port %s &\n' "$DIR" "$BASE"
"$KAVKA" cluster up --nodes 3 --dir "$DIR" --base-port "$BASE" \
    >"$WORK/cluster-up.out" 2>"$WORK/cluster-up.err" </dev/null &
CLUSTER_PID=$!
deadline=$((SECONDS + TIMEOUT))
until grep -q '^bootstrap.servers=' "$WORK/cluster-up.out" 2>/dev/null; do
    kill -0 "$CLUSTER_PID" 2>/dev/null || fail "kavka cluster up exited: $(tail -n 20 "$WORK/cluster-up.err")"
    [ "$SECONDS" -lt "$deadline" ] || fail "the cluster was not ready within ${TIMEOUT}s"
    sleep 0.5
done
BOOTSTRAP="$(sed -n 's/^bootstrap.servers=//p' "$WORK/cluster-up.out" | head -n 1)"
okay "ready: bootstrap.servers=$BOOTSTRAP"
for i in 1 2 3; do
    [ -s "$DIR/node-$i/pid" ] || fail "no pid file for node $i"
done

kavka cluster status --bootstrap-server "$BOOTSTRAP" >"$WORK/status.txt"
indent <"$WORK/status.txt"
grep -qx 'Under-replicated partitions: 0' "$WORK/status.txt" || fail "cluster status: expected 'Under-replicated partitions: 0'"
grep -qx 'Offline partitions: 0' "$WORK/status.txt" || fail "cluster status: expected 'Offline partitions: 0'"
for i in 1 2 3; do
    grep -q "127.0.0.1:$((BASE + i - 1))" "$WORK/status.txt" || fail "cluster status does not list node $i"
done
okay "three brokers, nothing under-replicated or offline"

# ------------------------------------------------------------------ 2. the topic

say "2. Create the topic $TOPIC with 3 partitions, each on all 3 nodes"
created="$(kavka topics --bootstrap-server "$BOOTSTRAP" --create --topic "$TOPIC" --partitions 3 --replication-factor 3)"
echo "$created" | indent
[ "$created" = "Created topic $TOPIC." ] || fail "expected 'Created topic $TOPIC.', got '$created'"
okay "created"

say "   Describe it"
wait_for "every partition to have 3 in-sync replicas" all_isr_full
kavka topics --bootstrap-server "$BOOTSTRAP" --describe --topic "$TOPIC" >"$WORK/describe.txt"
indent <"$WORK/describe.txt"
grep -qE "^Topic: $TOPIC${TAB}TopicId: [A-Za-z0-9_-]+${TAB}PartitionCount: 3${TAB}ReplicationFactor: 3${TAB}Configs:" "$WORK/describe.txt" \
    || fail "the topic line does not say PartitionCount: 3 and ReplicationFactor: 3"
for p in 0 1 2; do
    replicas="$(field "$p" Replicas <"$WORK/describe.txt")"
    leader="$(field "$p" Leader <"$WORK/describe.txt")"
    [ "$(count_ids "$replicas")" -eq 3 ] || fail "partition $p: expected 3 replicas, got '$replicas'"
    [[ ",$replicas," == *",$leader,"* ]] || fail "partition $p: leader '$leader' is not one of its replicas '$replicas'"
done
okay "3 partitions, 3 replicas each, all in sync"

# ------------------------------------------------------------------ 3. produce

READINGS=(kitchen:21.5 study:19.0 hall:18.2 garage:12.4 kitchen:21.7 study:19.1
          hall:18.4 garage:12.1 kitchen:22.0 study:19.3 hall:18.1 garage:11.9)
say "3. Produce ${#READINGS[@]} readings (key = room, value = degrees) with the console producer"
printf '%s\n' "${READINGS[@]}" | sed 's/^/    > /'
printf '%s\n' "${READINGS[@]}" | kavka console-producer --bootstrap-server "$BOOTSTRAP" --topic "$TOPIC" \
    --property parse.key=true --property key.separator=: --request-required-acks all
okay "the producer exited 0: every reading was acknowledged by all in-sync replicas"

# ------------------------------------------------------------------ 4. consume in a group

say "4. Read them in the consumer group $GROUP"
kavka console-consumer --bootstrap-server "$BOOTSTRAP" --topic "$TOPIC" --group "$GROUP" \
    --from-beginning --max-messages "${#READINGS[@]}" --timeout-ms 30000 \
    --property print.key=true --property key.separator=: --property print.partition=true \
    >"$WORK/consumed-1.txt"
indent <"$WORK/consumed-1.txt"
# each line: Partition:<p>, key.separator, key, key.separator, value (Kafka's console consumer puts
# key.separator between every printed column)
got="$(sed -E 's/^Partition:[0-9]+.//' "$WORK/consumed-1.txt" | sort)"
want="$(printf '%s\n' "${READINGS[@]}" | sort)"
[ "$got" = "$want" ] || fail "the group read something else than was produced:
expected:
$want
got:
$got"
# one room, one partition
while read -r room; do
    n="$(grep -E "^Partition:[0-9]+.$room:" "$WORK/consumed-1.txt" | sed -E 's/^Partition:([0-9]+).*/\1/' | sort -u | wc -l)"
    [ "$n" -eq 1 ] || fail "the readings of $room are in $n partitions, expected 1"
done < <(printf '%s\n' "${READINGS[@]}" | cut -d: -f1 | sort -u)
okay "all ${#READINGS[@]} readings arrived; each room's readings are in one partition"

say "   The group's offsets and lag"
kavka consumer-groups --bootstrap-server "$BOOTSTRAP" --describe --group "$GROUP" >"$WORK/group-1.txt"
indent <"$WORK/group-1.txt"
read -r current lag <<<"$(awk -v t="$TOPIC" '$2 == t && $3 ~ /^[0-9]+$/ { c += $4; l += $6 } END { print c + 0, l + 0 }' "$WORK/group-1.txt")"
[ "$current" -eq "${#READINGS[@]}" ] || fail "expected the group's committed offsets to add up to ${#READINGS[@]}, got $current"
[ "$lag" -eq 0 ] || fail "expected a lag of 0, got $lag"
okay "committed offsets add up to ${#READINGS[@]}, lag 0"

# ------------------------------------------------------------------ 5. lose the leader of partition 0

say "5. Kill the node leading partition 0"
LEADER="$(field 0 Leader <"$WORK/describe.txt")"
[[ "$LEADER" =~ ^[1-3]$ ]] || fail "could not read partition 0's leader from the describe output (got '$LEADER')"
VICTIM_PID="$(cat "$DIR/node-$LEADER/pid")"
printf '    partition 0 is led by node %s (pid %s)\n' "$LEADER" "$VICTIM_PID"
# shellcheck disable=SC2016
printf '    $ kill -9 $(cat %s/node-%s/pid)\n' "$DIR" "$LEADER"
kill -9 "$VICTIM_PID"
okay "node $LEADER killed"

# partition 0 has a live leader, and the dead node is out of every partition's ISR
new_leader_elected() {
    local out leader p isr
    out="$(describe_topic)" || return 1
    leader="$(field 0 Leader <<<"$out")"
    [[ "$leader" =~ ^[0-9]+$ ]] && [ "$leader" != "$LEADER" ] || return 1
    for p in 0 1 2; do
        isr="$(field "$p" Isr <<<"$out")"
        [ -n "$isr" ] && [[ ",$isr," != *",$LEADER,"* ]] || return 1
    done
}
wait_for "another node to lead partition 0" new_leader_elected
kavka topics --bootstrap-server "$BOOTSTRAP" --describe --topic "$TOPIC" >"$WORK/describe-2.txt"
indent <"$WORK/describe-2.txt"
NEW_LEADER="$(field 0 Leader <"$WORK/describe-2.txt")"
for p in 0 1 2; do
    l="$(field "$p" Leader <"$WORK/describe-2.txt")"
    [ "$l" != "$LEADER" ] && [ "$l" != none ] || fail "partition $p is still led by node $LEADER (or by none): '$l'"
done
okay "partition 0 is now led by node $NEW_LEADER; no partition is led by the dead node"

say "   Under-replicated partitions"
kavka topics --bootstrap-server "$BOOTSTRAP" --describe --under-replicated-partitions --topic "$TOPIC" >"$WORK/under.txt"
indent <"$WORK/under.txt"
[ "$(grep -c "^${TAB}Topic: $TOPIC${TAB}" "$WORK/under.txt")" -eq 3 ] || fail "expected the 3 partitions of $TOPIC to be under-replicated"
[ "$(grep -c "${TAB}Offline: $LEADER\$" "$WORK/under.txt")" -eq 3 ] || fail "expected each line to end with 'Offline: $LEADER'"
okay "all three partitions run on two replicas; the one on node $LEADER is offline"

say "   The cluster's view: node $LEADER fenced, the partitions it held under-replicated"
kavka cluster status --bootstrap-server "$BOOTSTRAP" >"$WORK/status-down.txt"
grep -v '^ *__consumer_offsets-' "$WORK/status-down.txt" | indent
omitted="$(grep -c '^ *__consumer_offsets-' "$WORK/status-down.txt" || true)"
[ "$omitted" -eq 0 ] || printf '    (%s partitions of __consumer_offsets, the group offsets topic, not shown)\n' "$omitted"
grep "127.0.0.1:$((BASE + LEADER - 1))" "$WORK/status-down.txt" | grep -qiw fenced \
    || fail "cluster status does not show node $LEADER (127.0.0.1:$((BASE + LEADER - 1))) fenced"
for p in 0 1 2; do
    grep -qE "^ +$TOPIC-$p\$" "$WORK/status-down.txt" || fail "cluster status does not name $TOPIC-$p under-replicated"
done
okay "node $LEADER is fenced; $TOPIC-0, -1 and -2 are under-replicated"

# ------------------------------------------------------------------ 6. the group continues

MORE=(kitchen:22.4 study:19.6 hall:18.9 garage:11.5 attic:15.0 porch:9.5)
say "6. Produce ${#MORE[@]} more readings with one node down"
printf '%s\n' "${MORE[@]}" | sed 's/^/    > /'
printf '%s\n' "${MORE[@]}" | kavka console-producer --bootstrap-server "$BOOTSTRAP" --topic "$TOPIC" \
    --property parse.key=true --property key.separator=: --request-required-acks all
okay "acknowledged by the 2 in-sync replicas (min.insync.replicas=2)"

say "   The group $GROUP continues after its committed offsets"
kavka console-consumer --bootstrap-server "$BOOTSTRAP" --topic "$TOPIC" --group "$GROUP" \
    --max-messages "${#MORE[@]}" --timeout-ms 30000 \
    --property print.key=true --property key.separator=: >"$WORK/consumed-2.txt"
indent <"$WORK/consumed-2.txt"
got="$(sort "$WORK/consumed-2.txt")"
want="$(printf '%s\n' "${MORE[@]}" | sort)"
[ "$got" = "$want" ] || fail "expected exactly the ${#MORE[@]} new readings, got:
$got"
kavka consumer-groups --bootstrap-server "$BOOTSTRAP" --describe --group "$GROUP" >"$WORK/group-2.txt"
indent <"$WORK/group-2.txt"
read -r current lag <<<"$(awk -v t="$TOPIC" '$2 == t && $3 ~ /^[0-9]+$/ { c += $4; l += $6 } END { print c + 0, l + 0 }' "$WORK/group-2.txt")"
total=$(( ${#READINGS[@]} + ${#MORE[@]} ))
[ "$current" -eq "$total" ] && [ "$lag" -eq 0 ] || fail "expected committed offsets adding up to $total with lag 0, got $current and lag $lag"
okay "exactly the ${#MORE[@]} new readings, nothing twice; lag 0"

# ------------------------------------------------------------------ 7. the node comes back

say "7. Restart node $LEADER"
printf '    $ kavka broker --config %s/node-%s/server.properties >> %s/node-%s/kavka.log 2>&1 &\n' \
    "$DIR" "$LEADER" "$DIR" "$LEADER"
"$KAVKA" broker --config "$DIR/node-$LEADER/server.properties" >>"$DIR/node-$LEADER/kavka.log" 2>&1 </dev/null &
HAND_PIDS+=($!)
echo "$!" >"$DIR/node-$LEADER/pid"
okay "node $LEADER started again (pid $!)"
wait_for "the ISR of every partition to be back to 3" all_isr_full
kavka topics --bootstrap-server "$BOOTSTRAP" --describe --topic "$TOPIC" >"$WORK/describe-3.txt"
indent <"$WORK/describe-3.txt"
for p in 0 1 2; do
    isr="$(field "$p" Isr <"$WORK/describe-3.txt")"
    [[ ",$isr," == *",$LEADER,"* ]] || fail "partition $p: node $LEADER is not back in the ISR ($isr)"
done
okay "node $LEADER caught up: every partition has 3 in-sync replicas again"

kavka cluster status --bootstrap-server "$BOOTSTRAP" >"$WORK/status-2.txt"
indent <"$WORK/status-2.txt"
grep -qx 'Under-replicated partitions: 0' "$WORK/status-2.txt" || fail "cluster status still reports under-replicated partitions"
grep -qx 'Offline partitions: 0' "$WORK/status-2.txt" || fail "cluster status reports offline partitions"
okay "nothing under-replicated or offline"

say "Walkthrough complete: the cluster lost a node, kept serving, and recovered."
