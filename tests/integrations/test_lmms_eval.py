"""The lmms-eval model `mixma_malmm`: requests in lmms-eval's documented shapes (`Instance.args`
tuples, `task_dict[task][split][doc_id]`) against a tiny MA-LMM, and, where lmms-eval is
importable, the real base class, entry point and a local task run through `python -m lmms_eval`."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import torch

from mixma.integrations.lmms_eval import MALMMRequests

ROOT = Path(__file__).resolve().parents[2]
HAS_LMMS = importlib.util.find_spec("lmms_eval") is not None
QUESTION = "what moves?"


class Request:
    """An lmms-eval `Instance` as models see it: `.args`."""

    def __init__(self, *args):
        self.args = args


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from mixma.models.malmm.small import SmallConfig, build_small_malmm

    torch.manual_seed(0)
    texts = [f"Question: {QUESTION} Short answer:", "the background", "a block", "nothing", "describe the video"]
    sizes = SmallConfig(vision_hidden=32, qformer_hidden=32, llm_hidden=32, num_query_tokens=4, vision_layers=1, qformer_layers=2)
    model, processor = build_small_malmm(texts, sizes, image_size=32, memory_bank_length=2)
    with torch.no_grad():  # words only: no special token (e.g. the image token) is ever the likeliest
        model.language_model.lm_head.weight[processor.tokenizer.all_special_ids] = 0
        model.language_model.lm_head.weight.mul_(20)
    path = tmp_path_factory.mktemp("malmm")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def evaluator(model_dir):
    return MALMMRequests(str(model_dir), num_frames=6, max_new_tokens=4)


def docs_for(evaluator, videos):
    evaluator.task_dict = {"tiny": {"test": [{"video": str(v), "question": QUESTION} for v in videos]}}
    return lambda doc: [doc["video"]]


def test_mixma_imports_without_lmms_eval():
    code = "import sys; sys.modules['lmms_eval'] = None; import mixma, mixma.integrations.lmms_eval as m; print(m.MODEL_ID)"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "mixma_malmm"


def test_the_entry_point_is_declared():
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["lmms_eval.models"]
    assert entry_points == {"mixma_malmm": "mixma.integrations.lmms_eval:manifest"}


def test_generate_until_answers_as_mixma_ask_and_stops_at_until(evaluator, indexed_video):
    from mixma.inference import VideoAssistant

    visual = docs_for(evaluator, [indexed_video, indexed_video])
    want = VideoAssistant.from_checkpoint(evaluator.assistant.model.name_or_path).ask(
        indexed_video, QUESTION, num_frames=6, max_new_tokens=4).text
    assert want
    stop = want[1:2] if len(want) > 1 else want  # cut after the first character
    got = evaluator.generate_until([Request(QUESTION, {"max_new_tokens": 4}, visual, 0, "tiny", "test"),
                                    Request(QUESTION, {"until": [stop], "temperature": 0}, visual, 1, "tiny", "test")])
    assert got[0] == want and got[1] == want[: want.index(stop)]


def test_loglikelihood_is_the_continuations_log_probability(evaluator, indexed_video):
    """Against a direct computation: [visual tokens] + prompt + continuation through the model,
    the continuation's log-softmax summed; and greedy exactly for the argmax continuation."""
    from mixma.video.sampling import sample_frames

    a = evaluator.assistant
    tokenizer, model = a.processor.tokenizer, a.model
    pixels = a.pixel_values(sample_frames(indexed_video, 6, a.data.eval_strategy, size=a.data.image_size))
    prompt = f"Question: {QUESTION} Short answer:"
    qformer = a.processor.qformer_tokenizer([prompt], return_tensors="pt")
    start = [a.processor.image_token_id] * model.config.num_query_tokens + tokenizer(prompt).input_ids

    def forward(ids: list[int]) -> torch.Tensor:
        with torch.no_grad():
            return model(pixel_values=pixels, qformer_input_ids=qformer.input_ids, qformer_attention_mask=qformer.attention_mask,
                         input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)

    greedy = []
    for _ in range(2):
        greedy.append(int(forward(start + greedy)[-1].argmax()))
    visual = docs_for(evaluator, [indexed_video])
    texts = [tokenizer.decode(greedy), "nothing nothing"]
    (score, is_greedy), (other, other_greedy) = evaluator.loglikelihood(
        [Request(QUESTION, texts[0], visual, 0, "tiny", "test"), Request(QUESTION, lambda doc: texts[1], visual, 0, "tiny", "test")])
    for text, got in ((texts[0], score), (texts[1], other)):
        continuation = tokenizer(text, add_special_tokens=False).input_ids
        logits = forward(start + continuation)
        direct = sum(logits[len(start) + i - 1, t].item() for i, t in enumerate(continuation))
        assert got == pytest.approx(direct, abs=1e-4)
    assert is_greedy and score < 0 and other < score and not other_greedy


def test_multi_round_follows_doc_to_text(evaluator, indexed_video):
    visual = docs_for(evaluator, [indexed_video])
    seen = []

    def doc_to_text(doc, previous_output, round_idx, previous_round_info):
        seen.append((list(previous_output), round_idx, previous_round_info))
        return [doc["video"]], "describe the video", round_idx == 3, previous_output, {"round": round_idx}

    (rounds,) = evaluator.generate_until_multi_round([Request(QUESTION, {}, visual, doc_to_text, 0, "tiny", "test")])
    assert len(rounds) == 3 and all(isinstance(r, str) for r in rounds)
    assert [r for _, r, _ in seen] == [1, 2, 3] and seen[1][2] == {"round": 1}
    assert [len(previous) for previous, _, _ in seen] == [1, 2, 3] and seen[2][0] == list(rounds)


def test_an_unreadable_video_is_answered_empty_and_reported(evaluator, indexed_video, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    visual = docs_for(evaluator, [broken, indexed_video])
    evaluator.failed.clear()
    answers = evaluator.generate_until([Request(QUESTION, {}, visual, i, "tiny", "test") for i in (0, 1)])
    assert answers[0] == "" and answers[1] and [v for v, _ in evaluator.failed] == [str(broken)]
    assert evaluator.loglikelihood([Request(QUESTION, "a block", visual, 0, "tiny", "test")]) == [(float("-inf"), False)]


def test_images_are_refused(evaluator):
    evaluator.task_dict = {"tiny": {"test": [{}]}}
    with pytest.raises(ValueError, match="one video file per request"):
        evaluator.generate_until([Request(QUESTION, {}, lambda doc: [object()], 0, "tiny", "test")])


# -- with lmms-eval itself (skipped where it is not installed) ---------------------------------------

needs_lmms = pytest.mark.skipif(not HAS_LMMS, reason="lmms-eval is not installed (it pins another torch; see the README)")


@needs_lmms
def test_the_real_base_class_and_manifest():
    from lmms_eval.api.model import lmms
    from lmms_eval.models.registry_v2 import ModelRegistryV2

    import mixma.integrations.lmms_eval as integration

    registry = ModelRegistryV2()
    registry.register_manifest(integration.manifest())
    cls = registry.get_model_class("mixma_malmm")  # imports the class path and validates it
    assert issubclass(cls, lmms) and issubclass(cls, MALMMRequests) and cls.is_simple


@needs_lmms
@pytest.mark.slow
def test_a_local_task_through_python_m_lmms_eval(model_dir, indexed_video, tmp_path):
    """The command the README gives, on a two-video local task; the entry point is found from a
    distribution's metadata, as an installed mixma provides it."""
    dist = tmp_path / "site" / "mixma_entry-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mixma-entry\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[lmms_eval.models]\nmixma_malmm = mixma.integrations.lmms_eval:manifest\n")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"video": str(indexed_video), "question": QUESTION, "answer": "a block"}) + "\n"
                                                 for _ in range(2)))
    (tasks / "utils.py").write_text("def doc_to_visual(doc):\n    return [doc['video']]\n\ndef doc_to_text(doc):\n    return doc['question']\n")
    (tasks / "mixma_tiny.yaml").write_text(textwrap.dedent(f"""\
        task: mixma_tiny
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {tmp_path / 'docs.jsonl'}
        test_split: test
        output_type: generate_until
        doc_to_visual: !function utils.doc_to_visual
        doc_to_text: !function utils.doc_to_text
        doc_to_target: answer
        generation_kwargs:
          max_new_tokens: 4
        metric_list:
          - metric: exact_match
            aggregation: mean
            higher_is_better: true
        """))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "mixma_malmm", "--model_args", f"pretrained={model_dir},num_frames=6",
           "--tasks", "mixma_tiny", "--include_path", str(tasks), "--output_path", str(tmp_path / "out"), "--log_samples"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in (tmp_path / "out").rglob("*results.json")]
    assert results and "mixma_tiny" in results[0]["results"]
    assert "exact_match,none" in results[0]["results"]["mixma_tiny"]
