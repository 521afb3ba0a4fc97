"""The OpenMMLab backbone wrapper against OpenMMLab's own backbones: a Mask R-CNN
(mmdet) and an UperNet (mmseg) training iteration with ``TimmDropBackbone``
Swin-F against the same detector / segmentor with mmdet's / mmseg's
``SwinTransformer`` at Swin-F's dims (embed 40, depths 2-2-6-2, heads 2-4-8-16,
window 7, drop path 0.1).

    .venv/bin/python benchmarks/bench_mm_backbone.py [--rounds 4] [--size 224]

Both models come from the suite's configs
(``det_configs/_base_/models/mask-rcnn_swin-femto-fpn.py``,
``seg_configs/_base_/models/upernet_swin-femto.py``) with only the backbone
swapped; random weights (lr 0, so every iteration sees the same weights and
the same proposals), one fixed batch of 2 images at ``--size`` px (mmdet's
``demo_mm_inputs``: 3 boxes with masks per image; random 150-class label maps).
The iterations alternate; the backbone's forward + backward alone is timed
the same way. Target: wrapper/OpenMMLab <= 1.05. Peak RSS per model in its own
process. ConvNeXt is compared only where mmpretrain (OpenMMLab's ConvNeXt;
mmdet and mmseg have none of their own) is installed.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys

import benchlib

SWIN_F = dict(embed_dims=40, depths=(2, 2, 6, 2), num_heads=(2, 4, 8, 16), window_size=7, drop_path_rate=0.1,
              out_indices=(0, 1, 2, 3))
CONFIGS = {"det": "det_configs/_base_/models/mask-rcnn_swin-femto-fpn.py",
           "seg": "seg_configs/_base_/models/upernet_swin-femto.py"}
CONVNEXT_CONFIGS = {"det": "det_configs/_base_/models/mask-rcnn_convnext-femto-fpn.py",
                    "seg": "seg_configs/_base_/models/upernet_convnext-femto.py"}
# convnext_femto: depths 2-2-6-2, dims 48-96-192-384 (timm)
CONVNEXT_F = dict(type="mmpretrain.ConvNeXt", arch=dict(depths=[2, 2, 6, 2], channels=[48, 96, 192, 384]),
                  out_indices=(0, 1, 2, 3), drop_path_rate=0.1, gap_before_final_norm=False)


def build_model(task: str, backbone: str, arch: str = "swin"):
    """``task`` det|seg, ``backbone`` wrapper|openmmlab: the model in train mode."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import backbones.openmmlab  # noqa: F401  (registers TimmDropBackbone)
    cfg = Config.fromfile(f"{benchlib.REPO}/{(CONFIGS if arch == 'swin' else CONVNEXT_CONFIGS)[task]}")
    init_default_scope("mmdet" if task == "det" else "mmseg")
    if task == "det":
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
        cfg.model.data_preprocessor.size = None  # no padding to ADE20K's 512 crop
        cfg.model.data_preprocessor.size_divisor = 32
    if backbone == "wrapper":
        cfg.model.backbone.init_cfg = None
    elif arch == "swin":
        cfg.model.backbone = dict(type="SwinTransformer", **SWIN_F)
    else:
        cfg.model.backbone = dict(CONVNEXT_F)
    torch.manual_seed(0)
    return MODELS.build(cfg.model).train()  # default initialisation: the timing needs no init_weights


def make_batch(task: str, size):
    """Two images of ``size`` (an int: square; else (height, width)) with their targets."""
    import torch
    torch.manual_seed(0)
    h, w = (size, size) if isinstance(size, int) else size
    if task == "det":
        from mmdet.testing import demo_mm_inputs
        return demo_mm_inputs(batch_size=2, image_shapes=(3, h, w), num_items=[3, 3], num_classes=80,
                              with_mask=True)
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, h, w)))
        samples.append(s)
    return {"inputs": [torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for _ in range(2)],
            "data_samples": samples}


def train_step(model, batch):
    """One training iteration as mmengine's runner does it (lr 0: the weights stay)."""
    import torch
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9, weight_decay=1e-4)

    def step():
        data = model.data_preprocessor(batch, True)
        loss, _ = model.parse_losses(model(**data, mode="loss"))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def backbone_step(model, batch):
    """The backbone's forward + backward alone on the preprocessed images."""
    inputs = model.data_preprocessor(batch, True)["inputs"]

    def step():
        sum(f.float().mean() for f in model.backbone(inputs)).backward()
    return step


def case_names(arch: str):
    return [f"{task}_{bb}_{arch}" for task in CONFIGS for bb in ("wrapper", "openmmlab")]


def build_case(name: str, size: int):
    task, backbone, arch = name.split("_")
    model = build_model(task, backbone, arch)
    batch = make_batch(task, size)
    return model, batch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchlib.add_rounds_argument(p, 4)
    p.add_argument("--size", type=int, default=224)
    benchlib.add_case_arguments(p)
    a = p.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    if a.memory:
        import mmdet.models  # noqa: F401  (OpenMMLab's imports are not the model's memory)
        import mmseg.models  # noqa: F401
        benchlib.mark_baseline()
        model, batch = build_case(a.memory, a.size)
        step = train_step(model, batch)
        for _ in range(2):
            step()
        return benchlib.emit({"case": a.memory})
    archs = ["swin"] + (["convnext"] if importlib.util.find_spec("mmpretrain") else [])
    print(benchlib.header(f"TimmDropBackbone vs OpenMMLab's backbones: training iterations, batch 2 at "
                          f"{a.size}x{a.size}, CPU"))
    if "convnext" not in archs:
        print("# ConvNeXt: skipped, mmpretrain is not installed (mmdet/mmseg have no ConvNeXt of their own)")
    for arch in archs:
        for task in CONFIGS:
            pair = {bb: build_case(f"{task}_{bb}_{arch}", a.size) for bb in ("wrapper", "openmmlab")}
            params = {bb: sum(t.numel() for t in m.backbone.parameters()) for bb, (m, _) in pair.items()}
            cpu, bb_cpu = {}, {}
            iters = benchlib.alternate({bb: train_step(m, b) for bb, (m, b) in pair.items()}, a.rounds, cpu=cpu)
            bb_only = benchlib.alternate({bb: backbone_step(m, b) for bb, (m, b) in pair.items()}, a.rounds,
                                         cpu=bb_cpu)
            mem = benchlib.memory_of_cases(__file__, [f"{task}_{bb}_{arch}" for bb in pair], ["--size", a.size])
            head = "Mask R-CNN" if task == "det" else "UperNet"
            print(f"\n{head} + {arch}-F, {a.rounds} alternating rounds, {a.threads} thread(s), seconds "
                  "(median (min-max)), wall clock / CPU")
            for bb in pair:
                print(f"  {bb:<10} iteration {benchlib.spread(iters[bb])} / {benchlib.spread(cpu[bb])} s   "
                      f"backbone fwd+bwd {benchlib.spread(bb_only[bb])} / {benchlib.spread(bb_cpu[bb])} s   "
                      f"backbone params {params[bb] / 1e6:.2f} M   {benchlib.memory_text(mem[f'{task}_{bb}_{arch}'])}")
            for what, wall, cpu_s, target in (("iteration", iters, cpu, "<= 1.05"),
                                              ("backbone fwd+bwd", bb_only, bb_cpu, "(reported)")):
                for clock, t in (("wall", wall), ("CPU", cpu_s)):
                    print("  " + benchlib.ratio_line(f"wrapper/openmmlab {what} ({clock})",
                                                     benchlib.ratio(t["wrapper"], t["openmmlab"]), target))


if __name__ == "__main__":
    sys.exit(main())
