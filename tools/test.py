"""Evaluate a fine-tuned detection or segmentation checkpoint (COCO box/mask AP, ADE20K mIoU).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
    bash tools/dist_test.sh CONFIG CHECKPOINT 8

Writes the metrics to <work_dir>/metrics_test.json.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backbones.openmmlab.cli import (LaunchError, build_runner, check_datasets, common_parser,  # noqa: E402
                                     load_config, run_reporting_errors)


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
        check_datasets(cfg, ["test_dataloader"])
        build_runner(cfg).test()

    return run_reporting_errors(test)


if __name__ == "__main__":
    sys.exit(main())
