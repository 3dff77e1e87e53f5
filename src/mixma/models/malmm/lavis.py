"""MA-LMM's released checkpoints (LAVIS training checkpoints) to mixma MA-LMM folders, and back.

A LAVIS checkpoint is `torch.save({"model", "optimizer", "config", "scaler", "epoch"})`, every
value plain Python or tensors, so `torch.load(weights_only=True)` reads it and anything else is
refused unexecuted. LAVIS saves only the parameters that were trained (plus buffers); with
MA-LMM's settings these are the Q-Former (`Qformer.bert.*`, with its text embeddings), the query
tokens, `llm_proj`, `ln_vision` and the temporal table `image_pe` (`[120, 1408]`). The ViT and
Vicuna come from the base InstructBLIP, so a conversion takes every other tensor from a base
InstructBLIP folder (transformers format) and writes a `MALMM` folder.

Names (MA-LMM commit ffe9fa9 against transformers' InstructBLIP): `Qformer.bert.` ↔ `qformer.`,
`embeddings.LayerNorm` ↔ `embeddings.layernorm`, `{attention,crossattention}.self.` ↔
`{...}.attention.`, `llm_proj` ↔ `language_projection`, `llm_model.` ↔ `language_model.`,
`ln_vision` ↔ `vision_model.post_layernorm`, `image_pe` ↔ `temporal_embedding`, and EVA's
`visual_encoder.*` ↔ `vision_model.*` (its `attn.q_bias` and `attn.v_bias` ↔ one `qkv.bias` whose
middle, key part is zero). Both sides put cross-attention in every second Q-Former layer.

The buffers LAVIS saves are checked, not copied: `Qformer.bert.embeddings.position_ids` must be
`arange`, and every layer's `rotary_emb.inv_freq` must equal the base LLM's rotary frequencies
(transformers recomputes both).

Layer norm epsilon: LAVIS's `ln_vision` uses 1e-5, transformers' `post_layernorm` takes the vision
config's `layer_norm_eps` (1e-6, shared with the encoder's own norms, which EVA runs at 1e-6). A
converted model carries 1e-5 in `MALMMConfig.post_layernorm_eps`, so it computes what LAVIS
computed. Converting the other way, a model that used another epsilon gets a note: per token,
LN with eps e1 and e2 differ by `|γ| |x̂| (1 - sqrt((σ² + e1) / (σ² + e2)))`, under
`|γ| |x̂| |e2 - e1| / (2 σ²)`, i.e. negligible unless a token's variance σ² is near 1e-5.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mixma._atomic import atomic_path, write_json
from mixma.errors import MixmaError
from mixma.models.malmm.modeling import MALMMConfig
from mixma.models.malmm.weights import TensorInfo, open_tensors, read_index, write_shards

LAVIS_LN_VISION_EPS = 1e-5
LAVIS_MAX_NUM_FRAMES = 120
CONVERSION_FILE = "conversion.json"

# what LAVIS trains (and so saves) with MA-LMM's settings, by transformers name
TRAINED_PREFIXES = ("qformer.", "query_tokens", "language_projection.", "vision_model.post_layernorm.", "temporal_embedding.")


class CheckpointError(MixmaError):
    """A LAVIS checkpoint cannot be read, or does not fit the base model.

    `path` is the file, `reason` what is wrong, and `keys` the offending tensor names (if any).
    """

    def __init__(self, path: str | os.PathLike, reason: str, keys: Iterable[str] = ()):
        self.path, self.reason, self.keys = os.fspath(path), reason, sorted(keys)
        listed = ""
        if self.keys:
            more = f" and {len(self.keys) - 20} more" if len(self.keys) > 20 else ""
            listed = f": {', '.join(self.keys[:20])}{more}"
        super().__init__(f"{self.path}: {reason}{listed}")


class OutputExistsError(MixmaError, FileExistsError):
    """The output folder exists and replacing it was not asked for."""


# -- names ---------------------------------------------------------------------------------------

# One rule per tensor family: (LAVIS name, transformers name), with {i} a layer index and {x} a
# suffix. Both directions are read from the same table; the first rule that matches wins.
_RULES = [
    ("Qformer.bert.embeddings.LayerNorm.{x}", "qformer.embeddings.layernorm.{x}"),
    ("Qformer.bert.encoder.layer.{i}.attention.self.{x}", "qformer.encoder.layer.{i}.attention.attention.{x}"),
    ("Qformer.bert.encoder.layer.{i}.crossattention.self.{x}", "qformer.encoder.layer.{i}.crossattention.attention.{x}"),
    ("Qformer.bert.{x}", "qformer.{x}"),
    ("visual_encoder.cls_token", "vision_model.embeddings.class_embedding"),
    ("visual_encoder.pos_embed", "vision_model.embeddings.position_embedding"),
    ("visual_encoder.patch_embed.proj.{x}", "vision_model.embeddings.patch_embedding.{x}"),
    ("visual_encoder.blocks.{i}.norm1.{x}", "vision_model.encoder.layers.{i}.layer_norm1.{x}"),
    ("visual_encoder.blocks.{i}.norm2.{x}", "vision_model.encoder.layers.{i}.layer_norm2.{x}"),
    ("visual_encoder.blocks.{i}.attn.qkv.weight", "vision_model.encoder.layers.{i}.self_attn.qkv.weight"),
    ("visual_encoder.blocks.{i}.attn.proj.{x}", "vision_model.encoder.layers.{i}.self_attn.projection.{x}"),
    ("visual_encoder.blocks.{i}.mlp.{x}", "vision_model.encoder.layers.{i}.mlp.{x}"),
    ("query_tokens", "query_tokens"),
    ("llm_proj.{x}", "language_projection.{x}"),
    ("ln_vision.{x}", "vision_model.post_layernorm.{x}"),
    ("image_pe.weight", "temporal_embedding.weight"),
    ("llm_model.{x}", "language_model.{x}"),
]


def _compile(pattern: str) -> re.Pattern:
    escaped = re.escape(pattern).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{x\}", r"(?P<x>.+)")
    return re.compile(escaped + "$")


_TO_HF = [(_compile(lavis), hf) for lavis, hf in _RULES]
_TO_LAVIS = [(_compile(hf), lavis) for lavis, hf in _RULES]
_QV_BIAS = re.compile(r"visual_encoder\.blocks\.(\d+)\.attn\.(q|v)_bias$")
_QKV_BIAS = re.compile(r"vision_model\.encoder\.layers\.(\d+)\.self_attn\.qkv\.bias$")
_POSITION_IDS = "Qformer.bert.embeddings.position_ids"
_INV_FREQ = re.compile(r"llm_model\.model\.layers\.(\d+)\.self_attn\.rotary_emb\.inv_freq$")


def _rename(rules, name: str) -> str:
    for pattern, template in rules:
        if match := pattern.match(name):
            return template.format(**match.groupdict())
    raise KeyError(name)


def to_hf_name(name: str) -> str:
    """The transformers name of a LAVIS MA-LMM tensor (`attn.q_bias`/`v_bias` → the `qkv.bias` they
    are part of).

    Raises:
        KeyError: a name with no counterpart.
    """
    if match := _QV_BIAS.match(name):
        return f"vision_model.encoder.layers.{match[1]}.self_attn.qkv.bias"
    return _rename(_TO_HF, name)


def to_lavis_name(name: str) -> str:
    """The LAVIS name of a transformers MA-LMM tensor (`qkv.bias` splits; see `hf_to_lavis`).

    Raises:
        KeyError: a name with no counterpart.
    """
    return _rename(_TO_LAVIS, name)


def is_trained(hf_name: str) -> bool:
    """Whether LAVIS trains (and saves) this tensor with MA-LMM's settings."""
    return hf_name.startswith(TRAINED_PREFIXES)


# -- state dicts (pure) ----------------------------------------------------------------------------


def lavis_to_hf(state: dict[str, torch.Tensor], source: str = "checkpoint"
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Rename a LAVIS MA-LMM state dict to transformers names.

    Returns:
        `(tensors, buffers)`: the tensors by transformers name (EVA's `q_bias`/`v_bias` joined
        into `qkv.bias` with a zero key part), and the buffers LAVIS saves, by LAVIS name, for
        `check_buffers`.

    Raises:
        CheckpointError: tensors with no counterpart, or a `q_bias` without its `v_bias`.
    """
    tensors, buffers, unknown, biases = {}, {}, [], {}
    for name, tensor in state.items():
        if name == _POSITION_IDS or _INV_FREQ.match(name):
            buffers[name] = tensor
        elif match := _QV_BIAS.match(name):
            biases.setdefault(int(match[1]), {})[match[2]] = tensor
        else:
            try:
                tensors[to_hf_name(name)] = tensor
            except KeyError:
                unknown.append(name)
    if unknown:
        raise CheckpointError(source, "tensors with no counterpart in transformers' InstructBLIP", unknown)
    half = [f"visual_encoder.blocks.{i}.attn.{'v' if 'q' in parts else 'q'}_bias"
            for i, parts in biases.items() if len(parts) < 2]
    if half:
        raise CheckpointError(source, "vision blocks with only one of q_bias and v_bias; missing", half)
    for i, parts in sorted(biases.items()):
        key = torch.zeros_like(parts["q"])  # EVA has no key bias
        tensors[f"vision_model.encoder.layers.{i}.self_attn.qkv.bias"] = torch.cat([parts["q"], key, parts["v"]])
    return tensors, buffers


def rotary_frequencies(text_config) -> torch.Tensor:
    """The LLM's rotary inverse frequencies `[head_dim / 2]` (float32, the default rope)."""
    head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads
    rope = getattr(text_config, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(text_config, "rope_theta", 10000.0))
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))


def check_buffers(buffers: dict[str, torch.Tensor], config: MALMMConfig, source: str = "checkpoint") -> None:
    """The buffers LAVIS saves must be what transformers recomputes for `config`.

    Raises:
        CheckpointError: position ids that are not `arange`, or rotary frequencies (or a rope
            type) that differ from the base LLM's.
    """
    wrong = []
    if _POSITION_IDS in buffers:
        ids = buffers[_POSITION_IDS]
        if not torch.equal(ids.long().flatten(), torch.arange(config.qformer_config.max_position_embeddings)):
            wrong.append(_POSITION_IDS)
    rope = getattr(config.text_config, "rope_parameters", None) or {}
    expected = rotary_frequencies(config.text_config)
    for name, tensor in buffers.items():
        if _INV_FREQ.match(name) and (rope.get("rope_type", "default") != "default" or tensor.shape != expected.shape
                                      or not torch.allclose(tensor.float(), expected, rtol=1e-3, atol=0)):
            wrong.append(name)
    if wrong:
        raise CheckpointError(source, "buffers that differ from what the base model computes (another LLM or Q-Former?)", wrong)


def hf_to_lavis(tensors: dict[str, torch.Tensor], config: MALMMConfig, include_frozen: bool = False
                ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a transformers MA-LMM state dict to LAVIS names, as LAVIS saves it: the trained
    tensors (all of them with `include_frozen`), the Q-Former's `position_ids` and every LLM
    layer's `rotary_emb.inv_freq`. `qkv.bias` splits into `q_bias` and `v_bias`; a nonzero key
    part is dropped, which changes nothing (a key bias adds the same amount to a query's every
    score, and softmax ignores that) and is noted.

    Returns:
        The LAVIS state dict and notes.
    """
    out, notes = {}, []
    for name, tensor in tensors.items():
        if not include_frozen and not is_trained(name):
            continue
        if match := _QKV_BIAS.match(name):
            q, k, v = tensor.chunk(3)
            if k.any():
                notes.append(f"{name}: nonzero key bias dropped (EVA has none; attention is unchanged by it)")
            out[f"visual_encoder.blocks.{match[1]}.attn.q_bias"] = q.clone()
            out[f"visual_encoder.blocks.{match[1]}.attn.v_bias"] = v.clone()
            continue
        out[to_lavis_name(name)] = tensor
    out[_POSITION_IDS] = torch.arange(config.qformer_config.max_position_embeddings)[None]
    for i in range(config.text_config.num_hidden_layers):
        out[f"llm_model.model.layers.{i}.self_attn.rotary_emb.inv_freq"] = rotary_frequencies(config.text_config)
    return out, notes


def fit_temporal_table(table: torch.Tensor, rows: int) -> tuple[torch.Tensor, str | None]:
    """`table [R, C]` resized to `rows`: sliced, or padded by repeating its last row (what MA-LMM
    does for frames past the table when streaming), with a note saying so."""
    if table.shape[0] == rows:
        return table, None
    if table.shape[0] > rows:
        return table[:rows].clone(), f"temporal table sliced from {table.shape[0]} to {rows} rows"
    pad = table[-1:].expand(rows - table.shape[0], -1)
    note = f"temporal table padded from {table.shape[0]} to {rows} rows by repeating the last trained row"
    return torch.cat([table, pad]), note


# -- files ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conversion:
    """What a conversion wrote: `path`, how many tensors came from the checkpoint or model, and
    notes on everything not copied as is (also in the folder's `conversion.json`)."""

    path: Path
    tensors: int
    notes: list[str] = field(default_factory=list)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """A LAVIS training checkpoint, read with `torch.load(weights_only=True)` (memory-mapped
    where the format allows): plain Python values and tensors only, nothing executed.

    Raises:
        CheckpointError: unreadable, a pickle with anything but weights (refused unexecuted), or
            not a LAVIS checkpoint (no `model` dict of tensors).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # the legacy format
    except Exception as error:  # noqa: BLE001 - pickle, zip and torch errors alike
        refused = re.search(r"Unsupported global: (GLOBAL \S+)", str(error))
        if refused:
            raise CheckpointError(path, f"holds objects beyond weights ({refused[1]}), refused without running it") from None
        reason = re.search(r"WeightsUnpickler error: \s*(.+)", str(error))
        lines = str(error).strip().splitlines()
        detail = reason[1].strip() if reason else f"{type(error).__name__}: {lines[0] if lines else ''}"
        raise CheckpointError(path, f"cannot be read as a torch checkpoint ({detail})") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise CheckpointError(path, "not a LAVIS checkpoint (expected a dict with a 'model' state dict)")
    odd = [k for k, v in checkpoint["model"].items() if not isinstance(v, torch.Tensor)]
    if odd:
        raise CheckpointError(path, "'model' holds entries that are not tensors", odd)
    return checkpoint


def _lavis_model_config(checkpoint: dict) -> dict:
    config = checkpoint.get("config")
    model = config.get("model") if isinstance(config, dict) else None
    return model if isinstance(model, dict) else {}


def _check_fit(tensors: dict[str, torch.Tensor], index: dict[str, TensorInfo], source: str) -> None:
    expected = {name for name in index if is_trained(name)} | {"temporal_embedding.weight"}
    missing = expected - set(tensors)
    if missing:
        raise CheckpointError(source, "trained tensors missing from the checkpoint", missing)
    unknown = set(tensors) - set(index) - {"temporal_embedding.weight"}
    if unknown:
        raise CheckpointError(source, "tensors the base model does not have", unknown)
    mismatched = [f"{name} {list(t.shape)} (base {list(index[name].shape)})" for name, t in tensors.items()
                  if name in index and tuple(t.shape) != index[name].shape and name != "temporal_embedding.weight"]
    if mismatched:
        raise CheckpointError(source, "tensors shaped unlike the base model's", mismatched)


def _checkpoint_tensors(data: dict, base_config: MALMMConfig, max_num_frames: int | None, run: dict, source: str
                        ) -> tuple[dict[str, torch.Tensor], int, list[str]]:
    """The checkpoint's tensors by transformers name, buffers checked and the temporal table
    fitted to `max_num_frames` rows (default: its own). Returns `(tensors, rows, notes)`."""
    tensors, buffers = lavis_to_hf(data["model"], source)
    check_buffers(buffers, base_config, source)
    table = tensors.get("temporal_embedding.weight")
    rows = max_num_frames or (table.shape[0] if table is not None else int(run.get("max_num_frames", LAVIS_MAX_NUM_FRAMES)))
    notes = []
    if table is not None:
        if table.dim() != 2 or table.shape[1] != base_config.vision_config.hidden_size:
            raise CheckpointError(source, f"image_pe is {list(table.shape)}, expected [rows, "
                                  f"{base_config.vision_config.hidden_size}]", ["image_pe.weight"])
        tensors["temporal_embedding.weight"], note = fit_temporal_table(table, rows)
        notes += [note] if note else []
    return tensors, rows, notes


def convert_from_lavis(checkpoint: str | os.PathLike, base_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                       memory_bank_length: int | None = None, max_num_frames: int | None = None,
                       overwrite: bool = False, max_shard_bytes: int = 2 << 30) -> Conversion:
    """Write a `MALMM` folder from a LAVIS MA-LMM checkpoint over a base InstructBLIP folder.

    Every tensor the checkpoint holds replaces the base's (in the checkpoint's dtype); the rest,
    the tokenizers and processor files are the base's. Tensors are read and written one at a
    time (a shard at most is held), and the folder appears only when complete.

    Args:
        checkpoint: a LAVIS training checkpoint (`checkpoint_best.pth`).
        base_dir: the InstructBLIP the model was trained from, in transformers format (e.g.
            `Salesforce/instructblip-vicuna-7b`, downloaded).
        out_dir: the folder to write (`MALMM.from_pretrained(out_dir)`, `mixma ask -c out_dir`).
        memory_bank_length: M; default the checkpoint's run configuration, else the base's.
        max_num_frames: rows of the temporal table; default the checkpoint's (120). Another
            value slices the trained table or pads it by repeating its last row (noted).
        overwrite: replace an existing `out_dir`.
        max_shard_bytes: largest weight file written.

    Returns:
        What was written, with notes.

    Raises:
        CheckpointError: the checkpoint is unreadable or unsafe, or does not fit the base: unknown
            or missing trained tensors, or shapes that differ (each error lists the tensors).
        WeightsError: the base folder has no safetensors weights.
        OutputExistsError: `out_dir` exists and `overwrite` is False (a `FileExistsError`).
    """
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise OutputExistsError(f"{out_dir} exists (pass overwrite=True to replace it)")
    data = read_checkpoint(checkpoint)
    index = read_index(base_dir)
    run = _lavis_model_config(data)
    base_config = MALMMConfig.from_pretrained(base_dir)
    tensors, rows, notes = _checkpoint_tensors(data, base_config, max_num_frames, run, str(checkpoint))
    _check_fit(tensors, index, str(checkpoint))
    if memory_bank_length is None:
        memory_bank_length = int(run.get("memory_bank_length", base_config.memory_bank_length))
    length = memory_bank_length
    config = MALMMConfig.from_pretrained(base_dir, memory_bank_length=length, max_num_frames=rows,
                                         post_layernorm_eps=LAVIS_LN_VISION_EPS)
    notes.append(f"ln_vision's epsilon {LAVIS_LN_VISION_EPS:g} kept (config.post_layernorm_eps)")
    kept_dtypes = sorted({str(t.dtype) for t in tensors.values()} - {str(i.dtype) for i in index.values()})
    if kept_dtypes:
        notes.append(f"trained tensors kept in their own dtype ({', '.join(kept_dtypes)}); from_pretrained casts as asked")
    entries = [(name, tuple(tensors[name].shape) if name in tensors else info.shape,
                tensors[name].dtype if name in tensors else info.dtype) for name, info in index.items()]
    if "temporal_embedding.weight" not in index:
        entries.append(("temporal_embedding.weight", tuple(tensors["temporal_embedding.weight"].shape),
                        tensors["temporal_embedding.weight"].dtype))
    report = {"from": "lavis", "checkpoint": str(checkpoint.resolve()), "sha256": _sha256(checkpoint),
              "epoch": data.get("epoch"), "base": str(Path(base_dir).resolve()), "memory_bank_length": length,
              "max_num_frames": rows, "tensors_from_checkpoint": len(tensors), "notes": notes}
    with _folder(out_dir, overwrite) as tmp, open_tensors(base_dir, index) as get:
        write_shards(tmp, entries, lambda name: tensors[name] if name in tensors else get(name), max_shard_bytes)
        config.save_pretrained(tmp)
        _copy_processor_files(Path(base_dir), tmp)
        write_json(tmp / CONVERSION_FILE, report)
    return Conversion(out_dir, len(tensors), notes)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


_WEIGHT_FILES = re.compile(r"(model.*\.safetensors|pytorch_model.*\.bin|.*\.index\.json|config\.json)$")


def _copy_processor_files(base: Path, out: Path) -> None:
    """Tokenizers, processor and generation settings: everything in the base but its weights and config."""
    for item in base.iterdir():
        if item.is_dir():
            shutil.copytree(item, out / item.name)
        elif not _WEIGHT_FILES.match(item.name):
            shutil.copy2(item, out / item.name)


@contextlib.contextmanager
def _folder(out_dir: Path, overwrite: bool):
    """A temporary folder beside `out_dir`, renamed to it when the block completes."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        yield tmp
        if out_dir.exists() and overwrite:
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
            os.replace(out_dir, old / out_dir.name)
            os.replace(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def convert_to_lavis(model, out_file: str | os.PathLike, *, include_frozen: bool = False, num_frames: int | None = None
                     ) -> Conversion:
    """Write a LAVIS training checkpoint of an MA-LMM, for evaluation in the original code
    (`run.evaluate True run.resume_ckpt_path OUT_FILE`).

    It holds what LAVIS would have saved (the trained tensors and buffers; every tensor with
    `include_frozen`, for a model whose ViT or LLM was trained), an AdamW state with LAVIS's two
    parameter groups and no moments (LAVIS loads the optimizer even to evaluate), a GradScaler
    state, epoch 0 and a `config` with the model settings to pass LAVIS
    (`model.memory_bank_length`, `model.max_num_frames`, `model.num_query_token`).

    Args:
        model: a `MALMM`, or a folder saved by `save_pretrained` (read tensor by tensor).
        out_file: the `.pth` to write (atomically).
        include_frozen: also write the vision encoder and the LLM.
        num_frames: recorded as `model.num_frames` in the config (LAVIS needs it set).

    Returns:
        What was written, with notes (epsilon, temporal table rows, dropped key biases).
    """
    if isinstance(model, (str, os.PathLike)):
        config = MALMMConfig.from_pretrained(model)
        index = read_index(model)
        wanted = {name: info for name, info in index.items() if include_frozen or is_trained(name)}
        with open_tensors(model, wanted) as get:
            tensors = {name: get(name) for name in wanted}
    else:
        config, tensors = model.config, {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state, notes = hf_to_lavis(tensors, config, include_frozen)
    eps = config.post_layernorm_eps or config.vision_config.layer_norm_eps
    if eps != LAVIS_LN_VISION_EPS:
        notes.append(f"this model's post_layernorm used eps {eps:g}, LAVIS's ln_vision uses {LAVIS_LN_VISION_EPS:g}: "
                     "per token the outputs differ by under |gamma| |x_hat| |e2 - e1| / (2 var)")
    rows = state["image_pe.weight"].shape[0]
    if rows != LAVIS_MAX_NUM_FRAMES:
        notes.append(f"the temporal table has {rows} rows: run LAVIS with model.max_num_frames {rows}")
    with atomic_path(out_file) as tmp:
        torch.save(_lavis_checkpoint(state, config, num_frames), tmp)
    return Conversion(Path(out_file), len(state), notes)


def _lavis_checkpoint(state: dict[str, torch.Tensor], config: MALMMConfig, num_frames: int | None) -> dict:
    """`state` wrapped as LAVIS's runner saves it, with what its `_load_checkpoint` reads."""
    params = [name for name in state if name != _POSITION_IDS and not _INV_FREQ.match(name)]
    # LAVIS's runner: no weight decay for 1-d tensors and names with "bias", "ln" or "bn"
    no_decay = [n for n in params if state[n].dim() < 2 or any(s in n for s in ("bias", "ln", "bn"))]
    decay = [n for n in params if n not in set(no_decay)]
    groups, start = [], 0
    for names, weight_decay in ((decay, 0.05), (no_decay, 0.0)):
        groups.append({"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": weight_decay, "amsgrad": False,
                       "maximize": False, "foreach": None, "capturable": False, "differentiable": False, "fused": None,
                       "params": list(range(start, start + len(names)))})
        start += len(names)
    model = {"arch": "blip2_vicuna_instruct", "model_type": "vicuna7b", "memory_bank_length": config.memory_bank_length,
             "max_num_frames": state["image_pe.weight"].shape[0], "num_query_token": config.num_query_tokens}
    if num_frames is not None:
        model["num_frames"] = num_frames
    scaler = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000, "_growth_tracker": 0}
    return {"model": state, "optimizer": {"state": {}, "param_groups": groups}, "config": {"model": model},
            "scaler": scaler, "epoch": 0}
