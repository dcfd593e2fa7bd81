"""The images a run sent (task.images), as the reports show them beside the answers.

Records hold a reference to each image (its source, sha256, type and size: runner.calls), and the run keeps
its bytes at its root as `images/<sha256>.<ext>` (runner.tasks.images). report.md links each item's images to
that copy; report.html embeds a thumbnail of it. The copy is used only when its bytes still hash to the
record's sha256 and decode as a PNG, JPEG, GIF or WebP image (Pillow, at most MAX_PIXELS); the thumbnail is a
PNG drawn anew from its pixels, at most THUMBNAIL pixels a side and MAX_THUMBNAIL_BYTES, so nothing of the
file but its pixels reaches the page (no SVG, no script, no metadata). An image that does not pass is named,
not shown.
"""
from __future__ import annotations

import base64
import hashlib
import io
import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pandas as pd

from runner.tasks.images import EXTENSIONS, FOLDER, FORMATS, MAX_PIXELS, head_type

THUMBNAIL = 160  # pixels, the longest side
MAX_THUMBNAIL_BYTES = 100_000
MAX_THUMBNAILS = 200  # distinct images embedded in one report.html; the others are named
SHA256 = re.compile(r"[0-9a-f]{64}")


def saved_copy(folder: Path, image: dict) -> Path | None:
    """The run's copy of a recorded image, when it is there, holds the bytes the record names, and starts as
    an image of the type it names (a file planted under an image's name is no copy)."""
    sha256, media_type = image.get("sha256"), image.get("media_type")
    if not isinstance(sha256, str) or not SHA256.fullmatch(sha256) or media_type not in EXTENSIONS:
        return None
    path = Path(folder) / FOLDER / (sha256 + EXTENSIONS[media_type])
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != sha256 or head_type(data[:16]) != media_type:
        return None
    return path


def thumbnail(folder: Path, image: dict) -> str | None:
    """A PNG data URL of the image made small, or None when its copy is missing, changed, or not a picture."""
    from PIL import Image as Pillow

    path = saved_copy(folder, image)
    if path is None:
        return None
    try:
        with Pillow.open(path, formats=list(FORMATS)) as picture:
            if picture.size[0] * picture.size[1] > MAX_PIXELS:
                return None
            picture.thumbnail((THUMBNAIL, THUMBNAIL))
            clear = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
            small = picture.convert("RGBA" if clear else "RGB")
        out = io.BytesIO()
        small.save(out, format="PNG")  # optimize=True took 80 ms more of a 2000 x 1500 photo's 200, for 4% less
    except Exception:  # noqa: BLE001 - an image Pillow cannot read (or a forged file) is not shown
        return None
    data = out.getvalue()
    if len(data) > MAX_THUMBNAIL_BYTES:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def name_of(image: dict) -> str:
    """A short name for an image: its file's name, or the last part of its URL's path."""
    source = str(image.get("source") or "")
    if source.lower().startswith(("http://", "https://")):
        try:
            return PurePosixPath(urlsplit(source).path).name or urlsplit(source).hostname or "image"
        except ValueError:
            return "image"
    return PurePosixPath(source.replace("\\", "/")).name or "image"


def is_url(image: dict) -> bool:
    return str(image.get("source") or "").lower().startswith(("http://", "https://"))


def by_item(df: pd.DataFrame) -> dict[tuple, list[dict]]:
    """Each item's images (task, item) -> references, as its first call with images sent them."""
    if df.empty or "images" not in df:
        return {}
    found: dict[tuple, list[dict]] = {}
    for task, item, images in zip(df.task, df.item, df.images):
        if isinstance(images, list) and images and (task, item) not in found:
            found[(task, item)] = [image for image in images if isinstance(image, dict)]
    return found


class Thumbnails:
    """Each distinct image's thumbnail made once, the first MAX_THUMBNAILS of them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._made: dict[str, str | None] = {}

    def __call__(self, image: dict) -> tuple[str | None, str]:
        """(data URL or None, why it is not shown: "" when it is)."""
        key = str(image.get("sha256"))
        if key not in self._made:
            if len(self._made) >= MAX_THUMBNAILS:
                return None, f"not embedded: this page embeds the first {MAX_THUMBNAILS} images"
            self._made[key] = thumbnail(self.folder, image)
        if self._made[key] is None:
            return None, f"not shown: its copy in {FOLDER}/ is missing, changed, or not a PNG, JPEG, GIF or WebP image"
        return self._made[key], ""
