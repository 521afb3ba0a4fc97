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


def start_and_kill(module: str, argv, ready, timeout: float = 240) -> None:
    """Run ``python -m module argv`` and SIGKILL it as soon as ``ready()`` holds
    (polled); fails the test if the run ends first or ``ready`` never holds."""
    import subprocess
    import sys
    import time

    import pytest
    proc = subprocess.Popen([sys.executable, "-m", module, *map(str, argv)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"nothing to kill the run at within {timeout}s")
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no chance to clean up, as after a crash
    proc.wait()


def assert_plotted(path, min_colors: int = 8) -> None:
    """``path`` is a PNG with something drawn on it: a figure-sized image using at least
    ``min_colors`` colours (an empty canvas uses one or two). Not its byte size: compare
    writes compact 256-colour PNGs."""
    from PIL import Image
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) >= 100, (path, image.format, image.size)
        used = image.getcolors(maxcolors=1 << 16)
        assert used is None or len(used) >= min_colors, (path, len(used))

# The suite's own CPU presets in pretrain_configs/ (the demo's and the laptop study's): not the paper's recipe.
CPU_PRESETS = ("demo_cpu", "study_cpu")
