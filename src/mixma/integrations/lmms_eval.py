"""Evaluate a mixma MA-LMM with lmms-eval (EvolvingLMMs-Lab/lmms-eval) on its video tasks.

    pip install lmms-eval            # separately: it pins a newer torch than mixma's
    python -m lmms_eval --model mixma_malmm \\
        --model_args pretrained=runs/malmm,num_frames=20,strategy=mixed --tasks nextqa_oe_test

lmms-eval finds models through the `lmms_eval.models` entry-point group; mixma's entry point is
`manifest` here, which names the `MixmaMALMM` class. That class subclasses lmms-eval's `lmms`
base and is created only when lmms-eval asks for it, so mixma imports without lmms-eval.

`model_args`:
- `pretrained`: a training run folder, a checkpoint folder, or an MA-LMM model folder (what
  `mixma ask -c` takes; loaded with `mixma.inference.VideoAssistant.from_checkpoint`);
- `num_frames`, `strategy` (`uniform`, `segment` or `mixed`): how frames are sampled (default: as
  the model was evaluated in training);
- `memory_bank_length`: M, to evaluate another memory length than the trained one;
- `num_beams`, `max_new_tokens`: generation defaults (a task's `generation_kwargs` win);
- `device` (e.g. `cuda`), `dtype` (`float32`, `bfloat16`, `float16`).

Requests: `generate_until` answers each task prompt with `VideoAssistant.ask` (MA-LMM's QA
template around lmms-eval's context; beam search, so `temperature` and sampling are ignored;
the answer is cut at the first `until` string); `loglikelihood` scores a continuation after the
same prompt (the sum of its tokens' log-probabilities, and whether greedy decoding would produce
it); `generate_until_multi_round` follows the task's `doc_to_text(doc, previous_output=...,
round_idx=...)` protocol, one `ask` per round. Each request's visual must be one video file; a
video that cannot be read is answered with "" (and likelihood -inf), logged, and listed at the
end, so the rest of the run finishes.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from mixma.errors import MixmaError

MODEL_ID = "mixma_malmm"
log = logging.getLogger(__name__)


def manifest():
    """The `lmms_eval.models` entry point: lmms-eval's `ModelManifest` for `mixma_malmm`."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=f"{__name__}.MixmaMALMM")


class MALMMRequests:
    """lmms-eval's request interface over a mixma MA-LMM, without lmms-eval's base class (which
    `MixmaMALMM` adds). `task_dict` is filled by lmms-eval: `task_dict[task][split][doc_id]`."""

    def __init__(self, pretrained: str, num_frames: int | None = None, strategy: str | None = None,
                 memory_bank_length: int | None = None, num_beams: int | None = None, max_new_tokens: int | None = None,
                 device: str | None = None, dtype: str | None = None, batch_size: int | str = 1, **unused: Any):
        from mixma.inference import VideoAssistant

        if unused:
            log.warning("mixma_malmm ignores model_args %s", sorted(unused))
        if str(batch_size) not in ("1", "auto"):
            log.warning("mixma_malmm answers one request at a time (batch_size=%s ignored)", batch_size)
        self.assistant = VideoAssistant.from_checkpoint(pretrained, memory_bank_length)
        self.num_frames, self.strategy = num_frames, strategy
        self.defaults = {k: v for k, v in (("num_beams", num_beams), ("max_new_tokens", max_new_tokens)) if v is not None}
        self.device = torch.device(device) if device else next(self.assistant.model.parameters()).device
        _place(self.assistant.model, self.device, getattr(torch, dtype) if dtype else None)
        self.task_dict: dict = {}
        self.failed: list[tuple[str, str]] = []  # (video, reason) of requests answered empty
        self._warned: set[str] = set()

    # -- lmms-eval's three request types -------------------------------------------------------------

    def generate_until(self, requests: Sequence) -> list[str]:
        """Args per request: `(context, generation_kwargs, doc_to_visual, doc_id, task, split)`."""
        answers = []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            video = self._video(doc_to_visual, task, split, doc_id)
            answers.append(self._answer(video, context, gen_kwargs))
            self._cache("generate_until", (context, gen_kwargs), answers[-1])
        self._report()
        return answers

    def generate_until_multi_round(self, requests: Sequence) -> list[tuple[str, ...]]:
        """Args per request: `(context, generation_kwargs, doc_to_visual, doc_to_text, doc_id, task,
        split)`; after round 0, `doc_to_text(doc, previous_output=[...], round_idx=r,
        previous_round_info=...)` returns `(visuals, context, terminal, previous_outputs, info)`."""
        results = []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_to_text, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            video, outputs, info, round_idx = self._video(doc_to_visual, task, split, doc_id), [], None, 0
            while True:
                if round_idx > 0:
                    visuals, context, terminal, outputs, info = doc_to_text(
                        doc, previous_output=list(outputs), round_idx=round_idx, previous_round_info=info)
                    outputs = list(outputs)
                    if terminal:
                        break
                    video = self._one_video(visuals) if visuals else video
                outputs.append(self._answer(video, context, dict(gen_kwargs)))
                round_idx += 1
            results.append(tuple(outputs))
        self._report()
        return results

    def loglikelihood(self, requests: Sequence) -> list[tuple[float, bool]]:
        """Args per request: `(context, continuation or doc_to_target, doc_to_visual, doc_id, task,
        split)`. Returns `(sum of the continuation's token log-probabilities, greedy?)`."""
        results = []
        for request in requests:
            context, continuation, doc_to_visual, doc_id, task, split = request.args
            if callable(continuation):
                continuation = continuation(self.task_dict[task][split][doc_id])
            video = self._video(doc_to_visual, task, split, doc_id)
            try:
                results.append(self._score(video, context, str(continuation)))
            except MixmaError as error:
                self._failed(video, error)
                results.append((-math.inf, False))
        self._report()
        return results

    # -- helpers ---------------------------------------------------------------------------------

    def _video(self, doc_to_visual: Callable, task: str, split: str, doc_id) -> str:
        return self._one_video(doc_to_visual(self.task_dict[task][split][doc_id]))

    @staticmethod
    def _one_video(visuals) -> str:
        items = visuals if isinstance(visuals, (list, tuple)) else [visuals]
        if len(items) != 1 or not isinstance(items[0], (str, os.PathLike)):
            kinds = ", ".join(type(v).__name__ for v in items) or "nothing"
            raise ValueError(f"mixma_malmm takes one video file per request, got {kinds}: use a video task")
        return os.fspath(items[0])

    def _generation(self, gen_kwargs: dict) -> tuple[dict, list[str]]:
        gen_kwargs = dict(gen_kwargs or {})
        until = gen_kwargs.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        options = {**self.defaults, **{k: gen_kwargs.pop(k) for k in ("num_beams", "max_new_tokens") if k in gen_kwargs}}
        ignored = sorted(k for k, v in gen_kwargs.items() if v not in (None, False, 0, 0.0, 1.0))
        for key in set(ignored) - self._warned:
            log.warning("mixma_malmm decodes by beam search as MA-LMM; generation option %r ignored", key)
            self._warned.add(key)
        return options, until

    def _answer(self, video: str, context: str, gen_kwargs: dict) -> str:
        options, until = self._generation(gen_kwargs)
        try:
            text = self.assistant.ask(video, context, num_frames=self.num_frames, strategy=self.strategy, **options).text
        except MixmaError as error:
            self._failed(video, error)
            return ""
        for stop in until:
            if stop and stop in text:
                text = text[: text.index(stop)]
        return text

    @torch.no_grad()
    def _score(self, video: str, context: str, continuation: str) -> tuple[float, bool]:
        """Log-probability of `continuation` after the QA prompt, from one forward pass."""
        from mixma.models.malmm.processing import visual_token_count

        assistant, model = self.assistant, self.assistant.model
        data = assistant.data
        num_frames = self.num_frames or data.num_frames
        pixels = assistant.pixel_values(video, num_frames, self.strategy)  # [1, T, 3, S, S], as `ask` samples them
        template = data.prompts.qa
        visual = visual_token_count(model.config, num_frames)
        batch = assistant.processor([template.format(question=context)], [continuation], visual)
        labels = batch.pop("labels")[0]
        eos = assistant.processor.tokenizer.eos_token_id
        target = (labels != -100).nonzero().flatten()
        if len(target) > 1 and labels[target[-1]] == eos:  # the processor ends targets with EOS; lmms-eval's don't
            target = target[:-1]
        batch = {k: v.to(self.device) for k, v in batch.items()}
        logits = model(pixel_values=pixels.to(self.device, _dtype(model)), **batch).logits[0].float()
        log_probs = logits[target - 1].log_softmax(-1)  # position i predicts token i + 1
        tokens = labels[target].to(self.device)
        total = log_probs.gather(1, tokens[:, None]).sum().item()
        return total, bool((log_probs.argmax(-1) == tokens).all())

    def _failed(self, video: str, error: Exception) -> None:
        log.warning("mixma_malmm: %s", error)
        self.failed.append((video, str(error)))

    def _report(self) -> None:
        if self.failed:
            log.warning("mixma_malmm: %d request(s) could not read their video: %s", len(self.failed),
                        "; ".join(sorted({video for video, _ in self.failed})[:10]))

    def _cache(self, kind: str, key, value) -> None:
        hook = getattr(self, "cache_hook", None)
        if hook is not None:
            hook.add_partial(kind, key, value)


def _dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def _place(model: torch.nn.Module, device: torch.device, dtype: torch.dtype | None) -> None:
    """Move the model, and let its `generate` take inputs built on the CPU (as `VideoAssistant`
    builds them): they follow the model to its device and dtype."""
    model.to(device=device, dtype=dtype)
    if device.type == "cpu" and dtype in (None, torch.float32):
        return
    generate = model.generate

    def on_device(*args, **kwargs):
        def move(value):
            if not isinstance(value, torch.Tensor):
                return value
            return value.to(device, _dtype(model)) if value.is_floating_point() else value.to(device)
        return generate(*[move(a) for a in args], **{k: move(v) for k, v in kwargs.items()})

    model.generate = on_device


def __getattr__(name: str):
    """`MixmaMALMM`, made on first use: lmms-eval's `lmms` base class with `MALMMRequests`."""
    if name != "MixmaMALMM":
        raise AttributeError(name)
    from lmms_eval.api.model import lmms

    class MixmaMALMM(MALMMRequests, lmms):
        """A mixma MA-LMM for lmms-eval (see `mixma.integrations.lmms_eval`)."""

        is_simple = True

        def __init__(self, pretrained: str, **kwargs: Any):
            lmms.__init__(self)
            MALMMRequests.__init__(self, pretrained, **kwargs)

    MixmaMALMM.__module__ = __name__
    globals()["MixmaMALMM"] = MixmaMALMM
    return MixmaMALMM
