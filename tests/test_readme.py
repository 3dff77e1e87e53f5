"""The README's Python examples run as written.

Each ```python block is executed on its own (a fresh namespace) in a folder holding what the
README says its examples use: a video `talk.mp4`, an InstructBLIP-format model folder
`instructblip-vicuna-7b/` (a small stand-in: a real one is gigabytes), a trained run
`runs/malmm/` and a released-checkpoint stand-in `lvu_genre/checkpoint_best.pth`.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mixma.video.writer import write_video

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
RECIPE = re.findall(r"<!-- recipe -->\n```bash\n(.*?)```", README, flags=re.S)
TINY_RUN = [
    "model.small.vision_hidden=32", "model.small.qformer_hidden=32", "model.small.llm_hidden=32",
    "model.small.num_query_tokens=4", "model.memory_bank_length=2", "data.image_size=32", "data.num_frames=4",
    "run.batch_size=4", "run.eval_batch_size=8", "run.epochs=1", "optim.warmup_steps=2", "generate.num_beams=2",
    "generate.max_new_tokens=2",
]


def _talk(path: Path) -> None:
    """A 120-frame clip: a drifting background and a bright block that crosses it."""
    rng = np.random.default_rng(0)
    background = rng.integers(40, 120, (96, 160, 3), dtype=np.uint8)
    frames = []
    for i in range(120):
        frame = np.roll(background, i // 2, axis=1).copy()
        if 40 <= i < 60:
            frame[30:60, (i - 40) * 6 : (i - 40) * 6 + 30] = (230, 40, 40)
        frames.append(frame)
    write_video(path, frames, fps=25)


def _instructblip(path: Path) -> None:
    from mixma.models.malmm.small import SmallConfig, build_small_malmm

    torch.manual_seed(0)
    sizes = SmallConfig(vision_hidden=32, vision_layers=1, qformer_hidden=32, qformer_layers=2, llm_hidden=32,
                        llm_layers=1, num_query_tokens=4)
    model, processor = build_small_malmm(["Question: what is the man doing? Short answer: walking"], sizes,
                                         image_size=32, memory_bank_length=2)
    model.save_pretrained(path)
    processor.save_pretrained(path)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    from mixma.cli import main
    from mixma.data.synthetic import SyntheticConfig, make_benchmark
    from mixma.models.malmm import MALMM
    from tests.models.malmm.test_lavis import lavis_state, save_lavis

    folder = tmp_path_factory.mktemp("readme")
    _talk(folder / "talk.mp4")
    _instructblip(folder / "instructblip-vicuna-7b")
    released = MALMM.from_pretrained(folder / "instructblip-vicuna-7b", post_layernorm_eps=1e-5)
    (folder / "lvu_genre").mkdir()
    save_lavis(folder / "lvu_genre" / "checkpoint_best.pth", lavis_state(released), memory_bank_length=2)
    make_benchmark(folder / "demo-bench", SyntheticConfig(videos=10, frames=100, seed=5), workers=1)
    args = ["train", "malmm", "-o", str(folder / "runs" / "malmm"), "--set", f"data.root={folder / 'demo-bench'}"]
    assert main([*args, *sum((["--set", o] for o in TINY_RUN), [])]) == 0
    return folder


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: BLOCKS[i].strip().splitlines()[0][:50])
def test_readme_example_runs(sandbox, monkeypatch, index):
    monkeypatch.chdir(sandbox)
    code = compile(BLOCKS[index], f"README.md python block {index + 1}", "exec")
    exec(code, {"__name__": "__readme__"})  # noqa: S102  (our own documentation)


def test_the_download_to_answer_recipe_runs(sandbox, monkeypatch, capsys):
    """The README's recipe, command by command, on the stand-ins for the downloads."""
    import shlex

    from mixma.cli import main

    [recipe] = RECIPE
    lines = [line.split("  #")[0].strip() for line in recipe.strip().splitlines()]
    assert len(lines) >= 3 and all(line.startswith("mixma ") for line in lines)
    monkeypatch.chdir(sandbox)
    shutil.rmtree("malmm-lvu-genre", ignore_errors=True)  # the Python example converts to the same folder
    for line in lines:
        assert main(shlex.split(line)[1:]) == 0, f"{line}: {capsys.readouterr().err}"
        shown = capsys.readouterr()
        assert shown.out.strip() or shown.err.strip(), line  # an answer, a table, or what was written
