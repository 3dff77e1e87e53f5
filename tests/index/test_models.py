"""The learned models behind the one interface: a tiny random CLIP saved with save_pretrained
(the path of a user with hub access), and the model names the CLI takes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from mixma.errors import MixmaError
from mixma.index import IndexOptions, VideoIndex, build_index
from mixma.index.models import CLIPModel, load_model, model_name
from mixma.index.moments import read_chunks
from mixma.video.reader import VideoReader


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from transformers import AutoTokenizer, CLIPConfig
    from transformers import CLIPModel as HFCLIP

    from mixma.runs.mama import tower_source

    path = tmp_path_factory.mktemp("clip")
    tokenizer = AutoTokenizer.from_pretrained(tower_source("minilm"))  # any tokenizer will do for random weights
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=64),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=16)
    HFCLIP(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_clip_moments_are_the_unit_mean_of_unit_frame_embeddings(tiny_clip, tmp_path, colour_videos):
    model = load_model(f"clip:{tiny_clip}")
    assert isinstance(model, CLIPModel) and model.dim == 16 and model.name == f"clip:{tiny_clip.resolve()}"
    options = IndexOptions(model=model.name, moment_sec=2.0, frame_rate=2.0)
    with VideoReader(colour_videos / "a.mp4") as reader:
        chunk = next(read_chunks(reader, options))
    got = model.encode_moments(chunk)
    with torch.inference_mode():  # independently: every frame through the vision tower and projection
        hf = model.model
        frames = torch.nn.functional.interpolate(torch.from_numpy(chunk.frames).permute(0, 3, 1, 2).float() / 255,
                                                 size=(32, 32), mode="bicubic", antialias=True).clamp(0, 1)
        mean = torch.tensor(model.transform.config.mean).view(1, 3, 1, 1)
        std = torch.tensor(model.transform.config.std).view(1, 3, 1, 1)
        emb = hf.visual_projection(hf.vision_model(pixel_values=(frames - mean) / std).pooler_output)
        emb = torch.nn.functional.normalize(emb, dim=-1).numpy()
    for vector, group in zip(got, chunk.frames_of()):
        expected = emb[group].mean(0)
        np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), atol=1e-5)
    text = model.encode_text(["a red square", "blue"])
    assert text.shape == (2, 16) and np.allclose(np.linalg.norm(text, axis=1), 1, atol=1e-5)

    out = tmp_path / "idx"
    summary = build_index([colour_videos], out, options, progress=False)
    assert summary.added == 3
    hits = VideoIndex.open(out).search("red", k=2)
    assert len(hits) == 2 and hits[0].score >= hits[1].score


def test_an_index_refuses_a_clip_whose_weights_changed(tiny_clip, tmp_path, colour_videos):
    clip = tmp_path / "clip"
    shutil.copytree(tiny_clip, clip)
    out = tmp_path / "idx"
    build_index([colour_videos / "a.mp4"], out, IndexOptions(model=f"clip:{clip}", frame_rate=2.0), progress=False)
    from transformers import CLIPModel as HFCLIP

    changed = HFCLIP.from_pretrained(clip)
    with torch.no_grad():
        changed.visual_projection.weight.mul_(2)
    changed.save_pretrained(clip)
    with pytest.raises(MixmaError, match="use another index folder"):
        VideoIndex.open(out).search("red")


def test_model_names(tmp_path, tiny_clip):
    assert model_name("concepts") == "concepts"
    assert model_name(str(tiny_clip)) == f"clip:{tiny_clip.resolve()}"  # a bare CLIP folder is recognised
    assert model_name(f"mama:{tmp_path}") == f"mama:{tmp_path.resolve()}"
    with pytest.raises(MixmaError, match="no such folder"):
        model_name("clip:/nowhere/at/all")
    with pytest.raises(MixmaError):
        model_name("nothing-like-a-model")


from tests.train.test_mama import args as mama_args  # noqa: E402
from tests.train.test_mama import bench, tiny_bert  # noqa: E402,F401  (fixtures)


def test_a_mama_run_embeds_each_moment_as_a_clip_of_its_frames(capsys, tmp_path, bench, tiny_bert):  # noqa: F811
    from mixma.cli import main
    from mixma.index.models import MAMAModel

    run = tmp_path / "run"
    assert main(mama_args(bench, tiny_bert, run, "run.max_steps=1")) == 0, capsys.readouterr().err
    model = load_model(f"mama:{run}")
    assert isinstance(model, MAMAModel) and model.dim == 32 and model.num_frames == 4
    video = sorted((bench / "videos").glob("*.mp4"))[0]
    options = IndexOptions(model=model.name, unit="window", moment_sec=1.0, frame_rate=5.0)
    with VideoReader(video) as reader:
        chunk = next(read_chunks(reader, options))
    got = model.encode_moments(chunk)
    for vector, group in zip(got[:3], chunk.frames_of()[:3]):  # independently, one moment at a time
        pick = group[np.rint(np.linspace(0, len(group) - 1, 4)).astype(int)]
        with torch.inference_mode():
            expected = model.encoder.embed_videos(model.transform(chunk.frames[pick])[None])[0].numpy()
        np.testing.assert_allclose(vector, expected, atol=1e-5)
    out = tmp_path / "idx"
    assert build_index([video], out, options, progress=False).added == 1
    hits = VideoIndex.open(out).search("a red circle", k=3)
    assert hits and all(abs(h.score) <= 1 + 1e-5 for h in hits)
