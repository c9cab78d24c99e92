"""`python app.py` as a real server: every api_name through gradio_client, bad input, 20 concurrent searches,
a missing model folder, and a headless Chromium clicking through the three tabs (screenshots)."""

import io
import os
import re
import socket
import subprocess
import sys
import time
import shutil
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
from tipr.app.ui import EXAMPLE_QUERIES  # noqa: E402

CAPTION = re.compile(r"^#(\d+)( (=|▲\d+|▼\d+))? · -?\d+\.\d\d · (id \d+|yours)$")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _real_assets() -> dict | None:
    assets = REPO / "assets"
    needed = {"model": "config.json", "gallery": "captions.json", "generator": "model_index.json"}
    if all((assets / name / marker).is_file() for name, marker in needed.items()):
        return {name: assets / name for name in needed}
    return None


class Server:
    def __init__(self, args: list[str], cache: Path):
        self.cache = cache
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TIPR_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
        env.pop("GRADIO_ANALYTICS_ENABLED", None)  # app.py must turn analytics off by itself
        self.log = open(cache.parent / f"server-{self.port}.log", "w")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), *args, "--port", str(self.port)],
                                     cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_http(self, timeout: float = 90) -> float:
        """Seconds from the process start until the page answers 200."""
        while time.perf_counter() - self.started < timeout:
            assert self.proc.poll() is None, Path(self.log.name).read_text()[-3000:]
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"{self.url} did not answer within {timeout} s")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    assets = _real_assets()
    if assets is None:
        from tipr.app.testing import build_random_assets

        assets = build_random_assets(root / "assets")
    else:  # a copy, as a fresh clone has it: the test plants a file in it
        assets["gallery"] = Path(shutil.copytree(assets["gallery"], root / "gallery"))
    main = Server(["--model", str(assets["model"]), "--gallery", str(assets["gallery"]),
                   "--generator", str(assets["generator"])], root / "cache")
    broken = None
    try:
        main.seconds_to_serve = main.wait_http()
        # started once the first is up (not to slow its start down); its test waits for it
        broken = Server(["--model", str(root / "no-such-model"), "--gallery", str(assets["gallery"]),
                         "--generator", "none"], root / "cache-broken")
        yield main, broken
    finally:
        for s in (main, broken):
            if s is not None:
                s.stop()


@pytest.fixture(scope="module")
def server(servers):
    return servers[0]


@pytest.fixture(scope="module")
def client(server):
    c = Client(server.url, verbose=False, download_files=False)
    status, _, _ = c.predict(api_name="/status")  # waits until the model and gallery are loaded
    assert "images" in status and "⚠️" not in status, status
    return c


def _captions(gallery) -> list[str]:
    return [item["caption"] for item in gallery]


def _png(path: Path, colour="red", size=(64, 128)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


# ------------------------------------------------------------------------------------------------ serving
def test_serves_quickly_and_lists_every_action(server, client):
    assert server.seconds_to_serve < 30, f"first page after {server.seconds_to_serve:.1f} s"
    endpoints = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/status", "/search", "/search_submit", "/add_images", "/clear_images", "/behind_gea",
            "/behind_gea_submit", "/complete", "/complete_pick", "/complete_upload"} <= endpoints


@pytest.mark.parametrize("method, label", [("text", "Text only"), ("gea", "With GEA's generated image"),
                                           ("gif", "GIF re-ranking")])
def test_search_methods(client, method, label):
    gallery, generated, status = client.predict("a man in a red jacket and black trousers", 5, method,
                                                api_name="/search")
    captions = _captions(gallery)
    assert len(captions) == 5 and all(CAPTION.match(c) for c in captions), captions
    assert [int(CAPTION.match(c).group(1)) for c in captions] == [1, 2, 3, 4, 5]
    scores = [float(c.split(" · ")[1]) for c in captions]
    if method != "gif":  # GIF's final score is cosine + fusion score, also sorted
        assert all(-1.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert f"**{label}**" in status and (generated is None) == (method == "text")
    same = client.predict("a man in a red jacket and black trousers", 5, method, api_name="/search_submit")
    assert _captions(same[0]) == captions


def test_own_images_are_searched_then_removed(client, tmp_path):
    # the user's images are copies of the gallery's best match, so a trained model ranks them next to it
    top, _, _ = client.predict("a person", 1, "text", api_name="/search")
    image = top[0]["image"]
    picture = Image.open(image["path"] if isinstance(image, dict) else image).convert("RGB")
    picture.save(tmp_path / "mine.png")
    archive = tmp_path / "mine.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        buf = io.BytesIO()
        picture.save(buf, format="PNG")
        zf.writestr("inside/copy.png", buf.getvalue())
    status, _ = client.predict([handle_file(tmp_path / "mine.png"), handle_file(archive)],
                               api_name="/add_images")
    assert "Added 2 image(s); your own images: 2" in status
    gallery, _, status = client.predict("a person", 5, "text", api_name="/search")
    assert sum(c.endswith("· yours") for c in _captions(gallery)) == 2 and "your own images" in status
    assert "removed" in client.predict(api_name="/clear_images")
    gallery, _, _ = client.predict("a person", 50, "text", api_name="/search")
    assert not any(c.endswith("· yours") for c in _captions(gallery))


def test_behind_gea_shows_the_generated_image_and_the_moves(client):
    image, without, with_, table, summary = client.predict("a woman in a blue dress with a white bag", 3, 5, 6,
                                                           api_name="/behind_gea")
    assert image["path"].endswith((".webp", ".png")) and len(without) == len(with_) == 6
    rows = table["data"]
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]
    for (rank_with, rank_without, change, *_), caption in zip(rows, _captions(with_)):
        expected = "=" if rank_with == rank_without else ("▲" if rank_without > rank_with else "▼")
        assert change.startswith(expected) and CAPTION.match(caption).group(3).startswith(expected)
    # an image that stayed in the top 6 is listed with its text-only rank
    before = {int(c.split(" · ")[0][1:]): c.split(" · ")[2] for c in _captions(without)}
    assert all(before[r[1]] == f"id {r[4]}" for r in rows if r[1] <= 6)
    assert f"of the top 6 positions" in summary
    again = client.predict("a woman in a blue dress with a white bag", 3, 5, 6, api_name="/behind_gea_submit")
    assert again[3]["data"] == rows  # same seed and steps: the same generated image and ranking


def test_captionless_completion(client, tmp_path):
    _, dropdown, note = client.predict(api_name="/status")
    assert note == f"{len(dropdown['choices'])} gallery images have no caption: pick one, or upload an image."
    choice = dropdown["choices"][0][1]
    image, summary, neighbours, chart, nearest, phrases = client.predict(choice, api_name="/complete_pick")
    assert choice in summary and "held-out caption" in summary and re.search(r"#\d+\*\* with the image", summary)
    weights = [row[4] for row in neighbours["data"]]
    assert len(weights) >= 1 and sum(weights) == pytest.approx(1.0, abs=1e-3)
    assert [row[1] for row in chart["data"]] == pytest.approx(weights)
    assert len(nearest["data"]) == 5 and len(phrases["data"]) >= 1
    assert client.predict(choice, None, api_name="/complete")[1] == summary
    out = client.predict(handle_file(_png(tmp_path / "upload.png", "green")), api_name="/complete_upload")
    assert "your image upload.png" in out[1] and "nearest caption" in out[1]


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_only_shown_images_are_served(server, client):
    gallery_dir = Path(client.predict(api_name="/status")[0].split("gallery `")[1].split("`")[0])
    gallery_dir = gallery_dir if gallery_dir.is_absolute() else REPO / gallery_dir
    planted = gallery_dir / "imgs" / "planted-secret.txt"
    planted.write_text("not for the web")
    try:
        results, _, _ = client.predict("a person in a red coat", 3, "text", api_name="/search")
        shown = results[0]["image"]["path"]
        # served in place from the app's folder of shown images, not hashed and copied into Gradio's cache each time
        assert Path(shown).is_relative_to(server.cache / "shown") and all(
            Path(r["image"]["path"]).parent.parent.parent == server.cache / "shown" for r in results)
        assert _http_status(server.url + "gradio_api/file=" + shown) == 200
        name = Path(shown).name
        assert (gallery_dir / "imgs" / name).read_bytes() == Path(shown).read_bytes()
        for path in (gallery_dir / "captions.json", gallery_dir / ".tipr-index" / "meta.json", planted,
                     gallery_dir / "imgs" / name):  # the gallery folder itself is never served, its images neither
            assert _http_status(server.url + "gradio_api/file=" + str(path)) == 403, path
    finally:
        planted.unlink()


def test_api_outputs_are_named_and_the_status_line_names_all_three(client):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    unnamed = {name: [r["label"] for r in info["returns"] if re.fullmatch(r"value_\d+", r["label"])]
               for name, info in endpoints.items()}
    assert not any(unnamed.values()), unnamed
    status = client.predict(api_name="/status")[0]
    assert re.search(r"Model `[^`]+` .* gallery `[^`]+`: \d+ images.* generator `[^`]+`", status), status


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("query, message", [("", "empty"), ("   \n ", "empty")])
def test_empty_queries_get_a_clear_error(client, query, message):
    with pytest.raises(AppError, match=message):
        client.predict(query, 5, "text", api_name="/search")


@pytest.mark.parametrize("query, note", [
    pytest.param(("a man in red " * 400)[:5000], "5,000 characters", id="5000-characters"),
    pytest.param("一个穿红色外套的女人", "no Latin letters", id="chinese"),
])
def test_odd_queries_are_searched_with_a_note(client, query, note):
    gallery, _, status = client.predict(query, 5, "text", api_name="/search")
    assert len(gallery) == 5 and note in status


def test_bad_uploads_get_clear_errors(server, client, tmp_path):
    log_start = Path(server.log.name).stat().st_size  # bytes
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    status, files = client.predict([handle_file(text)], api_name="/add_images")
    # said once, next to the upload box, which is emptied so the next upload does not repeat the failed files
    assert status.startswith("⚠️ Nothing was added") and status.count("notes.txt is not an image") == 1
    assert files is None
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    assert "empty.zip holds no files" in client.predict([handle_file(empty)], api_name="/add_images")[0]
    with pytest.raises(AppError, match="notes.txt is not an image"):
        client.predict(handle_file(text), api_name="/complete_upload")
    fake = tmp_path / "fake.png"
    fake.write_text("a text file named like an image")
    with pytest.raises(AppError, match="fake.png is not an image"):
        client.predict(handle_file(fake), api_name="/complete_upload")
    with pytest.raises(AppError, match="Pick a captionless"):
        client.predict(None, None, api_name="/complete")
    big = tmp_path / "big.jpg"
    Image.new("RGB", (5000, 10000), (30, 30, 200)).save(big, quality=60)  # 50 megapixels
    status, files = client.predict([handle_file(big)], api_name="/add_images")
    assert "Added 1 image(s)" in status and files is None
    assert "big.jpg" in client.predict(handle_file(big), api_name="/complete_upload")[1]
    client.predict(api_name="/clear_images")
    log = Path(server.log.name).read_bytes()[log_start:].decode()  # one line per refused input, no traceback
    assert len(re.findall(r"tipr.app INFO \w+ refused: ", log)) == 5 and "Traceback" not in log, log
    assert str(tmp_path) not in log


def test_twenty_concurrent_searches_all_complete(server):
    def one(i: int):
        c = Client(server.url, verbose=False, download_files=False)
        return c.predict(f"a person wearing a colour number {i}", 4, "text", api_name="/search")

    start = time.perf_counter()
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    assert [len(r[0]) for r in results] == [4] * 20
    assert time.perf_counter() - start < 60


def test_missing_model_is_reported_and_the_app_keeps_serving(servers):
    broken = servers[1]
    broken.wait_http()
    c = Client(broken.url, verbose=False, download_files=False)
    status, _, _ = c.predict(api_name="/status")
    assert "Could not load the model" in status and "does not exist" in status
    with pytest.raises(AppError, match="Could not load the model.*no-such-model"):
        c.predict("a man", 5, "text", api_name="/search")
    with urllib.request.urlopen(broken.url, timeout=5) as response:
        assert response.status == 200


# ------------------------------------------------------------------------------------------------ browser
SHOWN_IMAGES_LOADED = """() => [...document.querySelectorAll('img')].filter(i => i.offsetParent !== null)
                                  .every(i => i.complete && i.naturalWidth > 0)"""


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_browser_runs_each_tab(server, client, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    shots = Path(os.environ.get("TIPR_SCREENSHOTS") or tmp_path)
    if not shots.is_absolute():
        shots = REPO / shots
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(server.url)
            page.wait_for_selector("#status :text('captionless')")

            assert "github.com/tipr-project" not in page.content()
            # every table shows its own headers before any action, not gradio's placeholders "1 2 3"
            page.get_by_role("tab", name="Behind GEA").click()
            assert "rank without" in page.inner_text("#gea-table")
            page.get_by_role("tab", name="Search").click()

            for example, method in zip(EXAMPLE_QUERIES, ["Text only", "With GEA", "GIF re-ranking", "Text only"]):
                page.get_by_text(example[:40]).first.click()
                page.wait_for_selector(f"#search-status :text('{method}')")
                page.wait_for_function("document.querySelectorAll('#results .thumbnail-item').length === 10")
                assert page.locator("#results .error, #results :text('Error')").count() == 0
                page.fill("#query textarea", "")  # the next example must fill it again
            # every result's caption is shown whole (rank, score and person id), not cut with an ellipsis
            labels = page.eval_on_selector_all(
                "#results .caption-label",
                "els => els.map(e => [e.innerText, e.scrollWidth <= e.clientWidth + 1, "
                "e.getBoundingClientRect().bottom <= e.closest('.thumbnail-item').getBoundingClientRect().bottom + 1])")
            assert len(labels) == 10 and all(CAPTION.match(t) and fits and inside for t, fits, inside in labels), labels

            page.fill("#query textarea", "a woman in a red coat with a black bag")
            page.get_by_label("GIF re-ranking").check()
            page.click("#search-button")
            page.wait_for_selector("#search-status :text('GIF re-ranking')")
            assert page.locator("#results .thumbnail-item").count() == 10
            page.wait_for_function(SHOWN_IMAGES_LOADED)  # every shown image decoded, not a blank tile
            page.screenshot(path=str(shots / "search.png"), full_page=True)

            page.get_by_role("tab", name="Behind GEA").click()
            page.fill("#gea-query textarea", "a man in a white shirt and blue jeans with a backpack")
            page.click("#gea-button")
            page.wait_for_selector("#gea-with .thumbnail-item img")
            assert page.locator("#gea-without .thumbnail-item").count() == 10
            assert "positions" in page.inner_text("#gea-status")
            page.wait_for_function(SHOWN_IMAGES_LOADED)  # every shown image decoded, not a blank tile
            page.screenshot(path=str(shots / "behind_gea.png"), full_page=True)

            page.get_by_role("tab", name="Captionless images").click()
            page.click("#pick input")
            page.get_by_role("option").first.click()
            page.wait_for_selector("#complete-status :text('completed text feature')")
            page.wait_for_selector("#weights canvas, #weights svg")
            page.wait_for_timeout(500)  # the bar chart animates in
            page.wait_for_function(SHOWN_IMAGES_LOADED)  # every shown image decoded, not a blank tile
            page.screenshot(path=str(shots / "captionless.png"), full_page=True)
        finally:
            browser.close()
    for name in ("search.png", "behind_gea.png", "captionless.png"):
        assert (shots / name).stat().st_size > 10_000
