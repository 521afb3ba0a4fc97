"""Backbones and the drop core shared by the whole suite.

``import backbones`` registers the paper's model names in timm's registry.
"""
from .drop_schedule import DROP_MODES, DROP_SHAPES, DropPlan, DropSchedule
from .drop_sites import DropSites, NoDropSitesError
from .models import PAPER_MODELS, UnknownModelError, create_model_with_drop

__all__ = [
    "DROP_MODES", "DROP_SHAPES", "DropPlan", "DropSchedule", "DropSites", "NoDropSitesError",
    "PAPER_MODELS", "UnknownModelError", "create_model_with_drop",
]
