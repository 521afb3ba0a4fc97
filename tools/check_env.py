"""Check that the installed stack is the one this suite needs, and that mmcv's
C++ ops really run on the CPU. Exits non-zero with one line per problem."""
import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quiet", action="store_true", help="print only problems")
    args = parser.parse_args()
    problems = []

    def report(msg: str) -> None:
        if not args.quiet:
            print(f"[check] {msg}")

    try:
        import torch
        import torchvision
        import timm
        import mmengine
        report(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
               f"timm {timm.__version__}, mmengine {mmengine.__version__}")
    except Exception as exc:  # noqa: BLE001 - we want any import failure reported
        print(f"[check] import failed: {exc}", file=sys.stderr)
        return 1

    try:
        from mmcv.ops import nms, roi_align
        boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)
        scores = torch.tensor([0.9, 0.8, 0.7])
        _, keep = nms(boxes, scores, iou_threshold=0.5)
        if keep.tolist() != [0, 2]:
            problems.append(f"mmcv.ops.nms returned {keep.tolist()}, expected [0, 2]")
        feat = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
        rois = torch.tensor([[0, 0, 0, 4, 4]], dtype=torch.float32)
        out = roi_align(feat, rois, (2, 2), 1.0, 2, "avg", True)
        if tuple(out.shape) != (1, 1, 2, 2):
            problems.append(f"mmcv.ops.roi_align returned shape {tuple(out.shape)}")
        report("mmcv.ops.nms and mmcv.ops.roi_align run on CPU")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"mmcv ops unavailable: {exc}")

    try:
        import warnings
        with warnings.catch_warnings():  # its own deprecation notice is not our problem
            warnings.simplefilter("ignore")
            import pkg_resources  # noqa: F401  (mmengine's Config resolves `mmdet::` bases with it)
        report("pkg_resources available for mmengine's cross-package config bases")
    except ImportError:
        problems.append("pkg_resources is missing: mmengine cannot resolve 'mmdet::' config bases "
                        "(setup pins setuptools<70)")

    for mod in ("mmdet", "mmseg"):
        try:
            m = __import__(mod)  # their __init__ asserts the mmcv/mmengine version ranges
            report(f"{mod} {m.__version__} imports and accepts the installed mmcv")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"import {mod} failed: {exc}")

    try:
        import backbones  # noqa: F401
        report("this repository's packages import")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"import backbones failed: {exc}")

    for p in problems:
        print(f"[check] PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
