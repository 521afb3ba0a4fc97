"""Classification transfer of pretrained checkpoints to small datasets
(``python -m cls_finetune``; see cls_finetune/main.py)."""
