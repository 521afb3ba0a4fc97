"""The drop-rate setter on each of the paper's models."""
import pytest
import timm
import torch
import torch.nn as nn
from timm.layers import DiffAttention, DropPath

from backbones import PAPER_MODELS, DropSites, NoDropSitesError, create_model_with_drop

# Small inputs where the architecture allows (Swin's windows need 224).
IMG_SIZE = {"vit_tiny": 64, "vit_small": 64, "vit_base": 32, "mixer_s32": 64, "mixer_b16": 32,
            "convnext_femto": 64, "swin_femto": 224}
# What each model supports: ConvNeXt has only stochastic depth.
HAS_DROPOUT = {name: name != "convnext_femto" for name in PAPER_MODELS}


def build(name, **kwargs):
    size_kw = {} if name == "convnext_femto" else {"img_size": IMG_SIZE[name]}
    return create_model_with_drop(name, **size_kw, **kwargs)


def drop_path_probs(model):
    return {n: m.drop_prob for n, m in model.named_modules() if isinstance(m, DropPath)}


# MLP-Mixer follows the paper's spread, not timm's (tests/test_fidelity.py).
@pytest.mark.parametrize("name", [n for n in sorted(PAPER_MODELS) if not n.startswith("mixer")])
def test_drop_path_spread_matches_timms_own_construction(name):
    model = build(name, drop_path=0.1)
    sites = DropSites(model, name)
    assert sites.num_drop_path > 0
    sites.apply(0.0, 0.3)
    # timm's own construction at 0.3 is the independent reference for the spread over depth.
    size_kw = {} if name == "convnext_femto" else {"img_size": IMG_SIZE[name]}
    reference = drop_path_probs(timm.create_model(name, drop_path_rate=0.3, **size_kw))
    ours = drop_path_probs(model)
    assert set(reference) <= set(ours)
    for key, prob in reference.items():
        assert ours[key] == pytest.approx(prob, rel=1e-6), key
    # Sites timm omits at 0.3 (rate 0 at the first block) stay at 0.
    assert all(ours[k] == 0 for k in set(ours) - set(reference))
    assert sites.current()[1] == pytest.approx(0.3)


def test_vit_drop_path_is_linear_over_depth():
    model = build("vit_tiny", drop_path=0.05)
    DropSites(model).apply(0.0, 0.2)
    expected = torch.linspace(0, 0.2, 12)
    for i, block in enumerate(model.blocks):
        got = block.drop_path1.drop_prob if isinstance(block.drop_path1, DropPath) else 0.0
        assert got == pytest.approx(float(expected[i]), abs=1e-7)


@pytest.mark.parametrize("name", [n for n in sorted(PAPER_MODELS) if HAS_DROPOUT[n]])
def test_dropout_reaches_every_site_including_fused_attention(name):
    model = build(name, dropout=0.1)
    sites = DropSites(model, name)
    sites.apply(0.25, 0.0)
    body = [(n, m) for n, m in model.named_modules()
            if isinstance(m, nn.Dropout) and n.split(".")[0] not in ("head", "head_drop")]
    assert body and len(body) == sites.num_dropout
    assert all(m.p == 0.25 for _, m in body)
    # Attention modules (fused or not) read their probability from attn_drop.p.
    attn = [m for n, m in model.named_modules() if hasattr(m, "attn_drop") and isinstance(m.attn_drop, nn.Dropout)]
    if name.startswith(("vit", "swin")):
        assert attn and all(m.attn_drop.p == 0.25 for m in attn)


def test_float_attention_dropout_is_set_too():
    model = nn.Sequential(DiffAttention(dim=16, num_heads=2, attn_drop=0.0))
    sites = DropSites(model)
    sites.apply(0.4, 0.0)
    assert model[0].attn_drop_p == 0.4 and model[0].attn_drop.p == 0.4


@pytest.mark.parametrize("name", sorted(PAPER_MODELS))
def test_rate_zero_train_forward_equals_eval(name):
    kind = {"drop_path": 0.1} if name == "convnext_femto" else {"dropout": 0.1}
    model = build(name, **kind)
    sites = DropSites(model, name)
    x = torch.randn(2, 3, IMG_SIZE[name], IMG_SIZE[name], generator=torch.Generator().manual_seed(0))
    sites.apply(0.0, 0.0)
    # Features, not logits: some timm heads start at zero (MLP-Mixer).
    with torch.no_grad():
        model.train()
        train_out = model.forward_features(x)
        model.eval()
        eval_out = model.forward_features(x)
    torch.testing.assert_close(train_out, eval_out, rtol=0, atol=0)
    # And the sites are live: a high rate changes the train-mode output.
    sites.apply(*((0.0, 0.5) if name == "convnext_femto" else (0.5, 0.0)))
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model.forward_features(x), eval_out)


@pytest.mark.parametrize("name", sorted(PAPER_MODELS))
def test_late_construction_keeps_sites_at_rate_zero(name):
    # Late stochastic depth and late dropout start at 0: the sites must exist anyway.
    model = build(name, drop_path=0.1)
    sites = DropSites(model, name)
    sites.apply(0.0, 0.0)
    assert sites.num_drop_path > 0
    assert all(p == 0 for p in drop_path_probs(model).values())
    sites.apply(0.0, 0.1)
    assert max(drop_path_probs(model).values()) == pytest.approx(0.1)
    if HAS_DROPOUT[name]:
        model = build(name, dropout=0.1)
        sites = DropSites(model, name)
        sites.apply(0.0, 0.0)
        assert sites.num_dropout > 0
        assert all(m.p == 0 for m in sites.dropouts)


def test_dropout_on_convnext_is_refused():
    with pytest.raises(NoDropSitesError, match="convnext_femto has no dropout sites.*drop_path"):
        create_model_with_drop("convnext_femto", dropout=0.1)


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown model 'vit_gigantic_dream'.*swin_femto"):
        create_model_with_drop("vit_gigantic_dream")


def test_setter_needs_a_nonzero_construction_rate():
    model = nn.Sequential(DropPath(0.0), DropPath(0.0))
    with pytest.raises(NoDropSitesError, match="built with rate 0"):
        DropSites(model)


def test_swin_femto_has_the_papers_sizes():
    model = timm.create_model("swin_femto")
    assert [layer.blocks[0].norm1.normalized_shape[0] for layer in model.layers] == [40, 80, 160, 320]
    assert [len(layer.blocks) for layer in model.layers] == [2, 2, 6, 2]
    assert [layer.blocks[0].attn.num_heads for layer in model.layers] == [2, 4, 8, 16]
    assert model.patch_embed.proj.kernel_size == (4, 4)
    assert model.layers[0].blocks[0].window_size == (7, 7)
    assert model.num_classes == 1000


@pytest.mark.parametrize("name,target", sorted(PAPER_MODELS.items()))
def test_paper_names_build_timms_architectures(name, target):
    ours = timm.create_model(name)
    theirs = timm.create_model(target)
    assert type(ours) is type(theirs)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
           [(k, v.shape) for k, v in theirs.state_dict().items()]
