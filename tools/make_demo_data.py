"""Write the generated demo data in real on-disk formats.

    python tools/make_demo_data.py --out data/demo

<out>/imagenet/   ImageNet-1K layout (train/<wnid>/*.JPEG, val/<wnid>/*.JPEG)

Deterministic for a given --seed; rerunning with the same arguments is a no-op.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from demo_data import write_imagenet


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="data/demo")
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.add_argument("--train-per-class", type=int, default=150)
    p.add_argument("--val-per-class", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    t0 = time.time()
    root = Path(args.out) / "imagenet"
    spec = write_imagenet(root, train_per_class=args.train_per_class, val_per_class=args.val_per_class,
                          size=args.size, seed=args.seed)
    print(f"ImageNet-style folders: {root} ({len(spec['categories'])} classes, "
          f"{args.train_per_class}/{args.val_per_class} train/val images per class) in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
