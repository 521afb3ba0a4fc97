"""python -m cls_finetune: see cls_finetune/main.py."""
import sys

from .main import main

sys.exit(main())
