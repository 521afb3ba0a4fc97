"""The installed stack: mmcv's compiled ops agree with torchvision's, and the
repository imports the way OpenMMLab configs import it."""
import subprocess
import sys

import torch
import torchvision


def test_mmcv_nms_matches_torchvision():
    from mmcv.ops import nms
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=g) * 100
    wh = torch.rand(200, 2, generator=g) * 30 + 1
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(200, generator=g)
    _, keep = nms(boxes, scores, iou_threshold=0.5)
    expected = torchvision.ops.nms(boxes, scores, 0.5)
    assert keep.tolist() == expected.tolist()


def test_mmcv_roi_align_matches_torchvision():
    from mmcv.ops import roi_align
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 4, 16, 16, generator=g)
    rois = torch.tensor([[0, 1.0, 2.0, 9.5, 12.0], [1, 0.0, 0.0, 15.0, 15.0], [0, 4.2, 3.3, 7.7, 6.1]])
    ours = roi_align(feats, rois, (3, 3), 0.5, 2, "avg", True)
    ref = torchvision.ops.roi_align(feats, rois, (3, 3), spatial_scale=0.5, sampling_ratio=2, aligned=True)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_openmmlab_versions_accept_each_other():
    import mmcv
    import mmdet
    import mmengine
    import mmseg
    assert mmcv.__version__ == "2.1.0"
    assert mmdet.__version__ == "3.3.0" and mmseg.__version__ == "1.2.2"
    assert mmengine.__version__.startswith("0.10.")


def test_custom_imports_work_from_any_directory(tmp_path):
    # What an mmengine config with custom_imports=dict(imports=['backbones']) does.
    code = ("from mmengine.utils import import_modules_from_strings; "
            "import_modules_from_strings(['backbones']); import timm; "
            "print(type(timm.create_model('swin_femto', num_classes=0)).__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "SwinTransformer"
