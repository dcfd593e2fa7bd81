"""The images a task sends with its prompt (`task.images: [field, ...]`): each named field of an item holds a
local file's path (a relative path starts at the working directory) or an http(s) URL.

An image's type is sniffed from its bytes (Pillow), never taken from a file name or a Content-Type: PNG, JPEG,
GIF or WebP (runner.calls.IMAGE_TYPES), anything else refused by name (an SVG is text that can carry script).
A local file is checked before any call (it exists, is at most `task.max_image_bytes`, and starts as one of
those types: else exit 2); a URL is fetched under the same address rules as pages (runner.tasks.web: link-local
and metadata addresses and names refused at every redirect, loopback and private ones allowed), at most
`task.max_image_bytes`, and one that cannot be read makes its cell an error row saying why.

Every image is read once per run: the first job to need it keeps it at the run's (or sweep's) root, its bytes
as `images/<sha256>.<ext>` and where they came from as `images/<sha1 of the source>.json`; later jobs of the
sweep and a run resumed into the folder use that copy (checked against its hash, and a URL's against today's
address rules), so every model is sent the same bytes, and the report shows them. In the messages an image is
a part (runner.calls), in results.jsonl a reference to it: the bytes never go anywhere but to the provider and
that folder.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from runner.calls import IMAGE_TYPES
from runner.redact import redact, redact_value
from runner.tasks.addresses import AddressPolicy

# Anthropic refuses an image over 5 MB of base64 (3.75 MB of bytes); OpenAI's and Gemini's limits are higher
MAX_IMAGE_BYTES = 3_750_000
FOLDER = "images"
# Pillow's format names for the types the runner sends
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp"}
# the first bytes of each type: what the checks before any call read (the whole file is decoded when it is sent)
MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
         (b"GIF89a", "image/gif"))
ACCEPT = "image/png,image/jpeg,image/gif,image/webp;q=0.9,*/*;q=0.1"
# more pixels than any provider takes (Anthropic refuses images over 8,000 x 8,000): not decoded, refused
MAX_PIXELS = 64_000_000
# what else a file may be, for the line that refuses it
OTHER_KINDS = ((b"<svg", "an SVG drawing (text that can carry script)"), (b"<?xml", "XML text (an SVG drawing?)"),
               (b"<!doctype html", "an HTML page"), (b"<html", "an HTML page"), (b"%pdf", "a PDF document"),
               (b"bm", "a BMP image"), (b"ii*\x00", "a TIFF image"), (b"mm\x00*", "a TIFF image"))


class ImageError(Exception):
    """An image that cannot be sent: missing, too big, not a PNG/JPEG/GIF/WebP, refused or failed to fetch."""


@dataclass(frozen=True)
class Image:
    source: str  # the item's value: a file path or a URL
    media_type: str  # sniffed from the bytes
    data: str  # the bytes, in base64 (what every provider's wire format carries)
    sha256: str
    size: int  # bytes
    width: int
    height: int

    def part(self) -> dict:
        """The image as a message's content part (runner.calls)."""
        return {"type": "image", "media_type": self.media_type, "data": self.data, "source": self.source,
                "sha256": self.sha256, "size": self.size, "width": self.width, "height": self.height}


def is_url(value: str) -> bool:
    return value.strip().lower().startswith(("http://", "https://"))


def _other_kind(head: bytes) -> str:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start[:4] == b"riff" and start[8:12] != b"webp":
        return "a RIFF file that is not WebP"
    for magic, kind in OTHER_KINDS:
        if start.startswith(magic):
            return kind
    return "not an image the runner knows"


def head_type(head: bytes) -> str | None:
    """The image type the first bytes announce (PNG, JPEG, GIF, WebP), or None."""
    for magic, media_type in MAGIC:
        if head.startswith(magic):
            return media_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def sniff(data: bytes, where: str) -> tuple[str, int, int]:
    """(media type, width, height) of an image's bytes, or ImageError naming what they are instead. The
    whole image is decoded, so a file cut short or damaged is found here, not by the provider."""
    from PIL import Image as Pillow
    from PIL import UnidentifiedImageError

    if head_type(data[:16]) is None:
        raise ImageError(f"{where}: not a PNG, JPEG, GIF or WebP image ({_other_kind(data[:64])})")
    try:
        with Pillow.open(io.BytesIO(data), formats=list(FORMATS)) as picture:
            media_type, size = FORMATS[picture.format], picture.size
            if size[0] * size[1] > MAX_PIXELS:
                raise ImageError(f"{where}: {size[0]} x {size[1]} pixels is more than any provider takes")
            picture.verify()  # checksums and structure, without decoding every pixel
        with Pillow.open(io.BytesIO(data), formats=list(FORMATS)) as picture:
            picture.load()  # the pixels decode: a truncated file fails here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Pillow.DecompressionBombError) as exc:
        raise ImageError(f"{where}: the image cannot be read ({type(exc).__name__}: {exc})") from None
    return media_type, size[0], size[1]


def image_of(source: str, data: bytes) -> Image:
    media_type, width, height = sniff(data, source)
    if media_type not in IMAGE_TYPES:
        raise ImageError(f"{source}: {media_type} is not sent (only {', '.join(IMAGE_TYPES)})")
    return Image(source=source, media_type=media_type, data=base64.b64encode(data).decode("ascii"),
                 sha256=hashlib.sha256(data).hexdigest(), size=len(data), width=width, height=height)


def check_source(value, where: str, max_bytes: int) -> None:
    """Before any call: a URL that is an http(s) URL with a host; a file that exists, is at most `max_bytes`
    and starts as a PNG, JPEG, GIF or WebP image. Raises ImageError saying what is wrong with it."""
    if not isinstance(value, str) or not value.strip():
        raise ImageError(f"{where}={value!r} must be an image's file path or URL")
    value = value.strip()
    if is_url(value):
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as exc:
            raise ImageError(f"{where}: {value!r} is not a valid URL ({exc})") from None
        if not parts.hostname:
            raise ImageError(f"{where}: {value!r} is not a URL with a host")
        return
    path = Path(value).expanduser()
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ImageError(f"{where}: {value} is not a file")
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise ImageError(f"{where}: cannot read {value} ({exc.strerror or exc}; relative paths start at "
                         f"{Path.cwd()})") from None
    if size > max_bytes:
        raise ImageError(f"{where}: {value} is too big ({size} bytes, task.max_image_bytes is {max_bytes})")
    if head_type(head) is None:
        raise ImageError(f"{where}: {value} is not a PNG, JPEG, GIF or WebP image ({_other_kind(head)})")


def _name(source: str) -> str:
    return hashlib.sha1(source.encode("utf-8")).hexdigest() + ".json"


class ImageStore:
    """Images by source, for one job: from its memory, else the run's saved copy, else the file or the web."""

    def __init__(self, folder: Path | None, max_bytes: int = MAX_IMAGE_BYTES, policy: AddressPolicy = AddressPolicy(),
                 timeout_s: float = 20.0) -> None:
        self.folder = folder  # None: keep images in memory only (a dry run without a folder)
        self.max_bytes = max_bytes
        self.policy = policy
        self.timeout_s = timeout_s
        self._images: dict[str, Image | ImageError] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, source: str) -> Image:
        """The image, or ImageError (remembered: a job's repeats do not read it again)."""
        lock = self._locks.setdefault(source, asyncio.Lock())
        async with lock:  # cells of one job needing the same image wait for one read
            if source not in self._images:
                self._images[source] = await asyncio.to_thread(self._load, source)
        found = self._images[source]
        if isinstance(found, ImageError):
            raise found
        return found

    def _load(self, source: str) -> Image | ImageError:
        try:
            saved = self._saved(source)
            if saved is not None:
                return saved
            fetched = self._fetch(source) if is_url(source) else None
            data = fetched.body if fetched is not None else self._read(source)
            image = image_of(source, data)
        except ImageError as exc:
            return exc
        self._publish(image, data, fetched.final_url if fetched else None, fetched.redirects if fetched else ())
        return image

    def _read(self, source: str) -> bytes:
        path = Path(source).expanduser()
        try:
            with open(path, "rb") as handle:
                data = handle.read(self.max_bytes + 1)
        except OSError as exc:
            raise ImageError(f"{source}: cannot read it ({exc.strerror or exc})") from None
        if len(data) > self.max_bytes:
            raise ImageError(f"{source}: too big (more than {self.max_bytes} bytes, task.max_image_bytes)")
        return data

    def _fetch(self, url: str):
        from runner.tasks.web import PageError, download  # requests and BeautifulSoup: only when a URL is read

        try:
            return download(url, self.timeout_s, self.max_bytes, self.policy, accept=ACCEPT)
        except PageError as exc:
            raise ImageError(str(exc)) from None

    # --- the run's copies --------------------------------------------------------------------------------

    def _saved(self, source: str) -> Image | None:
        """The run's copy of this source's image as it may be used today; ImageError when today's address
        rules refuse the URL it came from; None when there is no usable copy (then it is read again)."""
        if self.folder is None:
            return None
        index = self.folder / _name(source)
        try:
            meta = json.loads(index.read_text(encoding="utf-8"))
            sha256, media_type = str(meta["sha256"]), str(meta["media_type"])
            if meta.get("source") not in (source, redact(source)):
                return None  # another source's (a hash collision, or a file written by hand)
            data = (self.folder / (sha256 + EXTENSIONS[media_type])).read_bytes()
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if hashlib.sha256(data).hexdigest() != sha256:
            return None  # changed since it was saved: read the source again
        if is_url(source):
            from runner.tasks.web import PageError, check_hop

            try:  # the URL and every URL it was redirected to, by today's rules, as a live fetch would be
                for number, hop in enumerate([source, *(meta.get("redirects") or [])]):
                    check_hop(source, str(hop), self.policy, redirected=number > 0)
            except PageError as exc:
                raise ImageError(f"{exc} (its saved copy {FOLDER}/{index.name})") from None
        return image_of(source, data)

    def _publish(self, image: Image, data: bytes, final_url: str | None, redirects: tuple[str, ...]) -> None:
        """Keep the bytes and where they came from at the run's root (both written whole, or not at all)."""
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_once(self.folder / (image.sha256 + EXTENSIONS[image.media_type]), data)
        meta = {key: value for key, value in asdict(image).items() if key != "data"}
        meta.update(final_url=final_url, redirects=list(redirects))
        # a key in a URL is redacted, as in every file the runner writes
        _write_once(self.folder / _name(image.source), json.dumps(redact_value(meta), indent=1).encode("utf-8"))


def _write_once(path: Path, data: bytes) -> None:
    """Publish `data` at `path` atomically; a file already there (another job's, the same bytes) stays."""
    if path.exists():
        return
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
