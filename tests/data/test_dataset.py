"""VideoDataset: what an item yields depends on (seed, epoch, index) alone."""

from __future__ import annotations

import torch

from mixma.data.dataset import VideoDataset, VideoItem
from mixma.data.section import VideoDataSection, video_input


def make(video, seed=0, augment=True):
    data = VideoDataSection(num_frames=3, image_size=32, cache_dir=None, root=str(video.parent))
    items = [VideoItem(video, None, {"text": ("a", "b", "c", "d"), "one": ("only",), "none": ()}, {"label": 2}),
             VideoItem(video, (1.0, 3.0), {"text": ("x",)})]
    return VideoDataset(items, video_input(data, "segment", augment=augment, cached=False), seed=seed)


def test_items_are_a_function_of_seed_epoch_and_index(indexed_video):
    first, again = make(indexed_video), make(indexed_video)
    item = first[0]
    assert item["pixel_values"].shape == (3, 3, 32, 32) and item["index"] == 0
    assert item["text"] in "abcd" and item["one"] == "only" and item["none"] == "" and item["label"] == 2
    assert torch.equal(item["pixel_values"], again[0]["pixel_values"]) and item["text"] == again[0]["text"]
    texts = set()
    for epoch in range(8):
        first.set_epoch(epoch)
        texts.add(first[0]["text"])
    assert len(texts) > 1  # a new draw each epoch
    other = make(indexed_video, seed=1)
    assert not torch.equal(other[0]["pixel_values"], item["pixel_values"])


def test_clips_sample_inside_the_clip(indexed_video):
    item = make(indexed_video, augment=False)[1]
    assert item["pixel_values"].shape[0] == 3 and item["text"] == "x"
