"""Shared pytest fixtures.

The reference material of the original TensorFlow Astromer lives in ``../shared`` beside the repository
(``shared/reference/astromer1-macho``). Tests that need it take the ``reference_dir`` fixture and are
skipped, with the reason printed, on machines where that folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fault_server import archive  # noqa: F401  (fixture: a faulty HTTP archive on 127.0.0.1)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
REFERENCE_DIR = SHARED_DIR / "reference" / "astromer1-macho"


def pytest_configure(config):
    """Under pytest-xdist (``-n``, set in pyproject.toml), the workers share the cores: each worker's torch, and the
    processes its tests start (``OMP_NUM_THREADS`` is inherited), takes its share instead of every core, which would
    oversubscribe the machine (a 25 s training test took 111 s with two 2-thread workers on 2 cores)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = str(max(1, cores // workers))
        os.environ["OMP_NUM_THREADS"] = threads
        torch.set_num_threads(int(threads))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder with the released Astromer 1 MACHO checkpoint and the TensorFlow reference outputs."""
    if not (REFERENCE_DIR / "astromer1_macho_reference.npz").is_file():
        pytest.skip(f"Astromer reference material not found at {REFERENCE_DIR} (the ../shared folder is absent)")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def reference(reference_dir: Path):
    """The arrays the original TensorFlow code computed on 30 real light curves (see its README)."""
    return np.load(reference_dir / "astromer1_macho_reference.npz")


@pytest.fixture(scope="session")
def reference_lightcurves(reference) -> list[np.ndarray]:
    """The 30 raw ``[time, mag, err]`` light curves, float64, as fed to the original loader."""
    raw, offsets = reference["raw_lc"], reference["raw_offsets"]
    return [raw[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
