"""Speed of the built-in procedural categories.

Requirement: 1,000 shapes of a category in under 2 minutes on 2 cores, i.e. at
most 120 ms a shape in one process (or 240 ms with two worker processes).

    python benchmarks/synthetic.py [--count 200] [--workers 1]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np

from kptool.data.synthetic import CATEGORIES, generate_shape, shape_seed

BUDGET_S = 120.0  # for 1,000 shapes


def _faces(category: str, index: int) -> int:
    return len(generate_shape(category, shape_seed(0, index)).faces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="shapes per category")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (1: in this process)")
    args = parser.parse_args()
    print(f"{'category':10s} {'ms/shape':>9s} {'1000 shapes':>12s} {'vs budget':>10s} {'faces (mean)':>13s}")
    for category in CATEGORIES:
        work = partial(_faces, category)
        start = time.perf_counter()
        if args.workers == 1:
            faces = [work(i) for i in range(args.count)]
        else:
            with ProcessPoolExecutor(args.workers) as pool:
                faces = list(pool.map(work, range(args.count), chunksize=8))
        seconds = time.perf_counter() - start
        per_1000 = seconds / args.count * 1000
        print(f"{category:10s} {seconds / args.count * 1000:9.1f} {per_1000:11.1f}s "
              f"{per_1000 / BUDGET_S:9.2f}x {np.mean(faces):13.0f}")


if __name__ == "__main__":
    main()
