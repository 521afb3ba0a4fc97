"""python -m pretrain: see pretrain/main.py."""
import sys

from .main import main

sys.exit(main())
