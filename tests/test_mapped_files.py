"""The resident pages of a memory-mapped dataset stay bounded while it is read, and what is read stays right."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from astromer_hf.data.mapped_files import MappedPageBudget, release_mapped_pages, resident_file_pages_mb
from astromer_hf.training.windows import ArrowLightCurves

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mapped pages are managed on Linux only")

N_CURVES, N_OBS = 3000, 1500  # 72 MB of list columns: far more pages than the budgets below


@pytest.fixture(scope="module")
def mapped_split(tmp_path_factory):
    """A split saved to disk and loaded back memory-mapped, as prepared datasets are, and its values."""
    import datasets

    from astromer_hf.data.schema import lightcurve_features

    rng = np.random.default_rng(0)
    values = rng.normal(size=(N_CURVES, 3, N_OBS))
    features = lightcurve_features()
    rows = {name: [None] * N_CURVES for name in features}
    rows.update(time=list(np.sort(values[:, 0], axis=1)), mag=list(values[:, 1]), mag_err=list(np.abs(values[:, 2])),
                n_obs=[N_OBS] * N_CURVES,
                object_id=[f"star-{i}" for i in range(N_CURVES)])
    path = tmp_path_factory.mktemp("mapped") / "split"
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(path))
    split = datasets.load_from_disk(str(path))
    return split, [entry["filename"] for entry in split.cache_files], values[:, 1].astype(np.float32)


def _resident_mb(paths) -> float:
    """Resident size of this process's mappings of ``paths`` (from /proc/self/smaps), MB."""
    import os

    wanted, total, inside = {os.path.realpath(p) for p in paths}, 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a mapping's header line
                inside = len(fields) == 6 and fields[5] in wanted
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total / 1024


def test_released_pages_leave_the_process_and_the_data_reads_the_same(mapped_split):
    split, files, _ = mapped_split
    table = split.data
    first = table.column("mag").to_pylist()  # touches every page of the column (18 MB)
    assert _resident_mb(files) > 10
    assert release_mapped_pages(files) > 0
    assert _resident_mb(files) < 1
    assert table.column("mag").to_pylist() == first  # the mapping still reads the file


def _read_at_random(curves: ArrowLightCurves, files, mags) -> tuple[float, float]:
    """Read 300 curves, two at a time in a random order; the peak resident size of the split's mapped pages and the
    most one read added to it, MB (one read of a curve can map megabytes around it: large page-cache folios)."""
    release_mapped_pages(files)
    start = resident_file_pages_mb()  # all mapped files; only the split's change in this loop
    order = np.random.default_rng(1).permutation(N_CURVES)[:300]
    peak = step = 0.0
    for pair in order.reshape(-1, 2):
        before = resident_file_pages_mb() - start
        got = curves.__getitems__([(int(i), 0) for i in pair])
        after = resident_file_pages_mb() - start
        peak, step = max(peak, after), max(step, after - before)
        np.testing.assert_array_equal(got.curves.values[N_OBS:, 1], mags[pair[1]])
    return peak, step


def test_reading_a_split_at_random_keeps_its_mapped_pages_within_the_budget(mapped_split):
    split, files, mags = mapped_split
    unbounded = ArrowLightCurves(split, window_size=200, windows="random")
    unbounded.page_budget = MappedPageBudget(files, budget_mb=float("inf"))
    unbounded_peak, one_read = _read_at_random(unbounded, files, mags)

    bounded = ArrowLightCurves(split, window_size=200, windows="random")
    bounded.page_budget = MappedPageBudget(files, budget_mb=4)
    bounded_peak, _ = _read_at_random(bounded, files, mags)
    assert bounded_peak <= 4 + one_read + 1
    assert unbounded_peak > 2 * bounded_peak, (unbounded_peak, bounded_peak)
