"""Training: the loop every model shares (`loop.fit`), its checkpoints and resumable state, and one
trainer per model (`malmm`, `mama`, found through `registry.TRAINERS`). The configs trainers read
and the run folders they write live in `mixma.runs`, so that loading a trained model never needs
this package."""
