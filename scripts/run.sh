#!/usr/bin/env bash
# Builds the release binary and starts a local 3-node Kavka cluster (`kavka cluster up`):
# combined broker+controller processes on 127.0.0.1, clients on ports 9092-9094,
# controllers on 9192-9194, data under ./kavka-cluster in the repository root; it prints
# bootstrap.servers=... once every node is ready and stops them all on Ctrl-C. Extra
# arguments go to `kavka cluster up`, e.g.
#   scripts/run.sh --nodes 5
# `scripts/run.sh broker [ARGS]` starts one broker with the embedded defaults instead
# (node.id=0, listeners=PLAINTEXT://127.0.0.1:9092, log.dirs=./kavka-data), e.g.
#   scripts/run.sh broker --override num.partitions=3
#   scripts/run.sh broker --config server.properties
# Installs the Debian build prerequisites if they are missing; Rust comes from rustup.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/prereqs.sh
. "$ROOT/scripts/prereqs.sh"

if [ "${KAVKA_SKIP_DEPS:-0}" != 1 ]; then
    # A C compiler and pkg-config for the compression crates' native code.
    ensure_debian_packages build-essential pkg-config
fi
require_cargo

cargo build --release --bin kavka
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ "${1:-}" = broker ]; then
    shift
    exec "$TARGET_DIR/release/kavka" broker "$@"
fi
has_nodes=0
for arg in "$@"; do
    case "$arg" in --nodes|--nodes=*) has_nodes=1 ;; esac
done
if [ "$has_nodes" = 0 ]; then
    set -- --nodes 3 "$@"
fi
exec "$TARGET_DIR/release/kavka" cluster up --dir "$ROOT/kavka-cluster" "$@"
