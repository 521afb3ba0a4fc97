"""Evaluate a fine-tuned detection or segmentation checkpoint (COCO box/mask AP, ADE20K mIoU).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
    bash tools/dist_test.sh CONFIG CHECKPOINT 8

Writes the metrics to <work_dir>/metrics_test.json.
"""
from __future__ import annotations

import sys
from pathlib import Path

from mm_launch import LaunchError, check_datasets, common_parser, load_config, run_checked, run_cli


def main(argv=None) -> int:
    p = common_parser(__doc__)
    p.add_argument("checkpoint", help="a checkpoint written by tools/train.py")
    args = p.parse_args(argv)

    def test() -> None:
        if not Path(args.checkpoint).is_file():
            raise LaunchError(f"checkpoint {args.checkpoint} does not exist")
        cfg = load_config(args)
        cfg.load_from = args.checkpoint
        # The fine-tuned weights replace the backbone's; don't load pretrained weights again.
        cfg.model.backbone.pop("init_cfg", None)
        loaders = ["test_dataloader"]
        check_datasets(cfg, loaders)
        run_checked(cfg, loaders, "test")

    return run_cli(test)


if __name__ == "__main__":
    sys.exit(main())
