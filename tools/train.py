"""Fine-tune on COCO (mmdet 3.x) or ADE20K (mmseg 1.x) from a det_configs/ or seg_configs/ file.

    python tools/train.py det_configs/vit_tiny/mask-rcnn_vit-tiny_fpn_1x_coco.py \
        --pretrained output/pretrain/vit_tiny_early_dropout/weights.pth
    bash tools/dist_train.sh CONFIG 8 --pretrained PATH [--resume] [--amp] [--cfg-options k=v ...]

One CPU process works too (--launcher none, the default).
"""
from __future__ import annotations

import sys
from pathlib import Path

from backbones.checkpoint import CheckpointError
from backbones.errors import one_line
from mm_launch import LaunchError, check_datasets, common_parser, load_config, run_checked, run_cli, set_pretrained


def main(argv=None) -> int:
    p = common_parser(__doc__)
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from a checkpoint, or the latest in the work dir when given alone")
    p.add_argument("--amp", action="store_true", help="mixed precision (AmpOptimWrapper, GPUs)")
    p.add_argument("--pretrained", metavar="PATH",
                   help="the pretraining checkpoint the backbone starts from (model.backbone.init_cfg.checkpoint)")
    args = p.parse_args(argv)

    def train() -> None:
        cfg = load_config(args)
        set_pretrained(cfg, args.config, args.pretrained)
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
        try:
            run_checked(cfg, loaders, "train")
        except CheckpointError as exc:  # e.g. a checkpoint of another architecture
            if not args.pretrained:
                raise
            raise LaunchError(f"--pretrained {args.pretrained}: {one_line(exc)}") from None

    return run_cli(train)


if __name__ == "__main__":
    sys.exit(main())
