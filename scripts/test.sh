#!/usr/bin/env bash
# Runs every test of the project, from a clean clone on a fresh Debian machine:
#   1. installs missing Debian packages (kcat, cmake, C toolchain and -dev libraries that
#      the rdkafka crate's cmake build needs, python3-venv) as root or via sudo,
#   2. creates .venv with the pinned Python clients (compat/python/requirements.txt),
#   3. cargo fmt --check, cargo clippy -D warnings, cargo test, cargo build --release,
#   4. the client-compatibility suites against the release binary (compat/python, compat/kcat),
#   5. further suites listed in EXTRA_SUITES below (scripts/rdkafka-suite.sh,
#      scripts/java-clients.sh, scripts/librdkafka-suite.sh: librdkafka's own tests, quick
#      subset, on a 3-node cluster; scripts/chaos-quick.sh: the fault-injection suite's
#      quick mode, chaos/run --quick).
# Every step runs even if an earlier one failed (except suites that need the release
# binary when its build failed); the script prints a summary and exits non-zero if any
# step failed.
#
# Usage: scripts/test.sh [STEP...]   (default: all steps; e.g. `scripts/test.sh python kcat`)
# Steps: deps venv fmt clippy unit release python kcat, then the EXTRA_SUITES names.
# Environment:
#   CI=true              quick mode: fewer crash-test cycles, quieter pip
#   KAVKA_SKIP_DEPS=1    do not try to install Debian packages
#   PYTEST_ARGS="..."    extra arguments for both pytest runs (e.g. "-k compression -x")
#   CARGO_TARGET_DIR     honoured; the release binary is taken from there
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
# shellcheck source=scripts/prereqs.sh
. "$ROOT/scripts/prereqs.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export KAVKA_BIN="${KAVKA_BIN:-$TARGET_DIR/release/kavka}"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
CI="${CI:-false}"
export CI
if [ "$CI" = true ]; then
    # A CI run builds from scratch once: incremental state and full debug info only cost
    # time there (the budget is ~35 min on 2 cores). Line tables keep backtraces useful.
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
    export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
    export CARGO_TERM_PROGRESS_WHEN=never
fi

# Further suites: "name|script". A suite runs when its script exists; add a line here
# to add a suite. Each script gets KAVKA_BIN (the release binary) and the venv on PATH.
EXTRA_SUITES=(
    "rdkafka-suite|scripts/rdkafka-suite.sh"
    "java-clients|scripts/java-clients.sh"
    "librdkafka-suite|scripts/librdkafka-suite.sh"
    "chaos-quick|scripts/chaos-quick.sh"
)

DEBIAN_PACKAGES=(build-essential pkg-config cmake libcurl4-openssl-dev libssl-dev zlib1g-dev
                 libzstd-dev kcat openjdk-17-jdk-headless rapidjson-dev tcpdump
                 iproute2 iptables faketime)

# ---------------------------------------------------------------- step bookkeeping
declare -a RESULTS=()
FAILED=0
PASSED=0
SKIPPED=0
RELEASE_OK=unknown
SELECTED=("$@")

selected() {
    [ ${#SELECTED[@]} -eq 0 ] && return 0
    local s
    for s in "${SELECTED[@]}"; do [ "$s" = "$1" ] && return 0; done
    return 1
}

step() { # step NAME CMD...
    local name="$1"; shift
    selected "$name" || return 0
    echo
    echo "================================================================ [$name] $*"
    local t0=$SECONDS rc
    "$@"
    rc=$?
    local dt=$((SECONDS - t0))
    if [ $rc -eq 0 ]; then
        RESULTS+=("PASS  $(printf '%-14s' "$name") ${dt}s")
        PASSED=$((PASSED + 1))
    else
        RESULTS+=("FAIL  $(printf '%-14s' "$name") ${dt}s  (exit $rc)")
        FAILED=$((FAILED + 1))
    fi
    return $rc
}

skip() { # skip NAME REASON
    selected "$1" || return 0
    RESULTS+=("SKIP  $(printf '%-14s' "$1") $2")
    SKIPPED=$((SKIPPED + 1))
    echo "================================================================ [$1] skipped: $2"
}

# ---------------------------------------------------------------- steps
install_deps() {
    local pkgs=("${DEBIAN_PACKAGES[@]}")
    if ! command -v python3 >/dev/null 2>&1; then
        pkgs+=(python3 python3-venv)
    elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        pkgs+=(python3-venv)
    fi
    ensure_debian_packages "${pkgs[@]}" || return 1
    require_cargo || return 1
    # clippy and rustfmt are rustup components; add them if rustup is there and they are not.
    if command -v rustup >/dev/null 2>&1; then
        cargo clippy --version >/dev/null 2>&1 || rustup component add clippy || return 1
        cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt || return 1
    fi
}

make_venv() {
    local req="$ROOT/compat/python/requirements.txt" stamp="$VENV/.requirements.sha256" want
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    if [ ! -x "$PY" ] || ! "$PY" -c 'import sys' >/dev/null 2>&1; then
        rm -rf "$VENV"
        python3 -m venv "$VENV" || return 1
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        local quiet=()
        [ "$CI" = true ] && quiet=(-q)
        "$PY" -m pip install "${quiet[@]}" --disable-pip-version-check -r "$req" || return 1
        echo "$want" > "$stamp"
    fi
    "$PY" -c 'import confluent_kafka, kafka, pytest; print("confluent-kafka", confluent_kafka.__version__, "librdkafka", confluent_kafka.libversion()[0], "kafka-python", kafka.__version__)'
}

run_pytest() { # run_pytest DIR
    local dir="$1" rc
    # shellcheck disable=SC2086
    # pytest's cache goes under target/ (ignored by git), not into the source tree.
    (cd "$ROOT/$dir" && "$PY" -m pytest --durations=10 -o "cache_dir=$TARGET_DIR/pytest-cache/$dir" \
        ${PYTEST_ARGS:-} .)
    rc=$?
    if [ $rc -eq 5 ]; then
        echo "pytest collected no tests in $dir: treating as a failure" >&2
    fi
    return $rc
}

run_suite_script() { # run_suite_script SCRIPT
    PATH="$VENV/bin:$PATH" bash "$ROOT/$1"
}

# ---------------------------------------------------------------- main
echo "kavka test run: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), CI=$CI, binary under test: $KAVKA_BIN"

if [ "${KAVKA_SKIP_DEPS:-0}" = 1 ]; then
    skip deps "KAVKA_SKIP_DEPS=1"
    require_cargo || true
else
    step deps install_deps
fi
step venv make_venv
step fmt cargo fmt --all --check
step clippy cargo clippy --workspace --all-targets -- -D warnings
step unit cargo test --workspace
if step release cargo build --release; then RELEASE_OK=yes; else
    selected release && RELEASE_OK=no
fi

# The suites below drive the release binary; when its build failed they would test a
# stale binary, so they are skipped (and the run fails on the build step).
if [ "$RELEASE_OK" = no ]; then
    skip python "release build failed"
    skip kcat "release build failed"
    for entry in "${EXTRA_SUITES[@]}"; do skip "${entry%%|*}" "release build failed"; done
else
    step python run_pytest compat/python
    step kcat run_pytest compat/kcat
    for entry in "${EXTRA_SUITES[@]}"; do
        name="${entry%%|*}"; script="${entry#*|}"
        if [ -f "$ROOT/$script" ]; then
            step "$name" run_suite_script "$script"
        else
            skip "$name" "$script not present"
        fi
    done
fi

echo
echo "================================================================ summary"
for r in "${RESULTS[@]}"; do echo "  $r"; done
echo "  total time: $((SECONDS / 60))m $((SECONDS % 60))s"
echo "steps: ${PASSED} passed, ${FAILED} failed, ${SKIPPED} skipped"
[ "$FAILED" -eq 0 ]
