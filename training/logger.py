"""Run records: JSON lines per update and per epoch, TensorBoard, a console ETA line.

Files in the output dir (stable: the comparison tools read them):

* ``log_iter.jsonl``: one object per optimizer update:
  ``epoch, step, loss, lr, weight_decay, dropout, drop_path, grad_norm``
  (``dropout``/``drop_path`` are read back off the model's modules);
* ``log.jsonl``: one object per epoch: ``epoch, train_loss, val_top1, val_top5,
  val_loss`` (+ ``ema_val_*`` with EMA), ``step``, ``time``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from common.files import JsonlAppender
from common.names import EPOCH_LOG, ITER_LOG, TENSORBOARD

from . import distributed as D


class RunLogger:
    def __init__(self, output_dir: Path, tensorboard: bool = True):
        self.main = D.is_main()
        self.dir = Path(output_dir)
        self.tb = None
        self._iter_f = self._epoch_f = None
        if self.main:
            self._iter_f = JsonlAppender(self.dir / ITER_LOG)
            self._epoch_f = JsonlAppender(self.dir / EPOCH_LOG)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                    self.tb = SummaryWriter(log_dir=str(self.dir / TENSORBOARD))
                except ImportError:  # tensorboard is optional at run time
                    self.tb = None
        self._t0 = time.time()
        self._steps0: Optional[int] = None

    def iteration(self, rec: dict) -> None:
        if not self.main:
            return
        self._iter_f.write(rec)
        if self.tb:
            for k in ("loss", "lr", "weight_decay", "dropout", "drop_path", "grad_norm"):
                if rec.get(k) is not None:
                    self.tb.add_scalar(f"train/{k}", rec[k], rec["step"])

    def epoch(self, rec: dict) -> None:
        if not self.main:
            return
        self._epoch_f.write(rec)
        if self.tb:
            for k, v in rec.items():
                if k not in ("epoch", "step") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"epoch/{k}", v, rec["epoch"])

    def progress(self, step: int, total: int, text: str) -> None:
        """Console line with an ETA from the measured pace of this process."""
        if not self.main:
            return
        if self._steps0 is None:
            self._steps0, self._t0 = step, time.time()
            eta = "?"
        else:
            pace = (time.time() - self._t0) / max(step - self._steps0, 1)
            eta = _hms(pace * (total - step))
        print(f"[{step}/{total}] {text} eta {eta}", flush=True)

    def info(self, text: str) -> None:
        if self.main:
            print(text, flush=True)

    def close(self) -> None:
        for f in (self._iter_f, self._epoch_f):
            if f:
                f.close()
        if self.tb:
            self.tb.close()


def _hms(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
