"""`VideoAssistant` on a moment of a video: `clip=(start, end)` samples frames from it only."""

from __future__ import annotations

import pytest
import torch

from mixma.inference import VideoAssistant
from mixma.video.sampling import sample_frames
from tests.conftest import frame_index


@pytest.fixture(scope="module")
def assistant():
    from mixma.models.malmm.small import SmallConfig, build_small_malmm

    torch.manual_seed(0)
    sizes = SmallConfig(vision_hidden=32, qformer_hidden=32, llm_hidden=32, num_query_tokens=4, vision_layers=1, qformer_layers=1)
    model, processor = build_small_malmm(["Question: what moves? Short answer: a block"], sizes, image_size=32, memory_bank_length=2)
    return VideoAssistant(model, processor)


def test_a_clip_is_sampled_from_that_moment_only(assistant, indexed_video):
    clip = (4.0, 6.0)  # 25 fps: frames 100-149
    sample = sample_frames(indexed_video, assistant.data.num_frames, "uniform", size=assistant.data.image_size, clip=clip)
    assert all(100 <= frame_index(f) < 150 for f in sample_frames(indexed_video, 4, "uniform", clip=clip).frames)
    got = assistant.pixel_values(indexed_video, strategy="uniform", clip=clip)
    assert torch.equal(got, assistant.pixel_values(sample, strategy="uniform"))
    assert not torch.equal(got, assistant.pixel_values(indexed_video, strategy="uniform"))


def test_ask_about_a_moment(assistant, indexed_video):
    assert isinstance(assistant.ask(indexed_video, "what moves?", clip=(4.0, None), max_new_tokens=2).text, str)
    from mixma.errors import VideoError

    with pytest.raises(VideoError, match="holds no frame"):
        assistant.ask(indexed_video, "what moves?", clip=(50.0, 60.0))
