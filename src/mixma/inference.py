"""Ask questions about a video and caption it with a trained MA-LMM.

    assistant = VideoAssistant.from_checkpoint("runs/malmm-synthetic")
    assistant.ask("clip.mp4", "how many times did the red circle appear?").text   # "two"
    assistant.caption("clip.mp4").text

A checkpoint is a training run's folder (its best checkpoint), a checkpoint folder, or a model
folder saved with `save_pretrained` (an MA-LMM or an InstructBLIP checkpoint). Frames are sampled
and preprocessed as the model was evaluated during training, unless told otherwise;
`pixel_values` is that bridge on its own (a video or a `FrameSample` in, model input out).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace

import torch

from mixma.data.section import video_input
from mixma.video.sampling import Strategy
from mixma.models.malmm import MALMM
from mixma.models.malmm.processing import MALMMProcessor, visual_token_count
from mixma.runs.malmm import GenerateSection, MALMMDataSection, load_malmm_run
from mixma.video.sampling import FrameSample

MAX_BEAMS = 5
Clip = tuple[float | None, float | None] | None  # (start, end) seconds of a video


@dataclass(frozen=True)
class Answer:
    text: str  # the best beam
    beams: list[str]  # every returned beam, best first
    scores: list[float]  # each beam's score (log-probability, length-penalised as generation ranks them)


class VideoAssistant:
    """MA-LMM question answering and captioning for video files.

    Args:
        model, processor: an MA-LMM and its processor.
        data: how frames are sampled and preprocessed (a run's data section; default: 16
            uniform frames at the model's input size).
        generate: decoding options (default: MA-LMM's).
        task: what the model was trained for, if known (`caption` warns for other tasks).
    """

    def __init__(self, model: MALMM, processor: MALMMProcessor, data: MALMMDataSection | None = None,
                 generate: GenerateSection | None = None, task: str | None = None):
        self.model, self.processor = model.eval(), processor
        self.data = data or MALMMDataSection(num_frames=16, image_size=model.config.vision_config.image_size)
        self.generate_options = generate or GenerateSection()
        self.task = task

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, memory_bank_length: int | None = None) -> VideoAssistant:
        """Load a run, checkpoint or model folder (see the module docstring).

        Raises:
            RunError: nothing loadable at `path`, or a run of another trainer (MAMA).
        """
        trained = load_malmm_run(path, memory_bank_length=memory_bank_length)
        if trained.config is None:
            return cls(trained.model, trained.processor)
        config = trained.config
        return cls(trained.model, trained.processor, config.data, config.generate, config.data.task)

    def pixel_values(self, video: str | os.PathLike | FrameSample, num_frames: int | None = None,
                     strategy: Strategy | None = None, clip: Clip = None) -> torch.Tensor:
        """Model input `float [1, T, 3, S, S]` for a video file (sampled as the model was evaluated,
        or with `num_frames` / `strategy`; from `clip = (start, end)` seconds only, when given) or
        for frames already sampled (a `FrameSample`), with the model's resizing and normalisation."""
        source = replace(self.data, num_frames=num_frames or self.data.num_frames)
        frames = video_input(source, strategy or self.data.eval_strategy, cached=False,  # a user's clip: no cache
                             normalization=self.model.input_normalization)
        if isinstance(video, FrameSample):
            return frames.transform(video.frames)[None]
        return frames(video, clip)[None]  # [1, T, 3, S, S]

    @torch.no_grad()
    def _run(self, video, prompt: str, num_frames, strategy, clip=None, **generate) -> Answer:
        num_frames = num_frames or self.data.num_frames
        options = replace(self.generate_options, **{k: v for k, v in generate.items() if v is not None})
        batch = self.processor([prompt], None, visual_token_count(self.model.config, num_frames))
        beams = min(MAX_BEAMS, options.num_beams)
        out = self.model.generate(pixel_values=self.pixel_values(video, num_frames, strategy, clip), **batch,
                                  **options.kwargs(beams), return_dict_in_generate=True, output_scores=True)
        texts = self.processor.decode(out.sequences, batch["input_ids"].shape[1])
        scores = getattr(out, "sequences_scores", None)
        return Answer(texts[0], texts, [] if scores is None else [float(s) for s in scores])

    def ask(self, video: str | os.PathLike | FrameSample, question: str, *, num_frames: int | None = None,
            strategy: Strategy | None = None, clip: Clip = None, **generate) -> Answer:
        """Answer `question` about `video` (prompted as the model was trained for QA), or about
        the moment `clip = (start, end)` seconds of it (either end may be None).

        Raises:
            ValueError: an empty question.
            VideoError: the clip holds no frame of the video.
        """
        if not question.strip():
            raise ValueError("the question is empty")
        prompt = self.data.prompts.qa.format(question=question.strip())
        return self._run(video, prompt, num_frames, strategy, clip, **generate)

    def caption(self, video: str | os.PathLike | FrameSample, *, num_frames: int | None = None,
                strategy: Strategy | None = None, **generate) -> Answer:
        """Describe `video` (with the captioning prompt; longer answers allowed by default)."""
        if self.task is not None and self.task != "captioning":
            warnings.warn(f"this model was trained for {self.task}, not captioning: its captions may be poor", stacklevel=2)
        generate.setdefault("max_new_tokens", max(30, self.generate_options.max_new_tokens))
        generate.setdefault("length_penalty", 1.0)
        return self._run(video, self.data.prompts.captioning, num_frames, strategy, **generate)
