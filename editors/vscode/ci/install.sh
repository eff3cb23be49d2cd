#!/usr/bin/env bash
# Install what the VS Code extension and its real-VS-Code tests need; idempotent, seconds when all is there.
#   bash editors/vscode/ci/install.sh
# 1. apt (only if missing): chromium (the browser playwright drives), libkrb5-dev (code-server's kerberos
#    module builds against it), ripgrep (stands in for @vscode/ripgrep's GitHub download).
# 2. editors/vscode: npm ci (from package-lock.json) and tsc.
# 3. .editors/vscode/tools: code-server 4.100.3 (VS Code 1.100.3; the newest that runs on Node 20) and
#    playwright-core, from editors/vscode/ci/package-lock.json. Only the npm registry is used.
# Each npm step is skipped while its lock file's hash matches the stamp the last successful install left.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
EXT="$ROOT/editors/vscode"
TOOLS="$ROOT/.editors/vscode/tools"
T0=$(date +%s)
step() { echo "blockfill vscode install: [$(($(date +%s) - T0))s] $*"; }
export npm_config_yes=true npm_config_unsafe_perm=true npm_config_fund=false npm_config_audit=false \
    npm_config_update_notifier=false

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v rg >/dev/null || missing+=(ripgrep)
dpkg -s libkrb5-dev >/dev/null 2>&1 || missing+=(libkrb5-dev)
if [ ${#missing[@]} -gt 0 ]; then
    step "apt-get install ${missing[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp_ok() { [ -f "$2" ] && [ "$(cat "$2")" = "$(sha256sum "$1" | cut -d' ' -f1)" ]; }
stamp() { sha256sum "$1" | cut -d' ' -f1 > "$2"; }

if ! stamp_ok "$EXT/package-lock.json" "$EXT/node_modules/.blockfill-stamp"; then
    step "npm ci in editors/vscode"
    (cd "$EXT" && npm ci --no-progress --loglevel=error)
    stamp "$EXT/package-lock.json" "$EXT/node_modules/.blockfill-stamp"
fi
step "tsc (incremental)"
(cd "$EXT" && npm run --silent compile)

if ! stamp_ok "$EXT/ci/package-lock.json" "$TOOLS/node_modules/.blockfill-stamp"; then
    step "npm ci: code-server 4.100.3 + playwright-core (native modules build: 1-2 minutes)"
    mkdir -p "$TOOLS/tmp" "$TOOLS/rgstage"
    cp "$EXT/ci/package.json" "$EXT/ci/package-lock.json" "$TOOLS/"
    # @vscode/ripgrep's postinstall fetches rg from GitHub unless its cache already holds the archive.
    export TMPDIR="$TOOLS/tmp"
    cache="$TMPDIR/vscode-ripgrep-cache-1.15.11"
    mkdir -p "$cache" && cp "$(command -v rg)" "$TOOLS/rgstage/rg"
    tar czf "$cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$TOOLS/rgstage" rg
    if ! (cd "$TOOLS" && npm ci --no-progress --loglevel=error > "$TOOLS/npm-ci.log" 2>&1); then
        tail -40 "$TOOLS/npm-ci.log" >&2
        echo "blockfill vscode install: npm ci of code-server failed; full log: $TOOLS/npm-ci.log" >&2
        exit 1
    fi
    stamp "$EXT/ci/package-lock.json" "$TOOLS/node_modules/.blockfill-stamp"
fi
step "done: code-server $(node -p "require('$TOOLS/node_modules/code-server/package.json').version")"
