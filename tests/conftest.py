"""Fixtures shared across test files."""
import pytest

from demo_data import write_imagenet
from helpers import TINY, run_ok
from pretrain.main import main as pretrain_main

# A 4-block ViT-T-like model, patch 8 at 64x64: about a minute of pretraining on 2 cores.
LEARNER = ["--model_kwargs", "{depth: 4, patch_size: 8, embed_dim: 96, num_heads: 3}", "--input_size", "64",
           "--epochs", "12", "--batch_size", "32", "--lr", "5e-4", "--smoothing", "0.0"]


@pytest.fixture(scope="session")
def learned_pretraining(tmp_path_factory):
    """The output dir of a pretraining run that learns the 12 generated classes
    (test_pretrain checks that it did; classification transfer starts from it)."""
    root = tmp_path_factory.mktemp("learned")
    write_imagenet(root / "data", train_per_class=100, val_per_class=20, size=64, seed=2)
    run_ok(pretrain_main, [*TINY, *LEARNER, "--data_path", root / "data", "--output_dir", root / "run"])
    return root / "run"


@pytest.fixture(scope="session")
def small_imagenet(tmp_path_factory):
    """12 classes x 8 images at 32x32: seconds per epoch."""
    root = tmp_path_factory.mktemp("imagenet")
    write_imagenet(root, train_per_class=8, val_per_class=4, size=32, seed=1)
    return root
