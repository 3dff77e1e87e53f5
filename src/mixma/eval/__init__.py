"""Evaluation metrics: text-video retrieval."""
