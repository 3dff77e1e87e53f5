"""Search your own videos down to the moment: `build_index` embeds each video's moments into an
index folder (vectors in faiss, metadata in SQLite), `VideoIndex.open(path).search(text)` finds them.

See README "Search your videos" for the commands, the models, the index format and how it scales.
"""

from mixma.index.build import build_index
from mixma.index.options import IndexOptions
from mixma.index.search import VideoIndex
from mixma.index.types import BuildSummary, Hit, VideoEntry

__all__ = ["BuildSummary", "Hit", "IndexOptions", "VideoEntry", "VideoIndex", "build_index"]
