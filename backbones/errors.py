"""The user-error type and its reporting live in ``common.errors`` (torch-free);
this name stays importable for the code and configs that use it."""
from common.errors import UserError, one_line, run_cli

__all__ = ["UserError", "run_cli", "one_line"]
