"""Fine-tune on COCO (mmdet 3.x) or ADE20K (mmseg 1.x) from a det_configs/ or seg_configs/ file.

    python tools/train.py det_configs/vit_tiny/mask-rcnn_vit-tiny_fpn_1x_coco_early-dropout.py
    bash tools/dist_train.sh CONFIG 8 [--resume] [--amp] [--cfg-options k=v ...]

One CPU process works too (--launcher none, the default).
"""
from __future__ import annotations

import sys
from pathlib import Path

from mm_launch import LaunchError, check_datasets, common_parser, load_config, run_checked, run_cli


def main(argv=None) -> int:
    p = common_parser(__doc__)
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from a checkpoint, or the latest in the work dir when given alone")
    p.add_argument("--amp", action="store_true", help="mixed precision (AmpOptimWrapper, GPUs)")
    args = p.parse_args(argv)

    def train() -> None:
        cfg = load_config(args)
        if args.amp:
            cfg.optim_wrapper.type = "AmpOptimWrapper"
            cfg.optim_wrapper.loss_scale = "dynamic"
        if args.resume == "auto":
            cfg.resume, cfg.load_from = True, None
        elif args.resume:
            if not Path(args.resume).is_file():
                raise LaunchError(f"--resume {args.resume}: no such checkpoint")
            cfg.resume, cfg.load_from = True, args.resume
        loaders = ["train_dataloader", "val_dataloader"]
        check_datasets(cfg, loaders)
        run_checked(cfg, loaders, "train")

    return run_cli(train)


if __name__ == "__main__":
    sys.exit(main())
