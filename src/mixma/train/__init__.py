"""Training: configuration, the shared loop, checkpoints, and the per-model tasks."""
