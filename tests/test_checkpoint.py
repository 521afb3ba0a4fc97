"""Checkpoint loading: this suite's export, the paper's released layouts, clear failures."""
import re

import pytest
import timm
import torch

import backbones  # noqa: F401  (registers swin_femto)
from backbones.checkpoint import CheckpointError, load_pretrained, provenance


def original_convnext_layout(sd):
    """timm ConvNeXt keys -> the original ConvNeXt repository's (written from
    shared/CHECKPOINT_FORMATS.md, independently of timm's converter)."""
    out = {}
    for k, v in sd.items():
        k2 = re.sub(r"^stem\.", "downsample_layers.0.", k)
        k2 = re.sub(r"^stages\.(\d+)\.downsample\.", r"downsample_layers.\1.", k2)
        k2 = re.sub(r"^stages\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.\2.", k2)
        k2 = k2.replace("conv_dw", "dwconv").replace("mlp.fc1", "pwconv1").replace("mlp.fc2", "pwconv2")
        k2 = k2.replace("head.norm.", "norm.").replace("head.fc.", "head.")
        if "pwconv" in k2 and k2.endswith("weight") and v.ndim == 4:
            v = v.flatten(1)  # the original uses nn.Linear
        out[k2] = v
    return out


def original_swin_layout(sd, model):
    """timm Swin keys -> the original Swin repository's: downsample at the end of
    the previous stage, plain `head`, plus the buffers the original saves."""
    out = {}
    for k, v in sd.items():
        m = re.match(r"layers\.(\d+)\.downsample\.(.*)", k)
        if m:
            k = f"layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}"
        out[k.replace("head.fc.", "head.")] = v
    for name, buf in model.named_buffers():  # saved by the original, recomputed by timm
        if name.endswith("relative_position_index"):
            out[name] = buf
    return out


# The classifier of each model, written out here rather than read from timm.
CLASSIFIER = {"convnext_femto": "head.fc.", "swin_femto": "head.fc."}


def assert_same_backbone(a, b, classifier):
    """Every weight but the classifier's is the same: ConvNeXt's ``head.norm`` (its
    final LayerNorm) and Swin's ``norm`` belong to the backbone and must load."""
    sa, sb = a.state_dict(), b.state_dict()
    compared = [k for k in sa if not k.startswith(classifier)]
    assert len(compared) == len(sa) - 2
    for k in compared:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("name", ["convnext_femto", "swin_femto"])
def test_papers_original_layouts_load_into_timm_models(tmp_path, name):
    torch.manual_seed(0)
    source = timm.create_model(name)
    sd = source.state_dict()
    converted = original_convnext_layout(sd) if name == "convnext_femto" else original_swin_layout(sd, source)
    # The fixture really is in the original layout.
    assert ("downsample_layers.0.0.weight" if name == "convnext_femto" else "layers.0.downsample.reduction.weight") \
        in converted
    path = tmp_path / "released.pth"
    torch.save({"model": converted, "epoch": 299}, path)
    target = timm.create_model(name, num_classes=10)  # a new head, as downstream
    report = load_pretrained(target, path)
    assert_same_backbone(source, target, CLASSIFIER[name])
    assert sorted(report.skipped_head) == [f"{CLASSIFIER[name]}bias", f"{CLASSIFIER[name]}weight"]
    assert len(report.sha256) == 64


def test_vit_position_embedding_is_resized_for_another_input_size(tmp_path):
    torch.manual_seed(0)
    source = timm.create_model("vit_tiny", img_size=64)
    path = tmp_path / "w.pth"
    torch.save({"model": source.state_dict()}, path)
    target = timm.create_model("vit_tiny", img_size=96)
    load_pretrained(target, path)
    assert target.pos_embed.shape == (1, 1 + 36, 192)
    torch.testing.assert_close(target.blocks[3].mlp.fc1.weight, source.blocks[3].mlp.fc1.weight)


def test_wrong_architecture_lists_missing_keys(tmp_path):
    path = tmp_path / "vit.pth"
    torch.save({"model": timm.create_model("vit_tiny").state_dict()}, path)
    with pytest.raises(CheckpointError, match=r"vit\.pth does not (match|fit).*missing from the file: .*stages"):
        load_pretrained(timm.create_model("convnext_femto"), path)
    with pytest.raises(CheckpointError, match="vit.pth.*shapes do not match.*blocks.0.attn.qkv.weight"):
        load_pretrained(timm.create_model("vit_small"), path)


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pth does not exist"):
        load_pretrained(timm.create_model("vit_tiny"), tmp_path / "nope.pth")
    bad = tmp_path / "half.pth"
    torch.save({"model": timm.create_model("vit_tiny").state_dict()}, bad)
    bad.write_bytes(bad.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="half.pth is unreadable"):
        load_pretrained(timm.create_model("vit_tiny"), bad)


def test_provenance_reports_the_pretraining_method(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "meta": {"method": "early-linear dropout 0.1 until epoch 50"}},
               path)
    p = provenance(path)
    assert p["pretrain"]["method"].startswith("early-linear") and len(p["sha256"]) == 64
    torch.save({"model": {"w": torch.zeros(1)}}, path)
    assert "unknown" in provenance(path)["pretrain"]["method"]


def test_a_paper_name_and_its_timm_name_are_one_architecture(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"model": timm.create_model("vit_tiny").state_dict(), "meta": {"arch": "vit_tiny_patch16_224"}}, path)
    assert load_pretrained(timm.create_model("vit_tiny"), path, expected_arch="vit_tiny").loaded > 100
    with pytest.raises(CheckpointError,
                       match="pretrained as 'vit_tiny_patch16_224', but the model here is 'vit_small'"):
        load_pretrained(timm.create_model("vit_small"), path, expected_arch="vit_small")
