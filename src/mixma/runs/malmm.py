"""MA-LMM runs: the config a run folder holds, and a trained model loaded back from it.

`MALMMRunConfig` is what `mixma train malmm` reads (see `configs/malmm_synthetic.yaml`) and
what it saves as the run's `config.yaml`: the model (an InstructBLIP / MA-LMM checkpoint, or a
small one built from scratch), the data and its sampling, generation, the optimiser and the run.
Inference and evaluation read the same file back with `load_malmm_run`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mixma.data.samples import MALMMTask, Prompts
from mixma.data.section import VideoDataSection
from mixma.models.malmm import MALMM
from mixma.models.malmm.memory import Compression
from mixma.models.malmm.modeling import MemoryBanks
from mixma.models.malmm.processing import MALMMProcessor
from mixma.models.malmm.small import SmallConfig
from mixma.runs.config import OptimConfig, RunConfig
from mixma.runs.folder import CONFIG, RunError, load_trained_into, read_run, resolve_checkpoint, resolve_source, run_root


@dataclass
class MALMMModelSection:
    """Which MA-LMM to train and what of it trains."""

    init: str | None = None  # InstructBLIP / MA-LMM checkpoint (folder or hub id); None builds `small` from scratch
    small: SmallConfig = field(default_factory=SmallConfig)
    memory_bank_length: int | None = None  # M; 0 turns memory off; None: the checkpoint's own (MALMMConfig's, 10)
    memory_banks: MemoryBanks | None = None  # both | visual | query | none (Table 6); None: the checkpoint's own
    compression: Compression | None = None  # mbc | fifo | mean | concat (Table 8); None: the checkpoint's own
    train_vision: bool = False  # MA-LMM keeps the vision encoder frozen
    train_llm: bool = False  # ... and the LLM; a from-scratch model needs both trained
    memory_gradients: bool = False  # backpropagate through every frame and the memory (MA-LMM: only
    # the last frame; fine with a frozen pretrained encoder, too little for one trained from scratch)

    def model_options(self) -> dict:
        """Keyword arguments for `MALMM.from_pretrained` that override the checkpoint's config."""
        options = {"memory_bank_length": self.memory_bank_length, "memory_banks": self.memory_banks,
                   "compression": self.compression}
        return {k: v for k, v in options.items() if v is not None}


@dataclass
class GenerateSection:
    """Decoding for evaluation and `mixma ask` (MA-LMM's settings)."""

    num_beams: int = 5
    max_new_tokens: int = 10  # MA-LMM: 10 for QA, 20 for Breakfast/COIN, 50 for captions
    min_new_tokens: int = 1
    repetition_penalty: float = 1.5
    length_penalty: float = 0.0  # MA-LMM: 0 for QA, 1 for captioning and classification

    def kwargs(self, num_return_sequences: int) -> dict:
        """For `MALMM.generate` (deterministic beam search)."""
        return dict(num_beams=self.num_beams, num_return_sequences=num_return_sequences,
                    max_new_tokens=self.max_new_tokens, min_new_tokens=self.min_new_tokens,
                    repetition_penalty=self.repetition_penalty, length_penalty=self.length_penalty, do_sample=False)


@dataclass
class MALMMDataSection(VideoDataSection):
    """The shared data section plus MA-LMM's task and instruction templates."""

    task: MALMMTask = "qa"
    prompts: Prompts = field(default_factory=Prompts)


@dataclass
class MALMMRunConfig:
    kind: Literal["malmm"] = "malmm"  # which trainer wrote a run (read by `mixma eval`)
    model: MALMMModelSection = field(default_factory=MALMMModelSection)
    data: MALMMDataSection = field(default_factory=MALMMDataSection)
    generate: GenerateSection = field(default_factory=GenerateSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self):
        if self.data.cache_features and self.model.train_vision:
            raise ValueError("data.cache_features needs a frozen vision encoder (model.train_vision: false)")


def load_base(source: str, section: MALMMModelSection) -> tuple[MALMM, MALMMProcessor]:
    """The model and processor in a model folder (or hub id), with the section's overrides."""
    return MALMM.from_pretrained(source, **section.model_options()), MALMMProcessor.from_pretrained(source)


@dataclass
class TrainedMALMM:
    model: MALMM
    processor: MALMMProcessor
    config: MALMMRunConfig | None  # None for a plain model folder
    checkpoint: Path | None


def load_malmm_run(path: str | os.PathLike, *, overrides: list[str] = (), memory_bank_length: int | None = None) -> TrainedMALMM:
    """An MA-LMM for inference from a run folder (its best, else latest checkpoint), a checkpoint
    folder, or a plain model folder saved with `save_pretrained` (processor files alongside).

    Args:
        path: the folder.
        overrides: `section.key=value` changes to the run's config (e.g. `data.num_frames=16`).
        memory_bank_length: use another bank length than the run's.

    Raises:
        RunError: nothing loadable at `path`, a run of another trainer, or trained tensors that
            do not fit the model.
    """
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: no such run, checkpoint or model folder")
    if not (path / CONFIG).exists() and not (path / "best" / CONFIG).exists() and (path / "config.json").exists():
        kwargs = {} if memory_bank_length is None else {"memory_bank_length": memory_bank_length}
        return TrainedMALMM(MALMM.from_pretrained(path, **kwargs).eval(), MALMMProcessor.from_pretrained(path), None, None)
    checkpoint = resolve_checkpoint(path)
    config = read_run(checkpoint, MALMMRunConfig, "malmm", overrides)
    if memory_bank_length is not None:
        config.model.memory_bank_length = memory_bank_length
    source = resolve_source(config.model.init, run_root(checkpoint), "model.init")
    model, processor = load_base(source, config.model)
    load_trained_into(model, checkpoint)
    return TrainedMALMM(model.eval(), processor, config, checkpoint)
