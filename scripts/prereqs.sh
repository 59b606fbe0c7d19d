#!/usr/bin/env bash
# Shared helpers for scripts/run.sh and scripts/test.sh: install missing Debian packages.
# Source it; do not run it. Rust itself is not installed here: it comes from rustup.

# ensure_debian_packages PKG...: apt-get installs whichever of PKG are not installed yet,
# as root or through passwordless sudo. Returns non-zero if something stays missing.
ensure_debian_packages() {
    local missing=() p
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "prereqs: not a Debian system (no dpkg-query); install these yourself if missing: $*" >&2
        return 0
    fi
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0

    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "prereqs: missing Debian packages ${missing[*]} and not root (no passwordless sudo);" \
                 "install them with: sudo apt-get install ${missing[*]}" >&2
            return 1
        fi
    fi
    echo "prereqs: installing ${missing[*]}"
    # Another apt run (unattended upgrades, a parallel job) may hold the lock: wait for it.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 update -qq || return 1
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" || return 1
}

# require_cargo: fail with a useful message when there is no Rust toolchain.
require_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "prereqs: cargo not found. Install Rust with rustup (https://rustup.rs), then re-run." >&2
        return 1
    fi
}
