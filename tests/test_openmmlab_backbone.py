"""TimmDropBackbone and DropScheduleHook, without datasets."""
import pytest
import timm
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from timm.layers import DropPath
from torch.utils.data import TensorDataset

from backbones.checkpoint import CheckpointError
from backbones.openmmlab import DropTransferRunner, TimmDropBackbone

SMALL_VIT = dict(depth=2, patch_size=16, embed_dim=64, num_heads=2)


@pytest.mark.parametrize("arch,kwargs", [("vit_tiny", SMALL_VIT), ("swin_femto", {}), ("convnext_femto", {})])
@pytest.mark.parametrize("size", [(96, 160), (83, 131)])  # a multiple of 32, and ADE20K-like odd sizes
def test_four_scales_at_strides_4_to_32_for_any_input_size(arch, kwargs, size):
    backbone = TimmDropBackbone(arch, model_kwargs=kwargs)
    h, w = size
    outs = backbone(torch.randn(1, 3, h, w))
    assert [tuple(o.shape[2:]) for o in outs] == [(-(-h // s), -(-w // s)) for s in (4, 8, 16, 32)]
    assert [o.shape[1] for o in outs] == backbone.channels


@pytest.mark.parametrize("arch,kwargs", [("vit_tiny", SMALL_VIT), ("swin_femto", {})])
def test_padding_leaves_the_features_of_a_divisible_input_alone(arch, kwargs):
    """Inputs the architecture takes as they are come out as without the padding code."""
    torch.manual_seed(0)
    backbone = TimmDropBackbone(arch, model_kwargs=kwargs).eval()
    x = torch.randn(1, 3, 64, 96)
    direct = backbone.model.forward_intermediates(x, indices=backbone.out_indices, intermediates_only=True,
                                                  output_fmt="NCHW")
    outs = backbone(x)
    expected = backbone.pyramid(direct[-1]) if backbone.plain else [n(f) for n, f in zip(backbone.out_norms, direct)]
    for got, want in zip(outs, expected):
        torch.testing.assert_close(got, want)


def test_pretrained_weights_load_through_init_cfg(tmp_path):
    torch.manual_seed(0)
    pretrained = timm.create_model("vit_tiny", num_classes=12, **SMALL_VIT)
    path = tmp_path / "weights.pth"
    torch.save({"model": pretrained.state_dict(), "meta": {"arch": "vit_tiny", "method": "no dropout"}}, path)
    backbone = TimmDropBackbone("vit_tiny", model_kwargs=SMALL_VIT,
                                init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    backbone.init_weights()
    torch.testing.assert_close(backbone.model.blocks[1].attn.qkv.weight, pretrained.blocks[1].attn.qkv.weight)
    assert backbone.pretrained_provenance["pretrain"]["method"] == "no dropout"

    other = tmp_path / "convnext.pth"
    torch.save({"model": timm.create_model("convnext_femto").state_dict()}, other)
    wrong = TimmDropBackbone("vit_tiny", model_kwargs=SMALL_VIT,
                             init_cfg=dict(type="Pretrained", checkpoint=str(other)))
    with pytest.raises(CheckpointError, match=r"convnext\.pth does not match .*missing from the file: .*blocks"):
        wrong.init_weights()


def test_frozen_stages_and_train_mode():
    backbone = TimmDropBackbone("convnext_femto", frozen_stages=1)
    backbone.train()
    assert not any(p.requires_grad for p in backbone.model.stem.parameters())
    assert not any(p.requires_grad for p in backbone.model.stages[0].parameters())
    assert all(p.requires_grad for p in backbone.model.stages[1].parameters())
    assert not backbone.model.stages[0].training and backbone.model.stages[1].training
    with pytest.raises(ValueError, match="frozen_stages=9"):
        TimmDropBackbone("convnext_femto", frozen_stages=9)


def test_mixer_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="MLP-Mixer .* cannot take detection"):
        TimmDropBackbone("mixer_s32")


# ---- the hook, in a real mmengine Runner -------------------------------------------


class ToyDetector(BaseModel):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = TimmDropBackbone(**backbone)

    def forward(self, x, mode="loss"):
        feats = self.backbone(x)
        return {"loss": sum(f.mean() for f in feats)}


class RecordRates(Hook):
    priority = "LOW"  # after DropScheduleHook (NORMAL) has set the rates

    def __init__(self):
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        backbone = runner.model.backbone
        # every dropout of the body (the headless model keeps an unused head_drop)
        dropouts = {m.p for n, m in backbone.named_modules() if isinstance(m, nn.Dropout) and "head_drop" not in n}
        deepest = max((m.drop_prob for m in backbone.modules() if isinstance(m, DropPath)), default=0.0)
        self.seen.append((runner.iter, dropouts, deepest))


def run_with_hook(tmp_path, backbone, hook, max_iters=10, by_epoch=False):
    data = TensorDataset(torch.randn(8, 3, 32, 32))
    recorder = RecordRates()
    loop = dict(type="EpochBasedTrainLoop", max_epochs=max_iters // 4) if by_epoch else \
        dict(type="IterBasedTrainLoop", max_iters=max_iters)
    runner = DropTransferRunner(
        model=ToyDetector(backbone), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=data, batch_size=2, sampler=dict(type="DefaultSampler", shuffle=False),
                              collate_fn=lambda b: {"x": torch.stack([t[0] for t in b])}),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.0)), train_cfg=loop,
        custom_hooks=[hook, recorder], default_hooks=dict(checkpoint=None))
    runner.train()
    return recorder.seen


def test_hook_drives_early_dropout_by_iteration(tmp_path):
    backbone = dict(arch="vit_tiny", dropout=0.2, model_kwargs=dict(SMALL_VIT, img_size=32))
    seen = run_with_hook(tmp_path, backbone,
                         dict(type="DropScheduleHook", drop_mode="early", drop_schedule="linear", cutoff=5))
    assert [it for it, _, _ in seen] == list(range(10))
    for it, dropouts, _ in seen:  # linspace(0.2, 0, 5) for the first 5 iterations, then 0
        expected = 0.2 * (1 - it / 4) if it < 5 else 0.0
        assert len(dropouts) == 1 and dropouts.pop() == pytest.approx(expected), it
    record = (tmp_path / "run.json").read_text()
    assert "early-linear dropout 0.2" in record


def test_hook_drives_late_stochastic_depth_by_epoch(tmp_path):
    backbone = dict(arch="vit_tiny", drop_path=0.3, model_kwargs=dict(SMALL_VIT, img_size=32))
    # 4 iterations per epoch (8 images / batch 2), 3 epochs, on from epoch 1
    seen = run_with_hook(tmp_path, backbone, dict(type="DropScheduleHook", drop_mode="late", cutoff=1),
                         max_iters=12, by_epoch=True)
    assert [round(d, 6) for _, _, d in seen] == [0.0] * 4 + [0.3] * 8


def test_hook_rejects_a_cutoff_past_the_end(tmp_path):
    backbone = dict(arch="vit_tiny", dropout=0.1, model_kwargs=dict(SMALL_VIT, img_size=32))
    with pytest.raises(ValueError, match="cutoff=50 iterations is past the end of training"):
        run_with_hook(tmp_path, backbone, dict(type="DropScheduleHook", drop_mode="early", cutoff=50))


# ---- layer-wise lr decay: ConvNeXt's constructor's groups, computed here from the names ----------

def convnext_layer_wise(name: str, top: int) -> int:
    """facebookresearch/ConvNeXt get_num_layer_layer_wise, written for timm's names
    (ConvNeXt ``stem``/``stages``, Swin ``patch_embed``/``layers``; a stage's
    ``downsample`` is ConvNeXt's ``downsample_layers.<stage>``)."""
    parts = name.split(".")
    if parts[0] in ("stem", "patch_embed"):
        return 0
    if parts[0] in ("stages", "layers"):
        stage = int(parts[1])
        block = int(parts[3]) if parts[2] == "blocks" else 0
        return {0: 1, 1: 2, 2: 3 + block // 3, 3: top}[stage]
    return top + 1


def convnext_stage_wise(name: str, top: int) -> int:
    """facebookresearch/ConvNeXt get_num_layer_stage_wise, for timm's names."""
    parts = name.split(".")
    if parts[0] in ("stem", "patch_embed"):
        return 0
    if parts[0] in ("stages", "layers"):
        return int(parts[1]) + 1 if parts[2] == "blocks" else 0
    return top + 1


def vit_per_block(name: str, top: int) -> int:
    """BEiT / MAE / ViTDet: embeddings 0, block i -> i + 1."""
    if name.startswith(("patch_embed", "cls_token", "pos_embed")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return top + 1


def built_lrs(arch, kwargs, paramwise_cfg):
    from mmengine.optim import build_optim_wrapper

    model = ToyDetector(dict(arch=arch, model_kwargs=kwargs))
    model.neck = nn.Conv2d(4, 4, 1)  # something after the backbone
    wrapper = build_optim_wrapper(model, dict(
        optimizer=dict(type="AdamW", lr=1.0, weight_decay=0.05),
        constructor="LayerDecayOptimWrapperConstructor", paramwise_cfg=paramwise_cfg))
    lr_of = {n: g["lr"] for g in wrapper.optimizer.param_groups for n in g["param_names"]}
    wd_of = {n: g["weight_decay"] for g in wrapper.optimizer.param_groups for n in g["param_names"]}
    assert len(lr_of) == sum(1 for p in model.parameters() if p.requires_grad)
    assert lr_of["neck.weight"] == 1.0 and wd_of["neck.weight"] == 0.05 and wd_of["neck.bias"] == 0.0
    return lr_of


@pytest.mark.parametrize("arch,kwargs,decay_type,rate,top,rule", [
    ("convnext_femto", {}, "layer_wise", 0.95, 5, convnext_layer_wise),   # depths 2-2-6-2: 5 groups
    ("convnext_femto", {}, "layer_wise", 0.95, 6, convnext_layer_wise),   # ConvNeXt-T's num_layers: a gap
    ("convnext_femto", {}, "stage_wise", 0.9, 6, convnext_stage_wise),
    ("swin_femto", {}, "layer_wise", 0.95, 5, convnext_layer_wise),
    ("swin_femto", {}, "stage_wise", 0.9, 6, convnext_stage_wise),
    ("vit_tiny", {}, "layer_wise", 0.7, 12, vit_per_block)])
def test_layer_decay_groups_as_convnexts_constructor(arch, kwargs, decay_type, rate, top, rule):
    lr_of = built_lrs(arch, kwargs, dict(decay_type=decay_type, layer_decay_rate=rate, num_layers=top))
    prefix = "backbone.model."
    for name, lr in lr_of.items():
        if name.startswith(prefix):
            # ConvNeXt's scale: decay_rate ** (num_layers + 2 - layer_id - 1)
            assert lr == pytest.approx(rate ** (top + 1 - rule(name[len(prefix):], top))), name
        else:  # the pyramid, output norms, neck: after the last layer
            assert lr == 1.0, name
    stem = next(n for n in lr_of if n.startswith((prefix + "patch_embed", prefix + "stem")))
    assert lr_of[stem] == pytest.approx(rate ** (top + 1))


def test_layer_decay_defaults_to_as_many_groups_as_the_rule_gives():
    lr_of = built_lrs("convnext_femto", {}, dict(layer_decay_rate=0.5))  # layer_wise, num_layers 5
    assert lr_of["backbone.model.stem.0.weight"] == pytest.approx(0.5 ** 6)
    assert lr_of["backbone.model.stages.2.blocks.5.conv_dw.weight"] == pytest.approx(0.5 ** 2)  # group 4
    assert lr_of["backbone.model.stages.3.blocks.1.conv_dw.weight"] == pytest.approx(0.5)


@pytest.mark.parametrize("arch,paramwise_cfg,message", [
    ("vit_tiny", dict(decay_type="block_wise"), r"paramwise_cfg.decay_type: decay_type 'block_wise' is not one of"),
    ("vit_tiny", dict(decay_type="stage_wise"), r"paramwise_cfg.decay_type: .*needs a model with stages"),
    ("convnext_femto", dict(num_layers=4), r"paramwise_cfg.num_layers: num_layers=4 is fewer than the 5"),
    ("convnext_femto", dict(layer_decay_rate=1.5), r"paramwise_cfg.layer_decay_rate: .*must lie in"),
    ("convnext_femto", dict(decay_rate=0.9), r"paramwise_cfg.decay_rate: not a key")])
def test_bad_layer_decay_keys_are_user_errors_naming_the_key(arch, paramwise_cfg, message):
    from backbones.errors import UserError
    with pytest.raises(UserError, match=message):
        built_lrs(arch, SMALL_VIT if arch == "vit_tiny" else {}, paramwise_cfg)
