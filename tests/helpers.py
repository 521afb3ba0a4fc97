"""Shared by the tests (pytest puts tests/ on sys.path)."""
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# A 2-block ViT at 32x32 with light augmentation: seconds per epoch on 2 cores.
TINY = ["--model", "vit_tiny", "--model_kwargs", "{depth: 2, patch_size: 8, embed_dim: 96, num_heads: 3}",
        "--input_size", "32", "--batch_size", "16", "--lr", "2e-3", "--warmup_epochs", "1",
        "--mixup", "0", "--cutmix", "0", "--aa", "none", "--reprob", "0", "--crop_pct", "1.0",
        "--scale", "0.5", "1.0", "--color_jitter", "0",
        "--num_workers", "0", "--print_freq", "0", "--tensorboard", "false"]


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def run_ok(main, argv):
    assert main([str(a) for a in argv]) == 0


def assert_fails_with(main, argv, capsys, *fragments):
    """``main(argv)`` exits with 2 and prints exactly one line holding every fragment."""
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for f in fragments:
        assert f in err, err
    return err


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
