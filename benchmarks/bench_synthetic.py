"""Throughput of the synthetic scene generator (images per second).

Prints, for ``--size`` images:
  * render: sample + ray-cast in this process (labeled samples: image, depth, valid, seg, K);
  * loader: the same through a ``DataLoader`` with ``--workers`` processes;
  * baseline: decoding the same images from PNG files with ``read_rgb`` (what a folder of
    real images costs before any depth is read), measured in the same run;
and the ratios render/baseline and loader/baseline. The CPU-time rate of the render is also printed:
on a shared machine the wall-clock rates drop with the load, the CPU-time rate much less.

    python benchmarks/bench_synthetic.py --size 128 128 --count 400 --workers 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader

from da_toolkit.data.io import read_rgb
from da_toolkit.data.sources import SyntheticScenes


def _rate(count: int, seconds: float) -> float:
    return count / max(seconds, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"))
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    src = SyntheticScenes(length=args.count, size=tuple(args.size), seed=0)
    src[0]  # warm-up

    t, c = time.perf_counter(), time.process_time()
    images = [src[i]["image"] for i in range(args.count)]
    render = _rate(args.count, time.perf_counter() - t)
    render_cpu = _rate(args.count, time.process_time() - c)

    loader = DataLoader(
        src, batch_size=16, num_workers=args.workers, collate_fn=len, persistent_workers=args.workers > 0
    )
    sum(loader)  # warm-up epoch: starts the workers
    t = time.perf_counter()
    n = sum(loader)
    loaded = _rate(n, time.perf_counter() - t)

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, img in enumerate(images):
            paths.append(Path(tmp) / f"{i:05d}.png")
            Image.fromarray(img).save(paths[-1])
        t = time.perf_counter()
        for p in paths:
            read_rgb(p)
        baseline = _rate(len(paths), time.perf_counter() - t)

    h, w = args.size
    print(f"synthetic scenes {h}x{w}, {args.count} images")
    print(f"  render (1 process)        : {render:8.1f} img/s wall, {render_cpu:.1f} img per CPU-second")
    print(f"  DataLoader ({args.workers} workers)    : {loaded:8.1f} img/s  (second epoch, persistent workers)")
    print(f"  baseline PNG decode       : {baseline:8.1f} img/s")
    print(f"  ratio render / baseline   : {render / baseline:8.2f}")
    print(f"  ratio loader / baseline   : {loaded / baseline:8.2f}")
    print(f"  valid-depth fraction      : {np.mean([src[i]['valid'].mean() for i in range(min(50, args.count))]):.3f}")


if __name__ == "__main__":
    main()
