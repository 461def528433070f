"""Peak memory and speed of preparing the synthetic survey: memory must stay flat whatever the number of curves.

Each size runs in a fresh subprocess (so peak RSS is that preparation's alone) and prints curves, observations,
wall time, curves/s and peak RSS. Usage:

    .venv/bin/python benchmarks/prepare_memory.py                      # 10k and 1M curves (the 1M run takes a while
                                                                       # and ~25 GB of temporary disk)
    .venv/bin/python benchmarks/prepare_memory.py --sizes 10000 100000 --cadence ztf
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from astromer_hf.data.prepare import prepare_dataset
    n, cadence, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    start = time.perf_counter()
    splits = prepare_dataset("synthetic", out, config=cadence, n_curves=n, seed=0)
    seconds = time.perf_counter() - start
    observations = sum(int(sum(split["n_obs"])) for split in splits.values())
    print(json.dumps({
        "curves": sum(len(split) for split in splits.values()),
        "observations": observations,
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--cadence", default="macho", choices=["macho", "ogle", "ztf"])
    args = parser.parse_args()
    print(f"{'curves':>10} {'observations':>14} {'seconds':>9} {'curves/s':>9} {'peak RSS (MB)':>14}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="astromer-bench-") as scratch:
            result = subprocess.run(
                [sys.executable, "-c", CHILD, str(size), args.cadence, f"{scratch}/out"],
                capture_output=True, text=True, check=True,
            )
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        print(
            f"{figures['curves']:>10,} {figures['observations']:>14,} {figures['seconds']:>9.1f} "
            f"{figures['curves'] / figures['seconds']:>9.0f} {figures['peak_rss_mb']:>14.0f}"
        )


if __name__ == "__main__":
    main()
