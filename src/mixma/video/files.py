"""Which files are videos, and the videos a command line names (files, folders, globs)."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".3gp", ".flv", ".mpg", ".mpeg", ".wmv", ".ts", ".m2ts")


def is_video_name(name: str) -> bool:
    """Whether a file name has a video extension (any case)."""
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def find_videos(root: str | os.PathLike) -> list[str]:
    """Every video file under `root`, as sorted POSIX paths relative to it.

    Videos are files with one of `VIDEO_EXTENSIONS` (any case). Hidden files and folders (a
    leading dot: the frame cache `.frame_cache`, `.git`, macOS's `._` files) are skipped, and
    links to folders are not followed (so a link cannot make a loop).
    """
    root = Path(root)
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # pruned in place: os.walk skips them
        rel = Path(folder).relative_to(root)
        found += [(rel / name).as_posix() for name in files if not name.startswith(".") and is_video_name(name)]
    return sorted(found)


def expand_paths(paths: Iterable[str | os.PathLike], *, every_file: bool = False) -> tuple[list[Path], list[str]]:
    """The files a list of command-line paths names, in order, each once: a file as it is (a
    video or not: reading it says), a folder's videos (every file with `every_file`), recursively,
    and a glob pattern's matches. Returns (files, paths that name nothing)."""
    files: dict[Path, None] = {}
    unmatched = []
    for given in map(str, paths):
        matches = [given] if os.path.exists(given) or not glob.has_magic(given) else sorted(glob.glob(given, recursive=True))
        if not matches or not os.path.exists(matches[0]):
            unmatched.append(given)
            continue
        for match in map(Path, matches):
            if match.is_dir():
                names = _every_file(match) if every_file else find_videos(match)
                files.update((match / name, None) for name in names)
            else:
                files[match] = None
    return list(files), unmatched


def _every_file(root: Path) -> list[str]:
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(folder).relative_to(root)
        found += [(rel / n).as_posix() for n in names if not n.startswith(".")]
    return sorted(found)
