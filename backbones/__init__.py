"""Backbones and the drop core shared by the whole suite (no OpenMMLab here).

``import backbones`` registers the paper's model names in timm's registry. The
mmdet/mmseg adapter is ``backbones.openmmlab``, imported by the configs that use
it (``custom_imports=dict(imports=['backbones.openmmlab'])``).
"""
from .drop_schedule import DROP_MODES, DROP_SHAPES, DropPlan, DropSchedule
from .drop_sites import DropSites, NoDropSitesError
from .errors import UserError
from .models import PAPER_MODELS, UnknownModelError, create_model_with_drop

__all__ = [
    "DROP_MODES", "DROP_SHAPES", "DropPlan", "DropSchedule", "DropSites", "NoDropSitesError",
    "PAPER_MODELS", "UnknownModelError", "UserError", "create_model_with_drop",
]
