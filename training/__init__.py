"""The training engine that pretraining and classification transfer share: flags
and YAML configs, data loading with exact-resume sampling, the per-update
trainer, checkpoints and the run's steps (``training.run.TrainingRun``)."""
