"""Write the generated data in real on-disk formats.

    python tools/make_demo_data.py --out data/demo                  # the demo's data
    python tools/make_demo_data.py --set study --out data/study     # the laptop study's (suites/study_cpu.yaml)

<out>/imagenet/   ImageNet-1K layout (train/<wnid>/*.JPEG, val/<wnid>/*.JPEG), for pretraining
<out>/transfer/   ImageFolder layout (train/<class>/*.jpg, test/<class>/*.jpg): classes
                  pretraining never saw, for classification transfer (cls_finetune)
<out>/coco/       COCO 2017 layout (train2017/, val2017/, annotations/instances_*2017.json); demo only
<out>/ade20k/     ADE20K layout (images/, annotations/ with label 0 = other); demo only

Deterministic for a given --seed; rerunning with the same arguments is a no-op.
"""
from __future__ import annotations

import argparse
import time

from demo_data import DATA_SETS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", choices=sorted(DATA_SETS), default="demo", help="which data set (default: demo)")
    p.add_argument("--out", default=None, help="output folder (default: data/<set>)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    t0 = time.time()
    for line in DATA_SETS[args.set](args.out or f"data/{args.set}", seed=args.seed):
        print(line)
    print(f"done in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
