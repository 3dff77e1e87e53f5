"""Ask questions about a video and caption it with a trained MA-LMM.

    assistant = VideoAssistant.from_checkpoint("runs/malmm-synthetic")
    assistant.ask("clip.mp4", "how many times did the red circle appear?")   # ["two", ...]
    assistant.caption("clip.mp4")

A checkpoint is a training run's folder (its best checkpoint), a checkpoint folder, or a model
folder saved with `save_pretrained` (an MA-LMM or an InstructBLIP checkpoint). Frames are sampled
and preprocessed as the model was evaluated during training, unless told otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch

from mixma.data.transforms import TransformConfig, VideoTransform
from mixma.data.video_text import Prompts
from mixma.models.malmm import MALMM
from mixma.models.malmm.processing import MALMMProcessor
from mixma.train.malmm import DataSection, GenerateSection, load_trained_malmm, visual_tokens
from mixma.video.sampling import sample_frames


@dataclass(frozen=True)
class Answer:
    text: str  # the best beam
    beams: list[str]  # every returned beam, best first


class VideoAssistant:
    """MA-LMM question answering and captioning for video files."""

    def __init__(self, model: MALMM, processor: MALMMProcessor, data: DataSection | None = None,
                 generate: GenerateSection | None = None):
        self.model, self.processor = model.eval(), processor
        image_size = model.config.vision_config.image_size
        self.data = data or DataSection(num_frames=16, image_size=image_size)
        self.generate_options = generate or GenerateSection()
        self.transform = VideoTransform(TransformConfig(size=self.data.image_size), train=False)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, memory_bank_length: int | None = None) -> VideoAssistant:
        model, processor, config = load_trained_malmm(path, memory_bank_length)
        if config is None:
            return cls(model, processor)
        return cls(model, processor, config.data, config.generate)

    def _pixels(self, video, num_frames, strategy) -> torch.Tensor:
        sample = sample_frames(video, num_frames, strategy, size=self.data.decode_size or self.data.image_size,
                               **(self.data.mixed if strategy == "mixed" else {}))
        return self.transform(sample.frames)[None]  # [1, T, 3, S, S]

    @torch.no_grad()
    def _run(self, video, prompt, num_frames, strategy, **generate) -> Answer:
        num_frames = num_frames or self.data.num_frames
        strategy = strategy or self.data.eval_strategy
        options = replace(self.generate_options, **{k: v for k, v in generate.items() if v is not None})
        batch = self.processor([prompt], None, visual_tokens(self.model, num_frames))
        beams = min(5, options.num_beams)
        out = self.model.generate(
            pixel_values=self._pixels(video, num_frames, strategy), **batch, num_beams=options.num_beams,
            num_return_sequences=beams, max_new_tokens=options.max_new_tokens, min_new_tokens=options.min_new_tokens,
            repetition_penalty=options.repetition_penalty, length_penalty=options.length_penalty, do_sample=False,
        )
        texts = self.processor.decode(out, batch["input_ids"].shape[1])
        return Answer(texts[0], texts)

    def ask(self, video: str | os.PathLike, question: str, *, num_frames: int | None = None, strategy: str | None = None,
            **generate) -> Answer:
        """Answer `question` about `video` (prompted as the model was trained for QA)."""
        prompts = self.data.prompts if isinstance(self.data.prompts, Prompts) else Prompts()
        return self._run(video, prompts.qa.format(question=question), num_frames, strategy, **generate)

    def caption(self, video: str | os.PathLike, *, num_frames: int | None = None, strategy: str | None = None,
                **generate) -> Answer:
        """Describe `video` (with the captioning prompt; longer answers allowed by default)."""
        generate.setdefault("max_new_tokens", max(30, self.generate_options.max_new_tokens))
        generate.setdefault("length_penalty", 1.0)
        return self._run(video, self.data.prompts.captioning, num_frames, strategy, **generate)
