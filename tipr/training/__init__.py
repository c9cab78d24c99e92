"""Pieces of the trainer (train/run.py): options, checkpoints, generated images, model card, Hub upload."""
