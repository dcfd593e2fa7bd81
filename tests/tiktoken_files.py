"""tiktoken's real BPE files for offline tests, taken from the litellm wheel (MIT) without installing it.

tiktoken downloads o200k_base and cl100k_base from OpenAI's blob store on first use, which CI cannot
reach. It reads TIKTOKEN_CACHE_DIR first, where a file is named by the sha1 of its URL and checked
against a sha256 pinned in tiktoken; the litellm wheel ships exactly these files under those names.
`pip download` fetches the wheel from PyPI once; the two files are kept in pytest's cache folder.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

LITELLM = "litellm==1.110.2"
IN_WHEEL = "litellm/litellm_core_utils/tokenizers/"
FILES = {
    "o200k_base": "fb374d419588a4632f3f557e76b4b70aebbca790",
    "cl100k_base": "9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
}


def fill(cache_dir: Path) -> str | None:
    """Put the encodings' files in cache_dir unless they are there; returns why it failed, or None."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    missing = [name for name in FILES.values() if not (cache_dir / name).is_file()]
    if not missing:
        return None
    with tempfile.TemporaryDirectory() as download:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--dest", download, LITELLM],
            capture_output=True, text=True, timeout=600)
        wheels = list(Path(download).glob("litellm-*.whl"))
        if proc.returncode or not wheels:
            return f"pip download {LITELLM} failed: {proc.stderr.strip()[-500:]}"
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in missing:
                data = wheel.read(IN_WHEEL + name)
                partial = cache_dir / f"{name}.{os.getpid()}.part"  # each process its own: the workers race
                partial.write_bytes(data)
                os.replace(partial, cache_dir / name)  # whole files only, the same bytes whoever is last
    return None
