"""Write the generated demo data in real on-disk formats.

    python tools/make_demo_data.py --out data/demo

<out>/imagenet/   ImageNet-1K layout (train/<wnid>/*.JPEG, val/<wnid>/*.JPEG), for pretraining
<out>/transfer/   ImageFolder layout (train/<class>/*.jpg, test/<class>/*.jpg): classes
                  pretraining never saw, for classification transfer (cls_finetune)
<out>/coco/       COCO 2017 layout (train2017/, val2017/, annotations/instances_*2017.json)
<out>/ade20k/     ADE20K layout (images/, annotations/ with label 0 = other)

Deterministic for a given --seed; rerunning with the same arguments is a no-op.
"""
from __future__ import annotations

import argparse
import time

from demo_data import write_demo_data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="data/demo")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    t0 = time.time()
    for line in write_demo_data(args.out, seed=args.seed):
        print(line)
    print(f"done in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
