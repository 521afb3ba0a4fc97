"""mmengine 0.10.x with torch >= 2.6: loading its own checkpoints.

torch.load now defaults to ``weights_only=True``, and checkpoints written by an
mmengine Runner pickle a little more than tensors: the message hub's
``HistoryBuffer`` objects (numpy arrays, and bound statistics methods, which
pickle through ``getattr``). mmengine 0.10.7 does not pass ``weights_only``, so
``--resume`` and ``load_from`` of such a file fail with "Unsupported global".

The fix lives here, once: ``checkpoint_globals()`` allow-lists exactly those
globals, and ``DropTransferRunner`` (every config of this suite sets
``runner_type = 'DropTransferRunner'``) loads checkpoints inside it. The
allow-list is active only while a Runner loads a checkpoint, and torch keeps
refusing anything else.
"""
from __future__ import annotations

import _codecs

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .timm_backbone import check_data_preprocessor

__all__ = ["checkpoint_globals", "DropTransferRunner"]


def _numpy_globals() -> list:
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed core to _core
    dtype_classes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    return [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype, *dtype_classes]


def checkpoint_globals():
    """Context manager allowing what mmengine's own checkpoints contain."""
    return torch.serialization.safe_globals(
        [HistoryBuffer, getattr, _codecs.encode, *_numpy_globals()])


@RUNNERS.register_module()
class DropTransferRunner(Runner):
    """mmengine's Runner, plus: checkpoint loading (resume and ``load_from``)
    that accepts mmengine's own checkpoint contents under torch's weights-only
    loader, a ``RunRecordHook`` on every run (run.json, metrics.json), and a
    check that the data preprocessor normalises inputs as the pretrained
    backbone was trained (``check_data_preprocessor``)."""

    def __init__(self, *args, custom_hooks=None, **kwargs):
        hooks = list(custom_hooks or [])
        if not any(isinstance(h, dict) and h.get("type") == "RunRecordHook" for h in hooks):
            hooks.append(dict(type="RunRecordHook"))
        super().__init__(*args, custom_hooks=hooks, **kwargs)

    def load_checkpoint(self, filename, *args, **kwargs):
        with checkpoint_globals():
            return super().load_checkpoint(filename, *args, **kwargs)

    def _init_model_weights(self) -> None:
        super()._init_model_weights()
        # Pretrained backbone weights are loaded now: their input normalisation must be the config's.
        check_data_preprocessor(self.model.module if is_model_wrapper(self.model) else self.model)
