"""MA-LMM: InstructBLIP with a memory-augmented Q-Former, for long videos.

Built on transformers' `InstructBlipForConditionalGeneration`, so an InstructBLIP checkpoint in
transformers format (e.g. `Salesforce/instructblip-vicuna-7b`) loads as is, and its vision model,
Q-Former, projection and language model are used unchanged. What MA-LMM adds (CVPR 2024, §3):

1. A temporal embedding, zero-initialised, added to every token of frame t's features.
2. Frames go through the Q-Former one at a time. Every cross-attention layer attends to the
   *visual memory bank* (the features of past frames) plus the current frame's features.
3. Every self-attention layer attends over its own *query memory bank* (its inputs at past
   frames) plus its current input: queries come from the current input, keys and values from
   both. transformers' Q-Former attention computes exactly that when called with the bank as
   `encoder_hidden_states`, so no layer is re-implemented or patched.
4. Banks longer than `memory_bank_length` are compressed (MBC, `compress_memory`).
5. Only the last frame's query outputs are projected into the language model: the LLM sees
   `num_query_tokens` visual tokens whatever the video's length.

`memory_bank_length = 0` turns memory off: every frame goes through the Q-Former independently
and the LLM receives all frames' query outputs, `T * num_query_tokens` tokens (InstructBlipVideo
style, and MA-LMM's own ablation).

Memory is explicit state (`MemoryState`): `encode_frames` takes it and returns the new one, so a
video can be streamed a frame or a chunk at a time, and nothing carries over between videos.

The paper's ablations are configuration options (saved with the model): `memory_banks` (Table 6:
"both", "visual", "query" or "none"; with "none" earlier frames reach nothing, so the LLM sees the
last frame only: for all frames into the LLM use `memory_bank_length = 0`), `compression`
(Table 8: "mbc", "fifo", "mean" or "concat", see `mixma.models.malmm.memory`) and
`memory_bank_length` (Fig. 3).

Without gradients (inference, and the memory frames of training) the banks are
`StreamingBank`s, updated in place; with gradients they are `Bank` values. Both give the same
banks; attention then reads the streaming banks' slots in another order, which changes outputs
only by float rounding.

Frames beyond the temporal table (`max_num_frames`): when the caller says how many frames the
video has (`total_frames`, as `forward` and `generate` do), positions are spread evenly over the
table and embedded by linear interpolation between rows; when streaming without a total, frames
past the end reuse the last row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, get_args

import torch
from torch import nn
from transformers import AutoConfig, InstructBlipConfig, InstructBlipForConditionalGeneration
from transformers.utils import ModelOutput

from mixma.models.malmm.memory import COMPRESSIONS, Compression, MemoryPolicy, MemoryState
from mixma.models.malmm.streaming import LayerBanks, StreamingBank
from mixma.models.malmm.vision import ImageEncoderVision
from mixma.models.folder import weights_digest
from mixma.models.vision.tower import input_normalization

MemoryBanks = Literal["both", "visual", "query", "none"]
MEMORY_BANKS: tuple[str, ...] = get_args(MemoryBanks)


class MALMMConfig(InstructBlipConfig):
    """InstructBLIP's configuration plus MA-LMM's memory settings.

    Args:
        memory_bank_length: slots per memory bank (M); 0 turns memory off (every frame's query
            outputs go to the LLM). MA-LMM used 10 for QA, 20 for classification, 40 for
            captioning.
        max_num_frames: rows of the temporal embedding table (MA-LMM: 120).
        vision_chunk: frames encoded by the vision model at once when streaming a video (bounds
            memory without hurting speed).
        memory_banks: which banks the Q-Former attends to (MA-LMM Table 6): "both" (MA-LMM),
            "visual" (past frame features in cross-attention only), "query" (past layer inputs
            in self-attention only) or "none" (no memory: the LLM sees the last frame only).
        compression: how a bank stays at M slots (Table 8): "mbc" (MA-LMM: merge the most
            similar adjacent pair per token), "fifo" (forget the oldest slot), "mean" (temporal
            average pooling: the video is cut into M equal segments and each slot is the mean of
            its segment's frames so far, whatever their content; needs the video's length, which
            `forward` and `generate` know) or "concat" (none: banks keep every frame, so memory
            and attention grow with the video).
        post_layernorm_eps: epsilon of the vision model's final layer norm (LAVIS's `ln_vision`,
            1e-5 in MA-LMM), or None for the vision config's `layer_norm_eps` (1e-6, as
            transformers' InstructBLIP). `mixma.models.malmm.lavis` sets it when converting.
        vision_encoder: a pretrained ImageNet CNN instead of the ViT (the `tower_config` of an
            `ImageEncoder`; see `mixma.models.malmm.vision`); `vision_config.hidden_size` must
            be its width.
        **kwargs: everything `InstructBlipConfig` takes.

    Raises:
        ValueError: an option out of range, or memory options with memory off.
    """

    model_type = "malmm"

    def __init__(self, memory_bank_length: int = 10, max_num_frames: int = 120, vision_chunk: int = 8,
                 memory_banks: MemoryBanks = "both", compression: Compression = "mbc",
                 post_layernorm_eps: float | None = None, vision_encoder: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        if memory_bank_length < 0 or max_num_frames < 1 or vision_chunk < 1:
            raise ValueError("memory_bank_length must be >= 0, max_num_frames and vision_chunk >= 1")
        if memory_banks not in MEMORY_BANKS:
            raise ValueError(f"memory_banks must be one of {MEMORY_BANKS}, got {memory_banks!r}")
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        if memory_bank_length == 0 and (memory_banks, compression) != ("both", "mbc"):
            raise ValueError("memory_bank_length=0 turns memory off; memory_banks and compression need memory_bank_length >= 1")
        if post_layernorm_eps is not None and not post_layernorm_eps > 0:
            raise ValueError(f"post_layernorm_eps must be > 0, got {post_layernorm_eps}")
        self.memory_bank_length = memory_bank_length
        self.max_num_frames = max_num_frames
        self.vision_chunk = vision_chunk
        self.memory_banks = memory_banks
        self.compression = compression
        self.post_layernorm_eps = post_layernorm_eps
        self.vision_encoder = vision_encoder


AutoConfig.register(MALMMConfig.model_type, MALMMConfig)


@dataclass
class MALMMOutput(ModelOutput):
    """`loss` (when labels are given), `logits` of the language model, and the visual tokens fed
    to it (`video_features`, `[B, num_query_tokens, D]`, or `T * num_query_tokens` without memory)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    video_features: torch.Tensor | None = None


def _video_input(pixel_values: torch.Tensor | None, vision_features: torch.Tensor | None, qformer_input_ids) -> torch.Tensor:
    """The frames `[B, T, 3, H, W]`, or their cached `vision_backbone` outputs `[B, T, P, C]`."""
    if (pixel_values is None) == (vision_features is None):
        raise ValueError("give either pixel_values [B, T, 3, H, W] or vision_features [B, T, P, C]")
    if qformer_input_ids is None:
        raise ValueError("qformer_input_ids (the instruction for the Q-Former) are required")
    if vision_features is not None and vision_features.dim() != 4:
        raise ValueError(f"vision_features must be [B, T, P, C], got {tuple(vision_features.shape)}")
    return pixel_values if pixel_values is not None else vision_features


def _padding_mask(mask: torch.Tensor, dtype: torch.dtype, repeats: int = 1) -> torch.Tensor:
    """`[B, L]` (1 = keep) → additive `[B, 1, 1, repeats * L]` for attention over that many copies."""
    additive = (1.0 - mask.to(dtype)) * torch.finfo(dtype).min
    return additive.repeat(1, repeats)[:, None, None, :]


class MALMM(InstructBlipForConditionalGeneration):
    """MA-LMM (see the module docstring). Inputs are those of
    `InstructBlipForConditionalGeneration`, except `pixel_values` is `[B, T, 3, H, W]`; `input_ids`
    hold `num_query_tokens` image tokens (`T * num_query_tokens` with memory off)."""

    config: MALMMConfig  # transformers reads the config class from this annotation
    config_class = MALMMConfig

    def __init__(self, config: MALMMConfig):
        super().__init__(config)
        self.loss_type = "ForCausalLM"  # next-token loss on the LLM's logits (labels -100 ignored)
        self.temporal_embedding = nn.Embedding(config.max_num_frames, config.vision_config.hidden_size)
        nn.init.zeros_(self.temporal_embedding.weight)  # at start, exactly InstructBLIP
        if config.vision_encoder is not None:  # a pretrained CNN in place of the ViT
            eps = config.post_layernorm_eps or config.vision_config.layer_norm_eps
            self.vision_model = ImageEncoderVision(config.vision_encoder, eps)
        elif config.post_layernorm_eps is not None:  # transformers ties it to the encoder's own norms
            self.vision_model.post_layernorm.eps = config.post_layernorm_eps

    @property
    def memory_policy(self) -> MemoryPolicy:
        """What this model remembers (from its configuration; memory on)."""
        banks = self.config.memory_banks
        return MemoryPolicy(max(1, self.config.memory_bank_length), self.config.compression,
                            visual=banks in ("both", "visual"), queries=banks in ("both", "query"))

    def _init_weights(self, module):
        if module is getattr(self, "temporal_embedding", None):
            nn.init.zeros_(module.weight)
            return
        super()._init_weights(module)
        if module is self:
            # transformers zeroes the query tokens (a checkpoint always overwrites them); from
            # scratch, identical queries would get identical gradients and never become different,
            # so draw them as LAVIS does
            nn.init.normal_(self.query_tokens, std=self.config.qformer_config.initializer_range)

    # -- training setup --------------------------------------------------------------------------

    def freeze_for_training(self, train_vision: bool = False, train_llm: bool = False) -> list[str]:
        """Make trainable what MA-LMM trains: the Q-Former, the query tokens, the projection, the
        temporal embedding and the vision model's final layer norm (LAVIS's `ln_vision`); the
        vision encoder and the LLM stay frozen unless asked. Returns the trainable names."""
        for name, param in self.named_parameters():
            frozen_vision = name.startswith("vision_model.") and not name.startswith("vision_model.post_layernorm")
            frozen_llm = name.startswith("language_model.")
            param.requires_grad = not ((frozen_vision and not train_vision) or (frozen_llm and not train_llm))
        if isinstance(self.vision_model, ImageEncoderVision):  # its BatchNorm statistics stay as pretrained
            self.vision_model.encoder.set_trainable(None if train_vision else 0)
        return [n for n, p in self.named_parameters() if p.requires_grad]

    # -- vision side -----------------------------------------------------------------------------

    def _temporal(self, start: int, count: int, total: int | None, dtype) -> torch.Tensor:
        """Temporal embeddings `[count, C]` for frames `start ..`, see the module docstring."""
        table = self.temporal_embedding.weight
        rows = table.shape[0]
        positions = torch.arange(start, start + count, device=table.device, dtype=torch.float32)
        if total is not None and total > rows:
            positions = positions * (rows - 1) / (total - 1)
        positions = positions.clamp(max=rows - 1)
        low = positions.floor().long()
        high = (low + 1).clamp(max=rows - 1)
        frac = (positions - low).unsqueeze(-1).to(table.dtype)
        return (table[low] * (1 - frac) + table[high] * frac).to(dtype)

    @property
    def input_normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) per RGB channel, 0..1 scale, that `pixel_values` are normalised with:
        CLIP's for InstructBLIP's ViT, the CNN's own for an `ImageEncoder`."""
        return input_normalization(self.vision_model)

    def vision_backbone_digest(self) -> str:
        """A hash of the weights `vision_backbone` uses (what identifies its cached outputs)."""
        vision = self.vision_model
        return weights_digest(vision.encoder if isinstance(vision, ImageEncoderVision) else
                            nn.ModuleList([vision.embeddings, vision.encoder]))

    def vision_backbone(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`[N, 3, H, W]` frames → the vision model's tokens before its final layer norm `[N, P, C]`:
        all the model computes from pixels when the encoder is frozen (what `vision_features`
        caches; the norm trains)."""
        vision = self.vision_model
        pixel_values = pixel_values.to(self.device, self.vision_model.dtype)
        if isinstance(vision, ImageEncoderVision):
            return vision.backbone(pixel_values)
        return vision.encoder(inputs_embeds=vision.embeddings(pixel_values)).last_hidden_state

    def _frame_features(self, frames: torch.Tensor, start: int, total: int | None) -> torch.Tensor:
        """`[B, k, 3, H, W]` frames (or `[B, k, P, C]` `vision_backbone` outputs) → vision features
        plus temporal embedding, `[B, k, P, C]`."""
        b, k = frames.shape[:2]
        if frames.dim() == 4:  # cached backbone outputs: only the final norm is left
            features = self.vision_model.post_layernorm(frames.flatten(0, 1).to(self.vision_model.dtype))
        else:
            features = self.vision_model(pixel_values=frames.flatten(0, 1), return_dict=True).last_hidden_state
        features = features.view(b, k, *features.shape[1:])  # [B, k, P, C]
        return features + self._temporal(start, k, total, features.dtype)[None, :, None, :]

    # -- Q-Former with memory --------------------------------------------------------------------

    def _qformer_step(
        self, input_ids: torch.Tensor, text_mask: torch.Tensor, visual_keys: torch.Tensor,
        layer_keys: Callable[[int, torch.Tensor], tuple[torch.Tensor, int]],
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One frame through the Q-Former, attending to memory.

        Args:
            input_ids, text_mask: the instruction `[B, L]`.
            visual_keys: `[B, S, C]`, what cross-attention attends to (the frame's features,
                after the visual memory's).
            layer_keys: `(i, hidden) -> (keys, copies)`: layer i's self-attention keys and values
                `[B, copies * (Nq + L), D]` (its input `hidden`, with that layer's memory).

        Returns:
            The query outputs `[B, Nq, D]` and each layer's input `[B, Nq + L, D]` (what the query
            banks keep).
        """
        b = visual_keys.shape[0]
        queries = self.query_tokens.expand(b, -1, -1)
        num_queries = queries.shape[1]
        hidden = self.qformer.embeddings(input_ids=input_ids, query_embeds=queries)  # [B, Nq+L, D]
        mask = torch.cat([torch.ones(b, num_queries, dtype=text_mask.dtype, device=text_mask.device), text_mask], 1)
        layer_inputs = []
        for i, layer in enumerate(self.qformer.encoder.layer):
            layer_inputs.append(hidden)
            keys, copies = layer_keys(i, hidden)  # [B, copies*(Nq+L), D]
            self_mask = _padding_mask(mask, hidden.dtype, copies)
            context, _ = layer.attention.attention(hidden, encoder_hidden_states=keys, encoder_attention_mask=self_mask)
            attended = layer.attention.output(context, hidden)
            query_part = attended[:, :num_queries]
            if layer.has_cross_attention:
                query_part = layer.crossattention(query_part, encoder_hidden_states=visual_keys)
            out = layer.feed_forward_chunk_query(query_part)
            if attended.shape[1] > num_queries:
                out = torch.cat([out, layer.feed_forward_chunk(attended[:, num_queries:])], 1)
            hidden = out
        return hidden[:, :num_queries], layer_inputs

    def _step(self, frame: torch.Tensor, input_ids: torch.Tensor, text_mask: torch.Tensor, memory: MemoryState,
              policy: MemoryPolicy, detach: bool) -> tuple[torch.Tensor, MemoryState]:
        """One frame `[B, P, C]` with `Bank` memory (differentiable): keys are concatenations."""
        visual = frame if memory.visual is None else torch.cat([memory.visual.flat(), frame], 1)  # [B, (m+1)P, C]

        def layer_keys(i: int, hidden: torch.Tensor) -> tuple[torch.Tensor, int]:
            bank = None if memory.queries is None else memory.queries[i]
            if bank is None:
                return hidden, 1
            return torch.cat([bank.flat(), hidden], 1), len(bank) + 1  # [B, (m+1)(Nq+L), D]

        output, layer_inputs = self._qformer_step(input_ids, text_mask, visual, layer_keys)
        return output, memory.remember(frame, layer_inputs, policy, detach)

    def _streaming_step(self, frame: torch.Tensor, input_ids: torch.Tensor, text_mask: torch.Tensor,
                        memory: MemoryState, policy: MemoryPolicy) -> tuple[torch.Tensor, MemoryState]:
        """One frame with streaming memory (no gradients; the banks are this call's own): each
        bank takes the new slot, the Q-Former reads it as a view, then the banks settle (the query
        banks of all layers as one `LayerBanks`)."""
        visual_bank = memory.visual
        if policy.visual:
            visual_bank = visual_bank or StreamingBank(frame, policy.length, policy.compression, policy.total_frames)
            visual = visual_bank.push(frame)  # [B, (m+1)P, C]
        else:
            visual = frame
        layers = len(self.qformer.encoder.layer)
        queries = memory.queries

        def layer_keys(i: int, hidden: torch.Tensor) -> tuple[torch.Tensor, int]:
            nonlocal queries
            if not policy.queries:
                return hidden, 1
            if queries is None:
                queries = LayerBanks.empty(hidden, layers, policy.length, policy.compression, policy.total_frames)
            b = hidden.shape[0]
            return queries.bank.stage(hidden, i * b), len(queries.bank) + 1  # [B, (m+1)(Nq+L), D]

        output, _ = self._qformer_step(input_ids, text_mask, visual, layer_keys)
        if visual_bank is not None:
            visual_bank.settle()
        if queries is not None:
            queries.bank.commit()
            queries.bank.settle()
        return output, MemoryState(visual_bank, queries, memory.frames_seen + 1)

    def encode_frames(
        self,
        pixel_values: torch.Tensor,
        qformer_input_ids: torch.Tensor,
        qformer_attention_mask: torch.Tensor | None = None,
        memory: MemoryState | None = None,
        total_frames: int | None = None,
        detach_memory: bool = True,
    ) -> tuple[torch.Tensor, MemoryState]:
        """Stream frames through the memory-augmented Q-Former.

        Args:
            pixel_values: `[B, k, 3, H, W]`, the next k frames of each video.
            qformer_input_ids, qformer_attention_mask: the instruction for the Q-Former `[B, L]`.
            memory: the state returned by the previous call (never changed by this one); None
                for a new video.
            total_frames: the video's length, if known (spreads long videos over the temporal
                table; see the module docstring).
            detach_memory: store detached features in memory, as MA-LMM does (False keeps the
                graph, for `memory_gradients` training).

        Returns:
            The last frame's query outputs `[B, Nq, D_qformer]` and the new memory state.
        """
        memory = memory or MemoryState()
        if qformer_attention_mask is None:
            qformer_attention_mask = torch.ones_like(qformer_input_ids)
        policy = replace(self.memory_policy, total_frames=total_frames)
        streaming = detach_memory and not torch.is_grad_enabled()
        if streaming:  # this call's own copies, updated in place
            memory = _streaming_copy(memory, policy)
        output = None
        for start in range(0, pixel_values.shape[1], self.config.vision_chunk):
            chunk = pixel_values[:, start : start + self.config.vision_chunk]
            features = self._frame_features(chunk, memory.frames_seen, total_frames)  # [B, k, P, C]
            for i in range(features.shape[1]):
                args = (features[:, i], qformer_input_ids, qformer_attention_mask, memory, policy)
                output, memory = self._streaming_step(*args) if streaming else self._step(*args, detach_memory)
        return output, memory

    def get_video_features(
        self, pixel_values: torch.Tensor, qformer_input_ids: torch.Tensor, qformer_attention_mask: torch.Tensor | None = None,
        memory_gradients: bool = False,
    ) -> torch.Tensor:
        """The visual tokens for the LLM: `[B, Nq, D_llm]` (`[B, T*Nq, D_llm]` with memory off).

        Frames before the last run without gradients: their outputs reach the loss only through
        memory, which is detached (as in MA-LMM), so training memory does not grow with T. That
        suits MA-LMM's frozen, pretrained vision encoder. A vision encoder trained from scratch
        then learns from the last frame only; `memory_gradients=True` keeps the graph through
        every frame and the memory instead (training memory then grows with T).
        """
        if pixel_values.dim() not in (4, 5):
            raise ValueError(f"pixel_values must be [B, T, 3, H, W] (or vision_features [B, T, P, C]), "
                             f"got {tuple(pixel_values.shape)}")
        b, t = pixel_values.shape[:2]
        if qformer_attention_mask is None:
            qformer_attention_mask = torch.ones_like(qformer_input_ids)
        if self.config.memory_bank_length == 0:
            return self._features_without_memory(pixel_values, qformer_input_ids, qformer_attention_mask)
        if self.config.memory_banks == "none":  # nothing carries over: earlier frames cannot matter
            output, _ = self.encode_frames(pixel_values[:, -1:], qformer_input_ids, qformer_attention_mask,
                                           MemoryState(frames_seen=t - 1), t)
            return self.language_projection(output)
        if memory_gradients:
            output, _ = self.encode_frames(pixel_values, qformer_input_ids, qformer_attention_mask, None, t, detach_memory=False)
            return self.language_projection(output)
        memory = None
        if t > 1:
            with torch.no_grad():
                _, memory = self.encode_frames(pixel_values[:, :-1], qformer_input_ids, qformer_attention_mask, None, t)
        output, _ = self.encode_frames(pixel_values[:, -1:], qformer_input_ids, qformer_attention_mask, memory, t)
        return self.language_projection(output)

    def _features_without_memory(self, pixel_values, input_ids, text_mask) -> torch.Tensor:
        """Memory off: every frame through the Q-Former on its own; all query outputs to the LLM."""
        b, t = pixel_values.shape[:2]
        features = self._frame_features(pixel_values, 0, t).flatten(0, 1)  # [B*T, P, C]
        output, _ = self._qformer_step(
            input_ids.repeat_interleave(t, 0), text_mask.repeat_interleave(t, 0), features, lambda i, hidden: (hidden, 1)
        )  # [B*T, Nq, D]
        return self.language_projection(output).reshape(b, t * output.shape[1], -1)  # [B, T*Nq, D_llm]

    # -- language side ---------------------------------------------------------------------------

    def _merge_visual_tokens(self, input_ids, inputs_embeds, features) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        placeholders = self.get_placeholder_mask(input_ids, inputs_embeds=inputs_embeds)  # [B, S, 1]
        found = int(placeholders.sum()) // max(1, features.shape[0])
        if found != features.shape[1]:
            raise ValueError(
                f"input_ids hold {found} image tokens per item but the model produces {features.shape[1]} "
                f"visual tokens (num_query_tokens={self.config.num_query_tokens}"
                + (", times T with memory off)" if self.config.memory_bank_length == 0 else ")")
            )
        return inputs_embeds.masked_scatter(placeholders, features.to(inputs_embeds.dtype))

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        qformer_input_ids: torch.Tensor | None = None,
        qformer_attention_mask: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        memory_gradients: bool = False,
        vision_features: torch.Tensor | None = None,
        **kwargs,
    ) -> MALMMOutput:
        """Language-model logits (and the loss, given `labels` with -100 on ignored positions).

        `memory_gradients`: see `get_video_features`. `vision_features` `[B, T, P, C]`: the
        frames' `vision_backbone` outputs, computed earlier (a frozen encoder's, cached), instead
        of `pixel_values`.
        """
        if not self.config.use_decoder_only_language_model:
            raise NotImplementedError("MA-LMM here supports decoder-only language models")
        video = _video_input(pixel_values, vision_features, qformer_input_ids)
        features = self.get_video_features(video, qformer_input_ids, qformer_attention_mask, memory_gradients)
        inputs_embeds = self._merge_visual_tokens(input_ids, inputs_embeds, features)
        if attention_mask is None:
            attention_mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
        outputs = self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs)
        logits = outputs[0]
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size)
        return MALMMOutput(loss=loss, logits=logits, video_features=features)

    @torch.no_grad()
    def generate(
        self,
        pixel_values: torch.Tensor | None = None,
        qformer_input_ids: torch.Tensor | None = None,
        qformer_attention_mask: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        vision_features: torch.Tensor | None = None,
        **generate_kwargs,
    ) -> torch.LongTensor:
        """Generate text about each video (beam search, repetition penalty, ... as
        `transformers.GenerationMixin.generate`). Returns the language model's sequences, which
        for a decoder-only LLM start with `input_ids`."""
        video = _video_input(pixel_values, vision_features, qformer_input_ids)
        features = self.get_video_features(video, qformer_input_ids, qformer_attention_mask)
        if input_ids is None:  # only visual tokens and BOS, as InstructBLIP does
            start = [self.config.image_token_index] * features.shape[1] + [self.config.text_config.bos_token_id]
            input_ids = torch.tensor([start], dtype=torch.long, device=features.device).repeat(features.shape[0], 1)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs_embeds = self._merge_visual_tokens(input_ids, None, features)
        return self.language_model.generate(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, input_ids=input_ids, **generate_kwargs
        )


def _streaming_copy(memory: MemoryState, policy: MemoryPolicy) -> MemoryState:
    """`memory` with streaming banks of its own (copies: the caller's state stays as it was)."""
    def own(bank):
        if bank is None:
            return None
        if isinstance(bank, StreamingBank):
            copy = bank.clone()
            copy.total_frames = policy.total_frames or copy.total_frames
            return copy
        return StreamingBank.from_bank(bank, policy.length, policy.compression, policy.total_frames)

    queries = memory.queries
    if isinstance(queries, LayerBanks):
        queries = queries.clone()
        queries.bank.total_frames = policy.total_frames or queries.bank.total_frames
    elif queries is not None:
        queries = LayerBanks.from_banks([bank.to_bank() for bank in queries], policy.length, policy.compression,
                                        policy.total_frames)
    return MemoryState(own(memory.visual), queries, memory.frames_seen)
