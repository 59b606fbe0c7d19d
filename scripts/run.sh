#!/usr/bin/env bash
# Builds the release binary and starts one Kavka broker with the embedded defaults
# (node.id=0, listeners=PLAINTEXT://127.0.0.1:9092, log.dirs=./kavka-data under the
# repository root). Extra arguments go to `kavka broker`, e.g.
#   scripts/run.sh --override num.partitions=3
#   scripts/run.sh --config server.properties
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
exec "$TARGET_DIR/release/kavka" broker "$@"
