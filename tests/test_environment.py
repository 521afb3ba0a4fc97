"""The installed stack: mmcv's compiled ops agree with torchvision's, and the
repository imports the way OpenMMLab configs import it."""
import subprocess
import sys

import torch
import torchvision

from helpers import REPO


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


def test_mmcv_roi_align_backward_matches_torchvision():
    # Mask R-CNN trains through RoIAlign's backward, which mmcv implements separately per device.
    from mmcv.ops import roi_align
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(2, 3, 12, 12, generator=g)
    corners = torch.rand(16, 2, generator=g) * 8
    rois = torch.cat([torch.randint(0, 2, (16, 1), generator=g).float(), corners,
                      corners + torch.rand(16, 2, generator=g) * 4 + 0.5], dim=1)
    weight = torch.randn(16, 3, 4, 4, generator=g)
    ours, ref = feats.clone().requires_grad_(), feats.clone().requires_grad_()
    (roi_align(ours, rois, (4, 4), 1.0, 2, "avg", True) * weight).sum().backward()
    (torchvision.ops.roi_align(ref, rois, (4, 4), 1.0, 2, aligned=True) * weight).sum().backward()
    torch.testing.assert_close(ours.grad, ref.grad, rtol=1e-5, atol=1e-5)


def test_check_env_covers_every_device_the_suite_uses():
    # tools/check_env.py runs the ops on cpu, plus cuda when torch sees a GPU.
    out = subprocess.run([sys.executable, "tools/check_env.py"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    devices = "cpu, cuda" if torch.cuda.is_available() else "cpu"
    assert f"mmcv.ops.nms and mmcv.ops.roi_align (forward, backward) run on {devices}\n" in out.stdout


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
