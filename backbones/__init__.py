"""Backbones and the drop core shared by the whole suite (no OpenMMLab here).

``import backbones`` registers the paper's model names in timm's registry. The
mmdet/mmseg adapter is ``backbones.openmmlab``, imported by the configs that use
it (``custom_imports=dict(imports=['backbones.openmmlab'])``).
"""
import sys

from .drop_schedule import DROP_MODES, DROP_SHAPES, DropPlan, DropSchedule
from .drop_sites import DropSites, NoDropSitesError
from .errors import UserError
from .models import PAPER_MODELS, UnknownModelError, create_model_with_drop

# Configs written before the adapter had its own import name say
# custom_imports=dict(imports=['backbones']); mmengine is loaded by then, so give them the adapter.
if "mmengine" in sys.modules:
    from . import openmmlab  # noqa: F401

__all__ = [
    "DROP_MODES", "DROP_SHAPES", "DropPlan", "DropSchedule", "DropSites", "NoDropSitesError",
    "PAPER_MODELS", "UnknownModelError", "UserError", "create_model_with_drop",
]
