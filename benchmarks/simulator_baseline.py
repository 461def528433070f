"""How separable are the simulated classes? A classical feature baseline on the built-in simulator.

Trains on 2,000 simulated curves and tests on 1,000 others (disjoint indices), per cadence, and prints the macro
accuracy of softmax regression and nearest centroid (chance: 1/8 = 0.125) and the per-class accuracy. Usage:

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/simulator_baseline.py [--periodogram] [--cadences macho ztf]
"""

from __future__ import annotations

import argparse
import time

from astromer_hf.data.baseline import (
    fit_nearest_centroid,
    fit_softmax_regression,
    lightcurve_features,
    macro_accuracy,
    per_class_accuracy,
    predict,
)
from astromer_hf.data.simulator import CADENCES, simulate_survey


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cadences", nargs="+", default=list(CADENCES), choices=CADENCES)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--periodogram", action="store_true", help="add Lomb-Scargle period features (slower)")
    args = parser.parse_args()
    for cadence in args.cadences:
        start = time.perf_counter()
        train = list(simulate_survey(args.train, seed=0, cadence=cadence))
        test = list(simulate_survey(args.test, seed=0, cadence=cadence, start=args.train))
        x_train = lightcurve_features(train, periodogram=args.periodogram)
        x_test = lightcurve_features(test, periodogram=args.periodogram)
        y_train, y_test = [c["label"] for c in train], [c["label"] for c in test]
        softmax = predict(fit_softmax_regression(x_train, y_train), x_test)
        centroid = predict(fit_nearest_centroid(x_train, y_train), x_test)
        print(f"{cadence}: softmax macro accuracy {macro_accuracy(y_test, softmax):.3f}, nearest centroid "
              f"{macro_accuracy(y_test, centroid):.3f} (chance 0.125; {time.perf_counter() - start:.0f} s)")
        per_class = per_class_accuracy(y_test, softmax)
        print("  per class (softmax): " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(per_class.items())))


if __name__ == "__main__":
    main()
