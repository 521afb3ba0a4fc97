"""The paper's gradient diagnostics: plot them for several runs, or measure them
on saved checkpoints.

    # runs trained with --diag_every N (each has diagnostics.jsonl): one PNG, one JSON
    python tools/analyze_gradients.py plot output/pretrain/a output/pretrain/b --out diag.png

    # measure at saved training checkpoints (checkpoint-*.pth of this suite)
    python tools/analyze_gradients.py measure output/pretrain/a/checkpoint-last.pth --out m.json

Measures: gradient norm, distance to the initial weights (needs the run's
init_weights.pth), gradient direction variance (GDV) and error (GDE); see
pretrain/diagnostics.py for the definitions.
"""
from __future__ import annotations

import argparse
import json
import sys
from argparse import Namespace
from pathlib import Path

import records
from analysis.plots import method_colors, plot_diagnostics
from common.errors import UserError, run_cli
from common.names import INIT_WEIGHTS
from records.curves import diagnostics_curves


def load_runs(runs) -> dict:
    """{run label: its diagnostics.jsonl records}."""
    series = {}
    for run in map(Path, runs):
        log = run / records.DIAGNOSTICS
        if not log.is_file():
            raise UserError(f"{log} not found (train with --diag_every N to write it)")
        series[records.run_label(run)] = records.read_jsonl(log)
    return series


def plot(runs, out: Path) -> None:
    """The runs side by side (one line each), with compare's diagnostics figure."""
    curves = {records.run_label(run): [diagnostics_curves(run)] for run in map(Path, runs)}
    plot_diagnostics(curves, method_colors(list(curves)), out)


def measure_checkpoints(paths, args) -> list:
    import torch
    import torch.nn as nn

    from backbones import DropPlan, DropSites
    from pretrain.data import build_loaders, diagnostic_batches
    from pretrain.diagnostics import measure
    from training.data import check_image_folder
    from training.distributed import pick_device
    from training.run import build_timm_model
    from training.state import load_training_checkpoint

    device = pick_device()
    results = []
    for path in map(Path, paths):
        ckpt = load_training_checkpoint(path)
        run_args = Namespace(**ckpt["args"])
        if args.data_path:
            run_args.data_path = args.data_path
        run_args.diag_batches, run_args.diag_samples = args.batches, args.samples
        run_args.num_workers = args.num_workers
        classes = check_image_folder(Path(run_args.data_path) / "train")
        model = build_timm_model(run_args, len(classes))
        model.load_state_dict(ckpt["model"])
        model.to(device)
        # The drop rates the run had at this update.
        plan = DropPlan.from_flags(ckpt["args"], ckpt["iters_per_epoch"])
        DropSites(model, run_args.model).apply(*plan(ckpt["next_step"]))
        *_, eval_tf = build_loaders(run_args, model)
        minibatches, batches = diagnostic_batches(run_args, eval_tf)
        init = path.parent / INIT_WEIGHTS
        initial = torch.load(init, map_location="cpu", weights_only=True) if init.is_file() else None
        rec = measure(model, nn.CrossEntropyLoss(), minibatches, batches, device, initial=initial,
                      seed=run_args.seed)
        results.append({"checkpoint": str(path), "step": ckpt["next_step"], **rec})
        print(json.dumps(results[-1]))
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("plot", help="plot diagnostics.jsonl of several runs side by side")
    pp.add_argument("runs", nargs="+")
    pp.add_argument("--out", default="gradient_diagnostics.png")
    pm = sub.add_parser("measure", help="measure on saved training checkpoints")
    pm.add_argument("checkpoints", nargs="+")
    pm.add_argument("--data_path", default=None, help="default: the run's own")
    pm.add_argument("--batches", type=int, default=8)
    pm.add_argument("--samples", type=int, default=2048)
    pm.add_argument("--num_workers", type=int, default=2)
    pm.add_argument("--out", default=None, help="JSON file for the results")
    args = p.parse_args(argv)

    def plot_runs() -> None:
        series = load_runs(args.runs)
        out = Path(args.out)
        plot(args.runs, out)
        out.with_suffix(".json").write_text(json.dumps(series, indent=1))
        print(f"wrote {out} and {out.with_suffix('.json')}")

    def measure_and_write() -> None:
        if args.batches < 2:
            raise UserError(f"--batches {args.batches}: GDV compares mini-batch gradients pairwise, give at least 2")
        results = measure_checkpoints(args.checkpoints, args)
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))

    return run_cli(plot_runs if args.cmd == "plot" else measure_and_write)


if __name__ == "__main__":
    sys.exit(main())
