"""Run folders: what `mixma train` writes and every reader of a trained model opens.

- `config`: the `optim` and `run` sections every trainer shares;
- `folder`: checkpoints (`resolve_checkpoint`, `latest_checkpoint`), model sources stored relative
  to the run, strict loading of trained tensors, atomic folder writes;
- `malmm`, `mama`: each trainer's run config and `load_*_run`, which rebuilds the trained model.

The library (inference, evaluation, search) reads runs through this package and never imports
`mixma.train`.
"""
