"""Backbones and the drop core shared by the whole suite.

``import backbones`` registers the paper's model names in timm's registry and,
when mmengine is installed, the suite's OpenMMLab parts (``backbones.openmmlab``).
"""
from .drop_schedule import DROP_MODES, DROP_SHAPES, DropPlan, DropSchedule
from .drop_sites import DropSites, NoDropSitesError
from .models import PAPER_MODELS, UnknownModelError, create_model_with_drop

try:  # the OpenMMLab side is optional for pretraining alone
    from . import openmmlab  # noqa: F401
except ImportError as _exc:  # pragma: no cover - mmengine is in requirements.txt
    if "mmengine" not in str(_exc):
        raise

__all__ = [
    "DROP_MODES", "DROP_SHAPES", "DropPlan", "DropSchedule", "DropSites", "NoDropSitesError",
    "PAPER_MODELS", "UnknownModelError", "create_model_with_drop",
]
