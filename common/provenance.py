"""Which source made a record or a report: the repository's git commit, read once per process."""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]

__all__ = ["source_commit"]


@functools.lru_cache(maxsize=None)
def source_commit() -> Optional[str]:
    """``<sha>``, or ``<sha>+changes`` when tracked files differ from it; None outside a git checkout
    (an installed copy, or git missing)."""
    def git(*args: str) -> Optional[str]:
        try:
            done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    if not sha:
        return None
    changes = git("status", "--porcelain", "--untracked-files=no")
    return sha + ("+changes" if changes else "")
