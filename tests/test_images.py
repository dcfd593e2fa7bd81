"""Images in the prompt (`task.images`, `task=describe`): each provider is sent its own image part through its
own SDK to its strict fake, a model that takes no images is skipped before any call, an image's bytes stay out
of results.jsonl and the cache key, a URL's image is fetched under the pages' address rules, and bad images
are bad input."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil

import pytest

from tests import forked
from tests.conftest import REPO
from tests.fakes import images as fake_images
from tests.fakes.anthropic_server import anthropic_server
from tests.fakes.gemini_server import gemini_server
from tests.fakes.ollama_server import ollama_server
from tests.fakes.openai_server import openai_server
from tests.fakes.site import DOT, site
from tests.no_metadata import GUARD_PATH

PICTURES = REPO / "tests" / "data" / "images"
DESCRIBE = {"red-square": "red-square.png", "blue-stripes": "blue-stripes.png", "green-circle": "green-circle.jpg"}
GUARDED = {"PYTHONPATH": f"{GUARD_PATH}{os.pathsep}{REPO}"}


def picture(name: str) -> bytes:
    return (PICTURES / name).read_bytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def here(tmp_path):
    """The run's working folder with the repository's test pictures where conf/task/describe.yaml names them
    (a user runs it from the repository's root)."""
    shutil.copytree(PICTURES, tmp_path / "tests" / "data" / "images")
    return tmp_path


def cloud_env(gpt, claude, gemini) -> dict:
    return {"OPENAI_BASE_URL": gpt.url + "/v1", "OPENAI_API_KEY": "test-key",
            "ANTHROPIC_BASE_URL": claude.url, "ANTHROPIC_API_KEY": "test-key",
            "GOOGLE_GEMINI_BASE_URL": gemini.url, "GEMINI_API_KEY": "test-key"}


def jsonl(root) -> list[dict]:
    return [json.loads(line) for path in sorted(root.rglob("results.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines()]


def sent_images(model: str, body: dict) -> list[tuple[str, bytes]]:
    """(media type, bytes) of every image a request carried, read from the provider's own wire format."""
    if model == "gpt":
        urls = [part["image_url"]["url"] for m in body["messages"] if isinstance(m["content"], list)
                for part in m["content"] if part["type"] == "image_url"]
        return [(url.split(";", 1)[0].removeprefix("data:"), base64.b64decode(url.split(",", 1)[1])) for url in urls]
    if model == "claude":
        return [(block["source"]["media_type"], base64.b64decode(block["source"]["data"])) for m in body["messages"]
                if isinstance(m["content"], list) for block in m["content"] if block["type"] == "image"]
    blobs = [part.get("inlineData") or part.get("inline_data") for c in body["contents"] for part in c["parts"]
             if "inlineData" in part or "inline_data" in part]
    return [(blob.get("mimeType") or blob.get("mime_type"), fake_images.decode(blob["data"], urlsafe_too=True))
            for blob in blobs]


def reported_input(model: str, fake, body: dict) -> int:
    """The input tokens a fake reports for this request (its images counted by its API's rule)."""
    if model == "gpt":
        return fake.usage(body["messages"], "")["prompt_tokens"]
    if model == "claude":
        return fake.usage(body, "")["input_tokens"]
    return fake.usage(body, "")["promptTokenCount"]


def text_only(model: str, body: dict) -> dict:
    """The request without its images."""
    if model == "gemini":
        return {**body, "contents": [{**c, "parts": [p for p in c["parts"] if "text" in p]} for c in body["contents"]]}
    kind = "image_url" if model == "gpt" else "image"
    return {**body, "messages": [{**m, "content": [p for p in m["content"] if p["type"] != kind]}
                                 if isinstance(m["content"], list) else m for m in body["messages"]]}


def test_describe_sends_each_cloud_its_image_part_and_skips_the_embedded_model_before_any_call(runner, here):
    with openai_server() as gpt, anthropic_server() as claude, gemini_server() as gemini:
        run = runner("-m", "model=gpt,claude,gemini,local", "task=describe", "cache=false",
                     env=cloud_env(gpt, claude, gemini))
    assert run.code == 1, run.stderr[-3000:]  # the embedded model's cells are skipped
    servers = {"gpt": gpt, "claude": claude, "gemini": gemini}
    for model, server in servers.items():
        received = [r.json for r in server.received]
        assert len(received) == 3
        by_bytes = {data: media for body in received for media, data in sent_images(model, body)}
        assert by_bytes == {picture(name): "image/jpeg" if name.endswith(".jpg") else "image/png"
                            for name in DESCRIBE.values()}, model
    rows = {(r["model"], r["item"]): r for r in run.rows()}
    assert len(rows) == 12
    for (model, item), row in rows.items():
        if model == "local":
            assert row["status"] == "skipped" and row["latency_s"] == "" and row["input_tokens"] == ""
            assert row["error"].startswith("model local (local/SmolLM2-135M-Instruct) takes no images")
            continue
        assert row["status"] == "ok", row
        # the fake saw these very bytes, and counted them in the usage the row reports
        assert row["response"].endswith(fake_images.seen(picture(DESCRIBE[item])))
        assert row["tokens_source"] == "provider"
    for model, server in servers.items():  # input tokens as the provider reported them, its images' included
        for request in server.received:
            body = request.json
            item = next(i for i, name in DESCRIBE.items() if sent_images(model, body)[0][1] == picture(name))
            assert int(rows[(model, item)]["input_tokens"]) == reported_input(model, server.fake, body)
            assert reported_input(model, server.fake, body) > reported_input(model, server.fake, text_only(model, body))
    # said once before any call, and the embedded model was never loaded
    assert "model local (local/SmolLM2-135M-Instruct) takes no images" in run.stderr
    assert "its cells of task describe will be skipped" in run.stderr
    assert "embedded model loaded" not in run.stderr
    # results.jsonl keeps a reference to each image, never its bytes; the run keeps the bytes in images/
    records = jsonl(run.root())
    written = "".join(path.read_text(encoding="utf-8") for path in run.root().rglob("results.*"))
    for name in DESCRIBE.values():
        assert b64(picture(name)) not in written
    for record in records:
        parts = [part for m in record["messages"] if isinstance(m["content"], list) for part in m["content"]]
        image = next(part for part in parts if part["type"] == "image")
        assert "data" not in image
        data = picture(DESCRIBE[record["item"]])
        assert image["sha256"] == hashlib.sha256(data).hexdigest() and image["size"] == len(data)
        assert image["source"] == f"tests/data/images/{DESCRIBE[record['item']]}"
        extension = ".jpg" if image["media_type"] == "image/jpeg" else ".png"
        assert (run.root() / "images" / (image["sha256"] + extension)).read_bytes() == data


SERVERS = {"gpt": openai_server, "claude": anthropic_server, "gemini": gemini_server, "llava": ollama_server}
PROVIDER_OVERRIDES = {  # model config and endpoint per case; Ollama's llava is told it takes images
    "gpt": lambda url: ["model=gpt", f"model.base_url={url}/v1"],
    "claude": lambda url: ["model=claude", f"model.base_url={url}"],
    "gemini": lambda url: ["model=gemini", f"model.base_url={url}"],
    "generativeai": lambda url: ["model=gemini", "model.sdk=generativeai", f"model.base_url={url}"],
    "llava": lambda url: ["model=llama", "model.id=llava", "model.input_modalities=[text,image]",
                          f"model.base_url={url}"],
}


def wire_images(case: str, body: dict) -> list[tuple[str, bytes]]:
    if case == "llava":
        return [(fake_images.sniff(data)[0], data) for m in body["messages"]
                for data in map(base64.b64decode, m.get("images") or [])]
    return sent_images({"generativeai": "gemini"}.get(case, case), body)


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("case", list(PROVIDER_OVERRIDES))
def test_each_provider_gets_the_image_in_its_own_part_streamed_or_not(case, stream, run_settings, run_here,
                                                                      monkeypatch):
    monkeypatch.chdir(REPO)  # describe's pictures are named from the repository's root
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(name, "test-key")
    server_for = SERVERS.get(case, gemini_server)
    options = {"models": ("llava",)} if case == "llava" else {}
    with server_for(**options) as server:
        records, tally = run_here(run_settings(*PROVIDER_OVERRIDES[case](server.url), "task=describe",
                                               f"model.stream={'true' if stream else 'false'}", "cache=false"))
    assert tally.ok == 3, [r["error"] for r in records]
    assert sorted(data for r in server.received for _, data in wire_images(case, r.json)) == \
        sorted(picture(name) for name in DESCRIBE.values())
    for record in records:
        assert record["response"].endswith(fake_images.seen(picture(DESCRIBE[record["item"]])))
        assert (record["ttft_s"] is not None) == stream
    if case == "gemini":  # google-genai sends inlineData with the URL-safe alphabet; google-generativeai the standard
        assert all("inlineData" in p for r in server.received for c in r.json["contents"] for p in c["parts"]
                   if "text" not in p)


# a GIF of one white pixel: Gemini takes no GIF
GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00"
       b"\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


def items_file(folder, items: list[dict]) -> str:
    path = folder / "items.yaml"
    path.write_text(json.dumps(items), encoding="utf-8")
    return f"task.inputs={path}"


@pytest.mark.parametrize("case", ["llama", "gemini-gif"])
def test_a_model_that_takes_no_images_or_not_this_type_is_skipped_and_sent_nothing(case, run_settings, run_here,
                                                                                   monkeypatch, tmp_path):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    (tmp_path / "dot.gif").write_bytes(GIF)
    items = items_file(tmp_path, [{"id": "dot", "image": str(tmp_path / "dot.gif")}])
    server_for, model = (ollama_server, "model=llama") if case == "llama" else (gemini_server, "model=gemini")
    with server_for() as server:
        records, tally = run_here(run_settings(model, f"model.base_url={server.url}", "task=describe", items))
    assert server.received == []
    assert tally.skipped == 1 and records[0]["status"] == "skipped"
    expected = ("model llama (ollama/llama3.2) takes no images (as far as is known; set "
                "model.input_modalities=[text,image] if it does), and this call sends 1 (task.images)"
                if case == "llama" else
                f"model gemini (gemini/gemini-2.5-flash-lite) takes no image/gif images ({tmp_path / 'dot.gif'}); it "
                f"takes image/png, image/jpeg, image/webp")
    assert records[0]["error"] == expected


LINK_LOCAL = "a link-local address, where cloud metadata services answer (refused)"


def test_images_at_urls_are_fetched_under_the_pages_rules_and_the_refused_never_reach_the_model(runner, tmp_path):
    metadata = "http://169.254.169.254/latest/meta-data/picture.png"
    with site() as web, openai_server() as gpt:
        urls = {"dot": f"{web.url}/pictures/dot.png", "metadata": metadata,
                "redirected": f"{web.url}/redirect?to={metadata}",
                "named": "http://metadata.google.internal/computeMetadata/v1/picture.png",
                "drawing": f"{web.url}/pictures/drawing.svg", "huge": f"{web.url}/pictures/huge.png",
                "gone": f"{web.url}/gone"}
        inputs = items_file(tmp_path, [{"id": name, "image": url} for name, url in urls.items()])
        run = runner("model=gpt", "task=describe", inputs, env={"OPENAI_API_KEY": "test-key",
                                                                 "OPENAI_BASE_URL": gpt.url + "/v1", **GUARDED})
    assert run.code == 1, run.stderr[-2000:]
    assert "test guard" not in run.stderr  # nothing tried to connect to a metadata address
    rows = {r["item"]: r for r in run.rows()}
    assert rows["dot"]["status"] == "ok" and rows["dot"]["response"].endswith(fake_images.seen(DOT))
    errors = {item: row["error"] for item, row in rows.items() if item != "dot"}
    assert errors == {
        "metadata": f"{metadata}: 169.254.169.254 is {LINK_LOCAL}",
        "redirected": f"{urls['redirected']}: redirected to {metadata}: 169.254.169.254 is {LINK_LOCAL}",
        "named": f"{urls['named']}: metadata.google.internal is the name of Google Cloud's metadata server (refused)",
        "drawing": f"{urls['drawing']}: not a PNG, JPEG, GIF or WebP image (XML text (an SVG drawing?))",
        "huge": f"{urls['huge']}: too big (more than 3750000 bytes)",
        "gone": f"{urls['gone']}: HTTP 404 Not Found",
    }
    assert len(gpt.received) == 1  # only the picture that could be read was sent
    assert "SECRET_SVG_SCRIPT" not in json.dumps([r.json for r in gpt.received])
    # the fetched picture is kept at the run's root as sent, the served Content-Type ignored (the bytes say PNG)
    assert (run.root() / "images" / (hashlib.sha256(DOT).hexdigest() + ".png")).read_bytes() == DOT


@pytest.mark.parametrize("override, problem", [
    ("task.images=[picture]", "task describe: task.images names 'picture', which task.inputs[0] does not have "
                              "(its fields: id, image, colour)"),
    ("task.max_image_bytes=50", "task.inputs[0].image: tests/data/images/red-square.png is too big (83 bytes, "
                                "task.max_image_bytes is 50)"),
    ("task.inputs=[{image: tests/data/images/nothing.png}]",
     "task.inputs[0].image: cannot read tests/data/images/nothing.png (No such file or directory"),
    ("task.inputs=[{image: drawing.svg}]", "task.inputs[0].image: drawing.svg is not a PNG, JPEG, GIF or WebP image "
                                           "(XML text (an SVG drawing?))"),
    ("task.inputs=[{image: 7}]", "task.inputs[0].image=7 must be an image's file path or URL"),
    ("task.images=3", "task.images=3 must be a list of item field names, e.g. task.images=[image]"),
    ("task.max_image_bytes=big", "task.max_image_bytes='big' must be a whole number >= 1"),
])
def test_an_image_that_cannot_be_sent_is_bad_input_before_any_call(runner, here, override, problem):
    (here / "drawing.svg").write_bytes(b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>')
    with openai_server() as gpt:
        run = runner("model=gpt", "task=describe", override,
                     env={"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": gpt.url + "/v1"})
    assert run.code == 2, run.stderr[-2000:]
    assert gpt.received == []
    lines = [line for line in run.stderr.splitlines() if line.startswith("runner: config error")]
    assert len(lines) == 1 and problem in lines[0], run.stderr[-2000:]


def test_a_task_kind_that_sends_no_images_refuses_task_images(runner):
    run = runner("model=gpt", "task=summarize", "+task.images=[url]", "task.inputs=[http://127.0.0.1:9/]",
                 env={"OPENAI_API_KEY": "test-key"})
    assert run.code == 2
    assert "task.images=['url']: task kind summarize sends no images (the single-call kind, kind: single, does)" \
        in run.stderr


def test_the_dry_run_estimates_image_tokens_and_says_which_model_would_be_skipped(runner, here):
    run = runner("-m", "model=gpt,local", "task=describe", "dry_run=true", env={"OPENAI_API_KEY": "test-key"})
    assert run.code == 0, run.stderr[-2000:]
    rows = {(r["model"], r["item"]): r for r in run.rows("estimate.csv")}
    local = rows[("local", "red-square")]
    assert local["note"].startswith("a real run would skip this call: model local (local/SmolLM2-135M-Instruct) "
                                    "takes no images")
    width, height = fake_images.sniff(picture("red-square.png"))[1:]
    from runner.providers.openai import OpenAIProvider

    image_tokens = OpenAIProvider.image_tokens(width, height)
    assert image_tokens == fake_images.openai_tokens(width, height) == 255  # one 512-pixel tile, and the base 85
    gpt = rows[("gpt", "red-square")]
    assert f"input tokens include {image_tokens} for images, estimated from their sizes" in gpt["note"]
    assert "skip" not in gpt["note"]
    assert "a real run would skip this call: model local" in run.stdout  # the dry run's own lines say so too


def test_an_image_is_cached_by_its_bytes_never_its_path_and_the_cache_holds_no_bytes(run_settings, run_here,
                                                                                    monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    for name in ("a.png", "b.png"):  # the same picture under two names
        (tmp_path / name).write_bytes(picture("red-square.png"))
    (tmp_path / "c.png").write_bytes(picture("blue-stripes.png"))
    with openai_server() as gpt:
        def run(image: str):
            settings = run_settings("model=gpt", f"model.base_url={gpt.url}/v1", "task=describe",
                                    items_file(tmp_path, [{"id": "x", "image": str(tmp_path / image)}]),
                                    f"cache_dir={tmp_path / 'cache'}")
            return run_here(settings, tmp_path / f"run-{image}")[0][0]

        first, same, other = run("a.png"), run("b.png"), run("c.png")
    assert (first["cache_hit"], same["cache_hit"], other["cache_hit"]) == (False, True, False)
    assert len(gpt.received) == 2
    cache = b"".join(path.read_bytes() for path in (tmp_path / "cache").iterdir())
    assert b64(picture("red-square.png")).encode() not in cache


def test_the_budget_counts_an_images_tokens_in_a_calls_worst_case(run_settings):
    from runner.calling.budget import worst_case_cost
    from runner.calls import Request, chat, text_part
    from runner.tasks.images import image_of

    settings = run_settings("model=gpt")
    image = image_of("red.png", picture("red-square.png"))
    text = worst_case_cost(settings.model, Request(chat("be brief", "Describe it."), 0.0, 100))
    with_image = worst_case_cost(settings.model, Request(chat("be brief", [image.part(), text_part("Describe it.")]),
                                                         0.0, 100))
    price = 0.4 / 1e6  # gpt-4.1-mini's input, per token
    assert with_image - text == pytest.approx(255 * price, rel=0.01)


# ---- batches, saved copies, and the fakes' own strictness ----------------------------------------------------

@pytest.mark.parametrize("model", ["gpt", "claude", "gemini"])
def test_a_batch_run_carries_each_image_in_the_providers_own_shape(model, run_settings, run_here, monkeypatch):
    from tests.fakes.anthropic_batches import anthropic_batch_server
    from tests.fakes.gemini_batches import gemini_batch_server
    from tests.fakes.openai_batches import openai_batch_server

    monkeypatch.chdir(REPO)
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(name, "test-key")
    server_for = {"gpt": openai_batch_server, "claude": anthropic_batch_server, "gemini": gemini_batch_server}[model]
    with server_for() as server:
        url = server.url + "/v1" if model == "gpt" else server.url
        records, tally = run_here(run_settings(f"model={model}", f"model.base_url={url}", "model.batch=true",
                                               "batch.poll_s=0.02", "task=describe", "cache=false"))
    assert tally.ok == 3, [r["error"] for r in records]
    for record in records:
        assert record["response"].endswith(fake_images.seen(picture(DESCRIBE[record["item"]])))
        assert "batch" in record["note"]


def test_a_saved_copy_of_a_url_image_is_judged_by_todays_address_rules(runner, tmp_path):
    """A run folder whose images/ holds a copy for a metadata URL (written by hand, or before the rules changed):
    the copy is not sent, and the row says why and which file it is."""
    from runner.tasks.images import _name

    metadata = "http://169.254.169.254/latest/meta-data/picture.png"
    folder = tmp_path / "resumed"
    (folder / "images").mkdir(parents=True)
    sha = hashlib.sha256(DOT).hexdigest()
    (folder / "images" / f"{sha}.png").write_bytes(DOT)
    (folder / "images" / _name(metadata)).write_text(json.dumps(
        {"source": metadata, "sha256": sha, "media_type": "image/png", "size": len(DOT), "width": 16, "height": 16,
         "final_url": metadata, "redirects": []}), encoding="utf-8")
    with openai_server() as gpt:
        run = runner("model=gpt", "task=describe", items_file(tmp_path, [{"id": "saved", "image": metadata}]),
                     f"hydra.run.dir={folder}", env={"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": gpt.url + "/v1",
                                                     **GUARDED})
    assert run.code == 1, run.stderr[-2000:]
    assert gpt.received == [] and "test guard" not in run.stderr
    [row] = [r for r in csv_rows(folder)]
    assert row["error"] == (f"{metadata}: 169.254.169.254 is {LINK_LOCAL} (its saved copy images/{_name(metadata)})")


def csv_rows(folder) -> list[dict]:
    import csv

    with open(folder / "results.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def post(url: str, body: dict, headers: dict) -> tuple[int, dict]:
    """A raw request to a fake, as a client that sent the wrong shape would send it."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


PNG = b64(picture("red-square.png"))
JPEG = b64(picture("green-circle.jpg"))
SVG = b64(b'<svg xmlns="http://www.w3.org/2000/svg"/>')


def openai_user(*parts) -> dict:
    content = [*parts, {"type": "text", "text": "hi"}]
    return {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": content}]}


def claude_user(*blocks, role="user") -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 16,
            "messages": [{"role": role, "content": [*blocks, {"type": "text", "text": "hi"}]}]}


def gemini_user(*parts) -> dict:
    return {"contents": [{"role": "user", "parts": [*parts, {"text": "hi"}]}]}


def data_part(media: str, data: str) -> dict:
    return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}


def claude_image(media: str, data: str) -> dict:
    return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}


FAKE_CASES = {  # (fake, request body, the 400's message, or None where the API takes it)
    "openai takes a data URL": ("openai", openai_user(data_part("image/png", PNG)), None),
    "openai: an https URL the fake cannot fetch": (
        "openai", openai_user({"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}),
        "this fake takes data URLs only"),
    "openai: bad base64": ("openai", openai_user(data_part("image/png", "%%%")), "Invalid base64 image_url."),
    "openai: an SVG": ("openai", openai_user(data_part("image/png", SVG)), "You uploaded an unsupported image."),
    "openai: Anthropic's block": ("openai", openai_user(claude_image("image/png", PNG)), "Invalid value: 'image'."),
    "openai: a text-only model": ("openai", {**openai_user(data_part("image/png", PNG)), "model": "gpt-3.5-turbo"},
                                  "image_url is only supported by certain models"),
    "openai: an image in a system message": (
        "openai", {"model": "gpt-4.1-mini", "messages": [
            {"role": "system", "content": [data_part("image/png", PNG)]}, {"role": "user", "content": "hi"}]},
        "Image URLs are only allowed for messages with role 'user'"),
    "anthropic takes a base64 block": ("anthropic", claude_user(claude_image("image/png", PNG)), None),
    "anthropic: another media type": ("anthropic", claude_user(claude_image("image/svg+xml", SVG)),
                                      "media_type: Input should be 'image/jpeg', 'image/png'"),
    "anthropic: the type is not what the bytes are": (
        "anthropic", claude_user(claude_image("image/png", JPEG)),
        "The image was specified using the image/png media type, but the image appears to be a image/jpeg image"),
    "anthropic: OpenAI's part": ("anthropic", claude_user(data_part("image/png", PNG)),
                                 "Input tag 'image_url' found using 'type' does not match"),
    "anthropic: a URL source, which this fake cannot fetch": ("anthropic", claude_user(
        {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}}), "image.source"),
    "anthropic: an image in an assistant turn": (
        "anthropic", {**claude_user(claude_image("image/png", PNG), role="assistant"),
                      "messages": [{"role": "user", "content": "hi"},
                                   {"role": "assistant", "content": [claude_image("image/png", PNG)]},
                                   {"role": "user", "content": "and?"}]}, "an image may only be in a user message"),
    "gemini takes inlineData": ("gemini", gemini_user({"inlineData": {"mimeType": "image/png", "data": PNG}}), None),
    "gemini takes inline_data, mime_type and URL-safe base64": (
        "gemini", gemini_user({"inline_data": {"mime_type": "image/jpeg", "data": JPEG.replace("+", "-")
                                               .replace("/", "_").rstrip("=")}}), None),
    "gemini: a GIF": ("gemini", gemini_user({"inlineData": {"mimeType": "image/gif", "data": b64(GIF)}}),
                      "Unsupported MIME type: image/gif"),
    "gemini: bad base64": ("gemini", gemini_user({"inlineData": {"mimeType": "image/png", "data": "%%%"}}),
                           "Base64 decoding failed"),
    "gemini: an SVG": ("gemini", gemini_user({"inlineData": {"mimeType": "image/png", "data": SVG}}),
                       "Unable to process input image"),
    "gemini: OpenAI's part": ("gemini", gemini_user(data_part("image/png", PNG)), "Unknown name in part"),
    "ollama takes base64 images on a vision model": (
        "ollama", {"model": "llava", "messages": [{"role": "user", "content": "hi", "images": [PNG]}]}, None),
    "ollama: a data URL": ("ollama", {"model": "llava", "messages": [
        {"role": "user", "content": "hi", "images": [f"data:image/png;base64,{PNG}"]}]},
        "illegal base64 data at input byte 4"),
    "ollama: a text model": ("ollama", {"model": "llama3.2", "messages": [
        {"role": "user", "content": "hi", "images": [PNG]}]}, "does not support images"),
    "ollama: not an image": ("ollama", {"model": "llava", "messages": [
        {"role": "user", "content": "hi", "images": [SVG]}]}, "image: unknown format"),
}


@pytest.mark.parametrize("case", list(FAKE_CASES))
def test_the_fakes_refuse_an_image_part_in_the_wrong_shape_as_their_apis_do(case):
    fake, body, problem = FAKE_CASES[case]
    server_for = {"openai": openai_server, "anthropic": anthropic_server, "gemini": gemini_server,
                  "ollama": lambda: ollama_server(models=("llama3.2", "llava"))}[fake]
    with server_for() as server:
        path, headers = {
            "openai": ("/v1/chat/completions", {"Authorization": "Bearer test-key"}),
            "anthropic": ("/v1/messages", {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}),
            "gemini": ("/v1beta/models/gemini-2.5-flash-lite:generateContent", {"x-goog-api-key": "test-key"}),
            "ollama": ("/api/chat", {}),
        }[fake]
        status, answer = post(server.url + path, {**body, "stream": False} if fake == "ollama" else body, headers)
    if problem is None:
        assert status == 200, answer
        return
    assert status == 400 and problem in json.dumps(answer).replace('\\"', '"'), answer


# ---- the reports ---------------------------------------------------------------------------------------------
# Last in the module: its Chromium, once started, keeps Playwright's event loop in this thread, where an
# in-process run's asyncio.run (the batch tests above) cannot start another.

from tests.browser import chromium, watched_page  # noqa: E402,F401 - fixtures browser and page
from tests.html_checks import Shown, active_content, markdown_renderings  # noqa: E402


@pytest.fixture(scope="module")
def described(tmp_path_factory):
    """A run of task=describe on gpt with the repository's pictures and one from a site, its reports built."""
    import sys

    from tests.conftest import clean_env

    folder = tmp_path_factory.mktemp("described")
    shutil.copytree(PICTURES, folder / "tests" / "data" / "images")
    with site() as web, openai_server() as gpt:
        items = [{"id": item, "image": f"tests/data/images/{name}"} for item, name in DESCRIBE.items()]
        items.append({"id": "from-a-site", "image": f"{web.url}/pictures/dot.png?size=small"})
        (folder / "items.yaml").write_text(json.dumps(items), encoding="utf-8")
        env = clean_env(OPENAI_API_KEY="test-key", OPENAI_BASE_URL=gpt.url + "/v1",
                        RUNNER_CACHE_DIR=str(folder / "cache"))
        done = forked.run([sys.executable, "-m", "runner", "model=gpt", "task=describe",
                           f"task.inputs={folder / 'items.yaml'}"], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return next((folder / "outputs" / "runs").iterdir()), web.url


def test_report_md_links_each_image_to_the_runs_copy_and_shows_a_url_as_text(described):
    root, site_url = described
    report = (root / "report.md").read_text(encoding="utf-8")
    copies = {item: f"images/{hashlib.sha256(picture(name)).hexdigest()}{os.path.splitext(name)[1]}"
              for item, name in DESCRIBE.items()}
    copies["from-a-site"] = f"images/{hashlib.sha256(DOT).hexdigest()}.png"
    for link in copies.values():
        assert (root / link).is_file()
    for renderer, html in markdown_renderings(report).items():
        assert active_content(html) == [], renderer
        links = [attrs.get("href") for tag, attrs in Shown(html).tags if tag == "a"]
        assert sorted(links) == sorted(copies.values()), renderer  # the copies, by relative path; never the URL
    assert f"Image: [red-square\\.png]({copies['red-square']}) (tests/data/images/red-square\\.png)" in report
    # the URL it came from as text that no viewer links: its // broken up
    assert f"Image: [dot\\.png]({copies['from-a-site']}) (http:/\\/{site_url.split('//')[1]}/pictures/" in report


def open_report(page, path):
    page.page.goto(path.as_uri())
    page.page.wait_for_selector("body[data-ready=true]")
    return page.page


def pictures_on(page) -> list[dict]:
    return page.eval_on_selector_all("article.item", """items => items.map(item => ({
        title: item.querySelector("h3").textContent,
        images: [...item.querySelectorAll(".pictures img")].map(img => ({src: img.src, width: img.naturalWidth})),
        notes: [...item.querySelectorAll(".pictures .note")].map(note => note.textContent)}))""")


def test_report_html_shows_each_image_beside_its_answers_as_an_embedded_thumbnail(described, page):
    root, _ = described
    shown = {p["title"]: p for p in pictures_on(open_report(page, root / "report.html"))}
    assert set(shown) == {f"describe: {item}" for item in [*DESCRIBE, "from-a-site"]}
    for item in shown.values():
        assert len(item["images"]) == 1 and item["notes"] == []
        assert item["images"][0]["src"].startswith("data:image/png;base64,") and item["images"][0]["width"] > 0
    assert page.problems == []  # nothing fetched, nothing refused by the page's policy


def test_a_forged_image_in_a_run_folder_is_named_not_shown(described, page, tmp_path):
    """A results.jsonl edited to point an item at an SVG that runs a script, kept in images/ under the sha256 it
    hashes to; another pointing at an image/svg+xml reference: report.html shows neither as an image, runs nothing."""
    import sys

    from tests.conftest import clean_env

    root = tmp_path / "forged"
    shutil.copytree(described[0], root)
    svg = (b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8" onload="alert(1)">'
           b'<script>alert(2)</script></svg>')
    sha = hashlib.sha256(svg).hexdigest()
    (root / "images" / f"{sha}.png").write_bytes(svg)
    (root / "images" / f"{sha}.svg").write_bytes(svg)
    results = root / "results.jsonl"
    records = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    for record in records:
        for message in record["messages"]:
            for part in message["content"] if isinstance(message["content"], list) else []:
                if part["type"] == "image" and record["item"] == "red-square":
                    part.update(sha256=sha, media_type="image/png")
                elif part["type"] == "image" and record["item"] == "blue-stripes":
                    part.update(sha256=sha, media_type="image/svg+xml")
    results.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    done = forked.run([sys.executable, "-m", "runner.comparison", str(root)], env=clean_env(),
                      capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    shown = {p["title"]: p for p in pictures_on(open_report(page, root / "report.html"))}
    for item in ("describe: red-square", "describe: blue-stripes"):
        assert shown[item]["images"] == [] and "not shown" in shown[item]["notes"][0]
    assert len(shown["describe: green-circle"]["images"]) == 1
    assert page.problems == []  # no alert ran, nothing was fetched
    assert "Image: tests/data/images/red-square\\.png (no copy in images/)" in (root / "report.md").read_text()


def test_the_page_shows_no_picture_but_a_png_jpeg_gif_or_webp_data_url(described, page, tmp_path):
    """The page's own guard, whatever the data says: an SVG data URL, a data URL of HTML, a URL to fetch and a
    javascript: URL are named, not shown."""
    import re

    from runner.analysis import report_html

    html = (described[0] / "report.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))
    svg = b64(b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>')
    hostile = [f"data:image/svg+xml;base64,{svg}", f"data:text/html;base64,{svg}", "http://127.0.0.1:9/x.png",
               "javascript:alert(3)", "data:image/png;base64,AAAA\"onerror=\"alert(4)"]
    for item, src in zip(data["items"], hostile):
        item[3] = [{"name": "x.png", "source": "x.png", "src": src, "note": ""}]
    path = tmp_path / "report.html"
    path.write_text(report_html.page(data), encoding="utf-8")
    shown = pictures_on(open_report(page, path))
    assert [p["images"] for p in shown] == [[]] * len(shown)
    assert page.problems == []
