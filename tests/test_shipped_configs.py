"""Every shipped config loads strictly and trains one step, so none can rot.

Each per-dataset config (`configs/malmm/*.yaml`, `configs/mama/*.yaml`) is read as a user would
read it, then trained for one step on a copy of that dataset's reader fixture (its official
layout, `tests/data/fixtures/`) with tiny generated videos where the reader expects them, and
with tiny stand-ins for the models: a small MA-LMM saved as a model folder in place of
InstructBLIP, a tiny two-tower CLIP (with a byte-level tokenizer) in place of CLIP ViT-B/32.
Only what a CPU needs is overridden (devices, precision, sizes, one step).
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mixma.config import load_config
from mixma.eval.malmm import evaluate_malmm_run
from mixma.eval.mama import evaluate_mama_run
from mixma.data.readers import get_dataset, read_dataset
from mixma.runs.malmm import MALMMRunConfig
from mixma.runs.mama import MAMARunConfig
from mixma.video.writer import write_video

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "fixtures"
LAYOUT = {  # dataset -> its fixture folder (MA-LMM's released layout where there are several)
    "lvu": "lvu", "breakfast": "breakfast", "coin": "coin/malmm", "msrvtt_qa": "msrvtt_qa/malmm",
    "msvd_qa": "msvd_qa/malmm", "activitynet_qa": "activitynet_qa/malmm", "msrvtt_cap": "msrvtt_cap",
    "msvd_cap": "msvd_cap", "youcook2": "youcook2/malmm", "msrvtt_ret": "msrvtt_ret", "msvd_ret": "msvd_ret",
    "didemo": "didemo", "activitynet_captions": "activitynet_captions",
}
MALMM_CONFIGS = sorted((ROOT / "configs" / "malmm").glob("*.yaml"))
MAMA_CONFIGS = sorted((ROOT / "configs" / "mama").glob("*.yaml"))
CPU = ["run.device=cpu", "run.amp=no", "run.num_workers=0", "run.max_steps=1", "run.batch_size=2",
       "run.eval_batch_size=2", "optim.accumulate=1", "optim.warmup_steps=1", "data.num_frames=2",
       "data.image_size=32", "data.max_train_samples=4", "data.max_eval_samples=2"]


def test_every_config_is_covered():
    names = {p.stem for p in MALMM_CONFIGS}
    assert {f"lvu_{t}" for t in ("relationship", "way_speaking", "scene", "director", "genre", "writer", "year")} <= names
    assert {"breakfast", "coin", "msrvtt_qa", "msvd_qa", "activitynet_qa", "msrvtt_cap", "msvd_cap", "youcook2_cap"} <= names
    assert {p.stem for p in MAMA_CONFIGS} >= {"msrvtt_retrieval", "msvd_retrieval", "didemo_retrieval",
                                              "activitynet_retrieval", "msrvtt_qa", "msvd_qa"}


def _usable_split(dataset: str, root: Path, options: dict) -> str:
    """The fixture's split with the most records (fixtures hold one or two splits)."""
    sizes = {}
    for split in get_dataset(dataset).splits:
        try:
            sizes[split] = len(read_dataset(dataset, root, split, errors=[], **options))
        except Exception:  # noqa: BLE001  (a split the fixture lacks)
            continue
    assert sizes, f"the {dataset} fixture has no split with records"
    return max(sizes, key=sizes.get)


def _dataset_copy(tmp_path: Path, dataset: str, options: dict) -> tuple[Path, str]:
    """The fixture copied, with a tiny video wherever one of its records expects one."""
    root = tmp_path / "data"
    shutil.copytree(FIXTURES / LAYOUT[dataset], root)
    if dataset == "lvu":  # the fixture labels only some of LVU's seven tasks: give every video this one
        for file in (root / "annotation").glob("*.json"):
            entries = json.loads(file.read_text())
            for entry in entries.values():
                entry.setdefault(options["task"], "0")
            file.write_text(json.dumps(entries, indent=1))
    if dataset == "msvd_ret":  # its captions are a pickle, which the repository does not hold: make one
        clips = {line.split()[0] for name in ("train_list.txt", "test_list.txt")
                 for line in (root / "msvd_data" / name).read_text().splitlines() if line.strip()}
        (root / "msvd_data" / "raw-captions.pkl").write_bytes(pickle.dumps({c: [["a", "video", "clip"]] for c in clips}))
    split = _usable_split(dataset, root, options)
    rng = np.random.default_rng(0)
    lengths: dict[Path, float] = {}  # each video long enough for every clip of it
    for record in read_dataset(dataset, root, split, errors=[], **options):
        video = record.video_path(root)
        lengths[video] = max(lengths.get(video, 4.0), (record.end or record.start or 0.0) + 1.0)
    for video, seconds in lengths.items():
        if not video.exists():
            video.parent.mkdir(parents=True, exist_ok=True)
            write_video(video, rng.integers(0, 255, (int(seconds * 2), 32, 32, 3), dtype=np.uint8), fps=2)
    return root, split


@pytest.fixture(scope="module")
def malmm_standin(tmp_path_factory) -> Path:
    """A small MA-LMM model folder standing in for Salesforce/instructblip-vicuna-7b."""
    from mixma.models.malmm.small import SmallConfig, build_small_malmm

    torch.manual_seed(0)
    small = SmallConfig(patch_size=16, vision_hidden=16, vision_layers=1, qformer_hidden=16, qformer_layers=1,
                        llm_hidden=16, llm_layers=1, heads=2, num_query_tokens=2)
    model, processor = build_small_malmm(["question short answer what is the video describe"], small, image_size=32)
    path = tmp_path_factory.mktemp("instructblip")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clip_standin(tmp_path_factory) -> Path:
    """A tiny two-tower CLIP with a byte-level BPE tokenizer, standing in for CLIP ViT-B/32."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    path = tmp_path_factory.mktemp("clip")
    # byte-level BPE's alphabet (GPT-2's printable stand-ins for the 256 bytes), and no merges
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]
    vocab = {token: i for i, token in enumerate([*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"])}
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"))
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = CLIPConfig(
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16),
        text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         vocab_size=len(vocab), max_position_embeddings=77, eos_token_id=vocab["<|endoftext|>"],
                         bos_token_id=vocab["<|startoftext|>"], pad_token_id=vocab["<|endoftext|>"]),
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(path)
    return path


@pytest.mark.parametrize("path", MALMM_CONFIGS, ids=lambda p: p.stem)
def test_malmm_config_trains_one_step(tmp_path, path, malmm_standin):
    from mixma.train.malmm import train_malmm

    config = load_config(MALMMRunConfig, path)  # strict: a stale key fails here
    assert config.model.init == "Salesforce/instructblip-vicuna-7b" and config.run.amp == "fp16"
    root, split = _dataset_copy(tmp_path, config.data.dataset, config.data.options)
    overrides = [*CPU, f"model.init={malmm_standin}", f"data.root={root}", f"data.train_split={split}",
                 f"data.eval_split={split}", f"run.output_dir={tmp_path / 'run'}", "generate.num_beams=1",
                 "generate.max_new_tokens=2"]
    summary = train_malmm(load_config(MALMMRunConfig, path, overrides), progress=False)
    assert summary["steps"] == 1
    metrics = evaluate_malmm_run(tmp_path / "run", split, progress=False)  # and evaluates, as `mixma eval` does
    assert metrics["split"] == split and ("CIDEr" in metrics or metrics["count"] > 0)


@pytest.mark.parametrize("path", MAMA_CONFIGS, ids=lambda p: p.stem)
def test_mama_config_trains_one_step(tmp_path, path, clip_standin):
    from mixma.train.mama import train_mama

    config = load_config(MAMARunConfig, path)
    assert config.model.vision == "openai/clip-vit-base-patch32" and config.model.text is None
    root, split = _dataset_copy(tmp_path, config.data.dataset, config.data.options)
    overrides = [*CPU, f"model.vision={clip_standin}", "model.encoder.projection_dim=16", "model.qa.fusion_dim=16",
                 "model.qa.fusion_heads=2", f"data.root={root}", f"data.train_split={split}", f"data.eval_split={split}",
                 f"loss.meta_split={split}", "loss.meta_batch_size=2", f"run.output_dir={tmp_path / 'run'}"]
    summary = train_mama(load_config(MAMARunConfig, path, overrides), progress=False)
    assert summary["steps"] == 1
    metrics = evaluate_mama_run(tmp_path / "run", split, progress=False)
    assert metrics["split"] == split and ("t2v/R@1" in metrics or metrics["count"] > 0)
