"""The app's parts without a server: query cleaning, gallery index reuse, completion, ranking, flags."""

import json
import os
import socket
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tipr.app import gallery as gal
from tipr.app.gallery_export import write_gallery
from tipr.app.gallery_index import GalleryIndex
from tipr.app.gallery_source import CAPTIONS_FORMAT, GalleryError, GallerySource
from tipr.ecca.config import ECCAConfig
from tipr.app.index_store import INDEX_DIRNAME, cache_index_dir
from tipr.app.cli import parse_args
from tipr.app.completion import CompletionError, complete_image
from tipr.app.search import MAX_QUERY_CHARS, QueryError, Searcher, UserImages, clean_query


# ------------------------------------------------------------------------------------------------ queries
@pytest.mark.parametrize("text", ["", "   ", "\n\t  \x00 ", None])
def test_empty_queries_are_refused(text):
    with pytest.raises(QueryError, match="empty|must be text"):
        clean_query(text)


@pytest.mark.parametrize("text, expected, note", [
    ("  a man   in\tred  ", "a man in red", None),
    ("a man\x00 in red", "a man in red", None),
    ("x" * 5000, "x" * MAX_QUERY_CHARS, "5,000 characters"),
    ("一个穿红色外套的女人", "一个穿红色外套的女人", "no Latin letters"),
    ("12345 !!!", "12345 !!!", "no letters"),
    ("une femme en robe bleue à pois", "une femme en robe bleue à pois", None),
])
def test_clean_query(text, expected, note):
    cleaned, notes = clean_query(text)
    assert cleaned == expected
    assert (note is None and notes == []) or (note is not None and note in " ".join(notes))


# ------------------------------------------------------------------------------------------------ gallery
def _fake_embedders(calls: dict):
    """Deterministic stand-ins for the model: colour statistics for images, a hash for texts."""
    def images(pils):
        calls["images"] = calls.get("images", 0) + len(pils)
        feats = np.stack([np.concatenate([np.asarray(im.resize((4, 8)), np.float32).ravel() / 255, [1.0]])
                          for im in pils])
        return feats / np.linalg.norm(feats, axis=1, keepdims=True)

    def texts(items):
        calls["texts"] = calls.get("texts", 0) + len(items)
        rng = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=97) for t in items]
        feats = np.stack(rng).astype(np.float32)
        return feats / np.linalg.norm(feats, axis=1, keepdims=True)

    return images, texts


def _write_gallery(root: Path, n: int = 8, captionless=(1, 5)) -> Path:
    (root / "imgs").mkdir(parents=True)
    colours = ["red", "blue", "green", "yellow", "black", "white", "purple", "orange"]
    entries = []
    for i in range(n):
        c = colours[i % len(colours)]
        Image.new("RGB", (32, 64), c).save(root / "imgs" / f"{i}.png")
        caps = [f"a person in a {c} coat", f"someone wearing {c} clothes and a bag"]
        entry = {"path": f"imgs/{i}.png", "pid": i // 2, "captions": [] if i in captionless else caps}
        if i in captionless:
            entry["held_out_captions"] = caps
        entries.append(entry)
    (root / "captions.json").write_text(json.dumps({"format": CAPTIONS_FORMAT, "images": entries}))
    return root


def test_read_gallery_kinds_and_errors(tmp_path):
    src, index_dir = gal.read_gallery(_write_gallery(tmp_path / "g"))
    assert src.kind == "captions file" and index_dir is None
    assert len(src.image_paths) == 8 and len(src.captions) == 12 and src.captionless == [1, 5]
    assert src.held_out[1] == ["a person in a blue coat", "someone wearing blue clothes and a bag"]
    assert src.caption_images[:2] == [0, 0] and src.caption_pids[2:4] == [1, 1]

    plain = tmp_path / "plain" / "sub"
    plain.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(plain / "a.jpg")
    (plain.parent / ".hidden").mkdir()
    Image.new("RGB", (8, 8)).save(plain.parent / ".hidden" / "b.jpg")
    src, _ = gal.read_gallery(plain.parent)
    assert src.kind == "folder" and [Path(p).name for p in src.image_paths] == ["a.jpg"] and src.captions == []

    with pytest.raises(GalleryError, match="does not exist"):
        gal.read_gallery(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GalleryError, match="no images"):
        gal.read_gallery(tmp_path / "empty")


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_index_is_saved_in_the_cache_reused_and_rebuilt_only_when_needed(tmp_path):
    root = _write_gallery(tmp_path / "g")
    calls: dict = {}
    images, texts = _fake_embedders(calls)
    build = dict(model_fingerprint="m1", embed_images=images, embed_texts=texts, cache_dir=tmp_path / "cache")
    first = gal.load_or_build(root, **build)
    assert calls["images"] == 8 and first.location == cache_index_dir(root, tmp_path / "cache")
    assert not (root / INDEX_DIRNAME).exists()  # the app writes nothing into the gallery folder
    assert first.phrases and len(first.phrase_features) == len(first.phrases)
    scores, rows = first.search(first.image_features[3], 2)
    assert rows[0][0] == 3 and scores[0][0] == pytest.approx(1.0, abs=1e-5)

    calls.clear()
    again = gal.load_or_build(root, **build)  # unchanged: nothing embedded
    assert calls == {} and np.allclose(again.image_features, first.image_features)
    assert again.source.held_out == first.source.held_out

    for p in (root / "imgs").iterdir():  # a fresh checkout: new mtimes, same bytes
        os.utime(p, ns=(1, 1))
    assert gal.load_or_build(root, **build).fingerprint != first.fingerprint and calls == {}

    via_index = gal.load_or_build(first.location, **build)  # a saved index as --gallery
    assert calls == {} and len(via_index) == 8

    Image.new("RGB", (32, 64), "gray").save(root / "imgs" / "3.png")  # an image changed
    changed = gal.load_or_build(root, **build)
    assert calls["images"] == 8 and not np.allclose(changed.image_features[3], first.image_features[3])

    calls.clear()
    gal.load_or_build(root, **{**build, "model_fingerprint": "m2"})  # another model
    assert calls["images"] == 8


@pytest.mark.parametrize("same_model", [True, False])
def test_loading_never_modifies_a_shipped_gallery(tmp_path, monkeypatch, same_model):
    """A fresh clone of assets/gallery (new file times) is loaded, hashed once, and left byte for byte as it was."""
    root = _write_gallery(tmp_path / "g")
    calls: dict = {}
    images, texts = _fake_embedders(calls)
    cache = tmp_path / "cache"
    shipped = gal.embed_gallery(gal.read_gallery(root)[0], model_fingerprint="m1", embed_images=images,
                                embed_texts=texts, save_dir=root / INDEX_DIRNAME)
    for p in root.rglob("*"):  # a checkout gives every file a new time
        os.utime(p, ns=(2_000_000_000 * 10**9, 2_000_000_000 * 10**9))
    before = _snapshot(root)
    calls.clear()
    build = dict(model_fingerprint="m1" if same_model else "m2", embed_images=images, embed_texts=texts,
                 cache_dir=cache)
    hashed = []
    real = gal.fingerprint
    monkeypatch.setattr(gal, "fingerprint", lambda *a, **kw: hashed.append(kw.get("contents")) or real(*a, **kw))
    for _ in range(2):  # a second start must not hash the contents again
        index = gal.load_or_build(root, **build)
    assert _snapshot(root) == before
    if same_model:
        assert calls == {} and index.location == root / INDEX_DIRNAME
        assert np.allclose(index.image_features, shipped.image_features) and hashed.count(True) == 1
    else:  # another model: embedded again, into the cache
        assert calls["images"] == 8 and index.location == cache_index_dir(root, cache)


def test_unreadable_gallery_images_are_skipped(tmp_path):
    root = _write_gallery(tmp_path / "g")
    (root / "imgs" / "6.png").write_bytes(b"garbage")
    calls: dict = {}
    images, texts = _fake_embedders(calls)
    build = dict(model_fingerprint="m1", embed_images=images, embed_texts=texts, cache_dir=tmp_path / "cache")
    index = gal.load_or_build(root, **build)
    assert len(index) == 7 and len(index.source.captions) == 10 and calls["images"] == 7
    assert "imgs/6.png" not in [index.source.relative(i) for i in range(7)]
    calls.clear()
    assert len(gal.load_or_build(root, **build)) == 7 and calls == {}


ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.mark.skipif(not (ASSETS / "gallery" / INDEX_DIRNAME / "meta.json").is_file(), reason="no shipped gallery")
def test_app_start_leaves_a_fresh_copy_of_the_assets_gallery_unchanged(tmp_path):
    import shutil

    from tipr.app.backend import Backend
    from tipr.app.cli import AppConfig

    gallery = Path(shutil.copytree(ASSETS / "gallery", tmp_path / "gallery"))  # copies get new file times
    for p in gallery.rglob("*"):
        os.utime(p)
    before = _snapshot(gallery)
    backend = Backend(AppConfig(model=str(ASSETS / "model"), gallery=str(gallery), generator=None,
                                cache_dir=str(tmp_path / "cache")))
    searcher = backend.wait(timeout=120)
    assert searcher.index.location == gallery / INDEX_DIRNAME  # the shipped index, not embedded again
    assert _snapshot(gallery) == before


def test_dataset_root_gallery_and_write_gallery(tmp_path):
    from tipr.data.synthetic import generate_synthpedes

    dataset = generate_synthpedes(tmp_path / "data", identities=30, image_size=(64, 32), workers=1)
    src, _ = gal.read_gallery(tmp_path / "data")
    assert src.kind == "cuhk-pedes" and len(src.image_paths) == 12 and len(src.captions) == 24
    assert src.captionless == [] and set(src.image_pids) == {28, 29, 30}
    out = write_gallery(dataset.parent, tmp_path / "gallery", captionless=0.25, seed=1)
    written, _ = gal.read_gallery(out)
    assert len(written.image_paths) == 12 and len(written.captionless) == 3 and len(written.captions) == 18
    assert all(written.held_out[i] for i in written.captionless)


# ------------------------------------------------------------------------------------------------ completion
def _index(image_features, caption_features, caption_pids=None, held_out=None, tmp=Path("/tmp")):
    n, c = len(image_features), len(caption_features)
    src = GallerySource(root=tmp, kind="test", image_paths=[f"/tmp/{i}.png" for i in range(n)],
                            image_pids=list(range(n)), captions=[f"caption {j}" for j in range(c)],
                            caption_pids=caption_pids or list(range(c)), caption_images=list(range(c)),
                            held_out=held_out or {})
    norm = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return GalleryIndex(source=src, image_features=norm(np.asarray(image_features, np.float32)),
                            caption_features=norm(np.asarray(caption_features, np.float32)),
                            phrases=["red coat", "blue bag"], phrase_features=norm(np.eye(len(image_features[0]))[:2]),
                            fingerprint="t")


def test_completion_picks_the_matching_captions_and_improves_the_rank():
    # two people: A (axis 0) and B (axis 1), three images and three captions each, plus a captionless
    # image of A (row 6) that leans away from A's captions; its completion must come from A's captions
    e = np.eye(5)
    images = [e[0] + .5 * e[3], e[0] + .5 * e[4], e[0] + .5 * e[3] + .3 * e[4],
              e[1] + .3 * e[3], e[1] + .3 * e[4], e[1] + .2 * e[2], e[0] + .6 * e[2]]
    captions = [e[0] + .1 * e[3], e[0] + .1 * e[4], e[0] + .05 * e[2],
                e[1] + .1 * e[3], e[1] + .1 * e[4], e[1] + .05 * e[2]]
    index = _index(images, captions, held_out={6: ["the held-out caption"]})
    result = complete_image(index, index.image_features[6], row=6, k=3, k_prime=2,
                            probe_feature=lambda text: e[0])
    assert result.neighbours == [2, 1] and result.distances == pytest.approx([2 / 3, 2 / 3])
    # FMC's weights: a softmax of the cosines to the image at ECCA's affinity temperature
    cos = np.array([index.caption_features[j] @ index.image_features[6] for j in result.neighbours])
    expected = np.exp(cos / ECCAConfig.fmc_temperature) / np.exp(cos / ECCAConfig.fmc_temperature).sum()
    assert result.weights == pytest.approx(expected.tolist(), rel=1e-4) and result.weights[0] > result.weights[1]
    assert {j for j, _ in result.nearest_captions[:3]} == {0, 1, 2} and result.nearest_phrases[0][0] == "red coat"
    assert result.probe == "the held-out caption" and result.probe_kind == "held-out caption"
    assert (result.rank_without, result.rank_with, result.gallery_size) == (4, 1, 7)

    outside = complete_image(index, e[1] + .2 * e[4], row=None, k=3, k_prime=2)
    assert set(outside.neighbours) <= {3, 4, 5} and outside.probe_kind == "nearest caption"
    assert outside.probe == "caption 4" and outside.gallery_size == 8


def test_completion_needs_captions():
    index = _index(np.eye(3), np.zeros((0, 3)))
    with pytest.raises(CompletionError, match="no captions"):
        complete_image(index, index.image_features[0], row=0)


@pytest.mark.parametrize("others, score, complete, rank", [
    ([0.1, 0.5], 0.3, True, 2), ([0.5, 0.3], 0.9, True, 1), ([0.3], 0.3, True, 1),  # ties count in its favour
    ([0.9, 0.8], 0.1, True, 3), ([0.9, 0.8], 0.1, False, None),  # below a truncated list: beyond it
    ([0.9, 0.8], 0.85, False, 2), ([], 0.5, True, 1),
])
def test_rank_among(others, score, complete, rank):
    from tipr.app.ranks import rank_among

    assert rank_among(np.array(others), score, complete=complete) == rank


# ------------------------------------------------------------------------------------------------ ranking
class _StubEncoder:
    """Query features from a table: "plain" without a generated image, "enhanced" with one."""

    has_tgte, has_gif = True, False

    def __init__(self, plain, enhanced):
        self.plain, self.enhanced = np.asarray(plain, np.float32), np.asarray(enhanced, np.float32)
        self.model = type("M", (), {"gea_config": None})()

    def query(self, text, generated=None):
        return (self.plain if generated is None else self.enhanced), None, None


class _StubImaginer:
    available, error = True, None

    def imagine(self, text, *, seed=0, steps=None):
        return Image.new("RGB", (64, 128), "red")


def test_search_merges_own_images_and_compare_reports_moves(tmp_path):
    images = np.array([[1, 0, 0], [0.8, 0.6, 0], [0.1, 0.995, 0], [0, 0.5, 0.866]])
    index = _index(images, np.eye(3), tmp=tmp_path)
    searcher = Searcher(_StubEncoder([1, 0, 0], [0, 1, 0]), index, _StubImaginer())
    user = UserImages().add(["/tmp/mine.png"], np.array([[0.6, 0.8, 0.0]], np.float32))
    rows, scores = searcher.top(np.array([1, 0, 0], np.float32), 3, user)
    assert rows.tolist() == [0, 1, 4] and scores.tolist() == pytest.approx([1.0, 0.8, 0.6])

    result = searcher.search("a man", k=3, method="gea", user=user)
    assert [h.row for h in result.hits] == [2, 4, 1] and result.hits[1].own and result.hits[1].path == "/tmp/mine.png"
    assert result.generated is not None and result.method == "gea"

    cmp = searcher.compare("a man", k=3)
    assert [h.row for h in cmp.without] == [0, 1, 2] and [h.row for h in cmp.with_] == [2, 1, 3]
    assert cmp.moves == [3, 2, 4]  # without the generated image, image 2 was #3 and image 3 was last (#4)

    fallback = searcher.search("a man", k=2, method="gif")
    assert fallback.method == "text" and "GIF" in fallback.notes[0]
    with pytest.raises(QueryError, match="k must be"):
        searcher.search("a man", k=0)


# ------------------------------------------------------------------------------------------------ flags
def test_flags_env_vars_and_defaults(tmp_path):
    cfg = parse_args([], app_dir=tmp_path, env={})
    assert (cfg.model, cfg.gallery, cfg.generator) == tuple(str(tmp_path / "assets" / n)
                                                             for n in ("model", "gallery", "generator"))
    assert (cfg.host, cfg.port) == ("127.0.0.1", 7860)
    env = {"TIPR_MODEL": "org/tipr-model", "TIPR_GALLERY": "/data/g", "TIPR_GENERATOR": "none",
           "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7861"}
    cfg = parse_args([], app_dir=tmp_path, env=env)
    assert (cfg.model, cfg.gallery, cfg.generator, cfg.host, cfg.port) == \
        ("org/tipr-model", "/data/g", None, "0.0.0.0", 7861)
    cfg = parse_args(["--model", "m", "--port", "9000", "--host", "::1"], app_dir=tmp_path, env=env)
    assert (cfg.model, cfg.port, cfg.host) == ("m", 9000, "::1")
    with pytest.raises(SystemExit):
        parse_args(["--port", "0"], app_dir=tmp_path, env={})


# ------------------------------------------------------------------------------------------------ real model
def test_backend_loads_local_assets_without_network(tmp_path, monkeypatch):
    from tipr.app.backend import Backend
    from tipr.app.cli import AppConfig
    from tipr.app.testing import build_random_model

    model = build_random_model(tmp_path / "model")
    root = _write_gallery(tmp_path / "g")

    def no_network(*args, **kwargs):
        raise AssertionError(f"the app tried to open a network connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    backend = Backend(AppConfig(model=str(model), gallery=str(root), generator=None,
                                cache_dir=str(tmp_path / "cache")))
    searcher = backend.wait(timeout=120)
    assert backend.error is None and "8 images, 12 captions, 2 captionless" in backend.status_markdown()
    norms = np.linalg.norm(searcher.index.image_features, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)
    result = searcher.search("a person in a red coat", k=3, method="gif")
    assert result.method == "gif" and len(result.hits) == 3 and result.generated is None
    assert len({h.row for h in result.hits}) == 3

    missing = Backend(AppConfig(model=str(tmp_path / "nope"), gallery=str(root), generator=None,
                                cache_dir=str(tmp_path / "cache")))
    with pytest.raises(Exception, match="Could not load the model.*does not exist"):
        missing.wait(timeout=60)


# ------------------------------------------------------------------------------------------------ handlers
def test_search_handler_serves_results_and_names_files_in_full(tmp_path):
    from tipr.app import handlers
    from tipr.app.search import Hit

    images = np.array([[1, 0, 0], [0.8, 0.6, 0], [0.1, 0.995, 0]])
    index = _index(images, np.eye(3), tmp=tmp_path)
    searcher = Searcher(_StubEncoder([1, 0, 0], [0, 1, 0]), index, _StubImaginer())
    gallery, generated, note = handlers.search(searcher, "a man", 2, "text", show=lambda p: "/served" + p)
    assert gallery == [("/served/tmp/0.png", "#1 · 1.00 · id 0"), ("/served/tmp/1.png", "#2 · 0.80 · id 1")]
    assert generated is None and note == "**Text only**: top 2 of 3 gallery images"
    long_name = "/g/camera_07/pedestrian_000123_frame_004567.jpg"
    assert handlers.hit_caption(Hit(rank=3, row=0, score=0.4567, path=long_name, pid=-1, own=False)) == \
        "#3 · 0.46 · pedestrian_000123_frame_004567.jpg"  # the whole file name, not its first 12 characters


def test_captionless_note_says_why_the_list_is_empty(tmp_path):
    from tipr.app import handlers

    plain = tmp_path / "plain"
    plain.mkdir()
    Image.new("RGB", (8, 16)).save(plain / "a.png")
    source, _ = gal.read_gallery(plain)
    assert handlers.captionless_choices(source) == [] and "has no captions" in handlers.captionless_note(source)
    captioned, _ = gal.read_gallery(_write_gallery(tmp_path / "g"))
    assert [v for _, v in handlers.captionless_choices(captioned)] == ["imgs/1.png", "imgs/5.png"]
    assert handlers.captionless_note(captioned).startswith("2 gallery images have no caption")


def test_complete_handler_uses_the_models_hsng_settings(tmp_path):
    from tipr.app import handlers
    from tipr.ecca.config import ECCAConfig

    e = np.eye(5)
    images = [e[0] + .5 * e[3], e[0] + .5 * e[4], e[0] + .5 * e[3] + .3 * e[4],
              e[1] + .3 * e[3], e[1] + .3 * e[4], e[1] + .2 * e[2], e[0] + .6 * e[2]]
    captions = [e[0] + .1 * e[3], e[0] + .1 * e[4], e[0] + .05 * e[2],
                e[1] + .1 * e[3], e[1] + .1 * e[4], e[1] + .05 * e[2]]
    index = _index(images, captions, tmp=tmp_path)
    for i in range(7):
        Image.new("RGB", (32, 64), "red").save(tmp_path / f"{i}.png")
    index.source.image_paths = [str(tmp_path / f"{i}.png") for i in range(7)]
    searcher = Searcher(_StubEncoder([1, 0, 0, 0, 0], [1, 0, 0, 0, 0]), index)
    image, summary, neighbours, chart, nearest, phrases = handlers.complete(
        searcher, ECCAConfig(k=3, k_prime=2), "6.png", None)
    assert image.size == (32, 64) and "**6.png** — its nearest caption" in summary
    assert list(neighbours.columns) == handlers.NEIGHBOUR_COLUMNS and len(neighbours) == 2  # k' = 2
    assert neighbours["caption"].tolist() == ["caption 2", "caption 1"]
    assert chart["weight"].sum() == pytest.approx(1.0, abs=1e-3) and len(nearest) == 5
    with pytest.raises(CompletionError, match="Pick a captionless"):
        handlers.complete(searcher, ECCAConfig(), None, None)


def test_shown_images_are_linked_once_and_forgotten(tmp_path):
    from tipr.app.shown import ShownImages

    Image.new("RGB", (8, 16), "blue").save(tmp_path / "a.png")
    show = ShownImages(tmp_path / "shown")
    served = show(tmp_path / "a.png")
    assert Path(served).is_relative_to(tmp_path / "shown") and Path(served).name == "a.png"
    assert Path(served).read_bytes() == (tmp_path / "a.png").read_bytes() and show(tmp_path / "a.png") == served
    assert sorted(p.name for p in (tmp_path / "shown").rglob("*") if p.is_file()) == ["a.png"]
    show.forget([tmp_path / "a.png"])
    assert not Path(served).exists() and (tmp_path / "a.png").exists()


# ------------------------------------------------------------------------------------------------ noise
def test_loading_a_model_logs_no_random_init_warning(tmp_path, caplog):
    from tipr.app.testing import build_random_model
    from tipr.models.tipr_model import load_model

    build_random_model(tmp_path / "model")
    caplog.clear()
    with caplog.at_level("WARNING"):
        load_model(tmp_path / "model")
    assert not [r.getMessage() for r in caplog.records if "initialized randomly" in r.getMessage()]


def test_faiss_cpu_variant_probes_stay_out_of_the_log():
    import subprocess
    import sys

    code = "from tipr.app.cli import configure_logging; configure_logging(); import faiss, logging; " \
           "logging.getLogger('tipr.app').info('app line')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert "app line" in out.stderr and "ModuleNotFoundError" not in out.stderr, out.stderr


def test_the_torchvision_hook_build_folder_is_ignored():
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "-q", "tools/torchvision_hook/build/lib/tipr_torchvision_hook.py"],
                             cwd=repo)
    assert ignored.returncode == 0
