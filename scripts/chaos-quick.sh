#!/usr/bin/env bash
# The fault-injection suite's quick mode (chaos/run --quick: 3 nodes, a fixed seed, every
# fault kind once, about 3.5 minutes). It needs root for network namespaces, iptables and tmpfs
# mounts: run as root, or through sudo when that works without a password.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The checker's own tests first: each invariant must catch a broken history.
(cd "$ROOT/chaos" && python3 -m pytest -q -p no:cacheprovider tests)
if [ "$(id -u)" -eq 0 ]; then
    exec "$ROOT/chaos/run" --quick "$@"
elif sudo -n true 2>/dev/null; then
    exec sudo -n --preserve-env=KAVKA_BIN,CI,KAVKA_SKIP_DEPS "$ROOT/chaos/run" --quick "$@"
fi
echo "chaos-quick: needs root or password-less sudo (network namespaces, iptables, tmpfs)" >&2
exit 1
