"""The trainers, in one table: what `mixma train KIND` runs and how `mixma eval` scores its runs.

Each entry names the run config (read from YAML, saved as the run's `config.yaml` with `kind`),
the training function and the evaluation of a finished run, so every command handles every
option of every trainer the same way. Entries are import paths, resolved on first use, so the CLI
can list the trainers without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(import_module(module), name)


@dataclass(frozen=True)
class Trainer:
    summary: str  # one line for `--help`
    config_class: str  # "module:Name" of the run config dataclass
    train_function: str  # (config, *, resume, progress) -> summary
    evaluate_function: str  # (run, split, *, strategy, overrides, predictions) -> metrics

    @property
    def config(self) -> type:
        return _load(self.config_class)

    @property
    def train(self):
        return _load(self.train_function)

    @property
    def evaluate(self):
        return _load(self.evaluate_function)


TRAINERS: dict[str, Trainer] = {
    "malmm": Trainer("MA-LMM (memory-augmented video LLM): QA, classification or captioning.",
                     "mixma.runs.malmm:MALMMRunConfig", "mixma.train.malmm:train_malmm", "mixma.eval.malmm:evaluate_malmm_run"),
    "mama": Trainer("MAMA: text-video retrieval (dual encoder), open-ended or multiple-choice video QA.",
                    "mixma.runs.mama:MAMARunConfig", "mixma.train.mama:train_mama", "mixma.eval.mama:evaluate_mama_run"),
}
