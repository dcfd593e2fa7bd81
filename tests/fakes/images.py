"""What the provider fakes do with images: decode them as each API does, see what they are, and count them.

Independent of the runner's own code (it reads the bytes here with struct, not with Pillow): a fake that used
the runner's sniffing would agree with it whatever it did. Each fake refuses, with its API's 400, an image part
in the wrong shape, base64 that does not decode, or bytes that are not an image of a type its API takes.

What a fake model "sees" in an image is `seen(data)`: its type, its size in pixels and the first 12 hex digits
of its sha256, e.g. "[image/png 16x16 5f1a2b3c4d5e]". A fake puts that into its answer, so a test can tell
that the very bytes of each image reached each provider.

Image tokens in usage follow each API's published rule for the image's size (deterministic, so a test can
compute them): OpenAI's tiles (85 + 170 per 512-pixel tile after fitting 2,048 and 768), Anthropic's
width x height / 750 (at least 1), Gemini's 258 per image up to 384 pixels a side (else per 768-pixel tile),
and a fixed 576 for Ollama (a LLaVA-style projector's count).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import struct

SUPPORTED = {"image/png", "image/jpeg", "image/gif", "image/webp"}  # OpenAI's and Anthropic's
OLLAMA_IMAGE_TOKENS = 576


def decode(text, urlsafe_too: bool = False) -> bytes | None:
    """The bytes of a base64 string, or None when it is not valid base64 (proto3 JSON, Gemini's, takes the
    URL-safe alphabet and missing padding too)."""
    if not isinstance(text, str):
        return None
    try:
        if urlsafe_too and re.search(r"[-_]", text):
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return base64.b64decode(text + ("=" * (-len(text) % 4) if urlsafe_too else ""), validate=True)
    except (binascii.Error, ValueError):
        return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        length = struct.unpack(">H", data[at + 2:at + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        at += 2 + length
    return None


def sniff(data: bytes) -> tuple[str, int, int] | None:
    """(media type, width, height) of a PNG, JPEG, GIF or WebP image's bytes; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return "image/png", width, height
    if data[:6] in (b"GIF87a", b"GIF89a"):
        width, height = struct.unpack("<HH", data[6:10])
        return "image/gif", width, height
    if data.startswith(b"\xff\xd8\xff"):
        size = _jpeg_size(data)
        return ("image/jpeg", *size) if size else None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        chunk = data[12:16]
        if chunk == b"VP8X":
            return "image/webp", 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return "image/webp", 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return "image/webp", width & 0x3FFF, height & 0x3FFF
    return None


def seen(data: bytes) -> str:
    """What a fake model says it sees in an image."""
    found = sniff(data)
    kind = f"{found[0]} {found[1]}x{found[2]}" if found else "unreadable"
    return f"[{kind} {hashlib.sha256(data).hexdigest()[:12]}]"


def openai_tokens(width: int, height: int) -> int:
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    return 85 + 170 * math.ceil(width * scale / 512) * math.ceil(height * scale / 512)


def anthropic_tokens(width: int, height: int) -> int:
    return max(1, math.ceil(width * height / 750))


def gemini_tokens(width: int, height: int) -> int:
    if width <= 384 and height <= 384:
        return 258
    return 258 * math.ceil(width / 768) * math.ceil(height / 768)
