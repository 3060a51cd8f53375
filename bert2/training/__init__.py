"""One training loop for pretraining and fine-tuning, its events, checkpoints and schedules."""
