"""Hostile and odd uploads: one decoder for data, evaluation and app, bounded unzipping, pixel limits, short error
summaries in the user's names, and the upload store's caps and start-up sweep."""

import io
import logging
import struct
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tipr  # noqa: F401
from tipr.app.testing import zip_bomb
from tipr.app.uploads import LIMITS, UploadError, UploadLimits, UploadStore, import_images, open_upload
from tipr.data.images import ImageTooLarge, UnreadableImage, read_image

REPO = Path(__file__).resolve().parents[1]


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height (a decompression bomb's signature) with no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def _image_bytes(size=(64, 128), colour="blue", fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ decoder
def _odd_images(folder: Path) -> list[Path]:
    """Images where two decoders could disagree: big, tall, palette, grey, alpha, EXIF-rotated, tiny."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (1300, 600, 3), dtype=np.uint8))
    noise.save(folder / "big.jpg", quality=90)
    noise.resize((60, 130)).convert("P").save(folder / "palette.png")
    noise.resize((40, 100)).convert("L").save(folder / "grey.png")
    noise.resize((50, 90)).convert("RGBA").save(folder / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was turned; viewers rotate 90 degrees clockwise
    noise.resize((200, 100)).save(folder / "rotated.jpg", exif=exif)
    Image.fromarray(rng.integers(0, 255, (12, 7, 3), dtype=np.uint8)).save(folder / "tiny.bmp")
    return [folder / n for n in ("big.jpg", "palette.png", "grey.png", "alpha.png", "rotated.jpg", "tiny.bmp")]


def test_dataset_images_decode_as_before(tmp_path):
    for path in _odd_images(tmp_path):
        if path.name == "rotated.jpg":
            continue  # the one change: EXIF orientation is now applied everywhere
        with Image.open(path) as plain:
            assert read_image(path).tobytes() == plain.convert("RGB").tobytes(), path.name


def test_exif_orientation_is_applied(tmp_path):
    path = _odd_images(tmp_path)[4]
    assert read_image(path).size == (100, 200) and open_upload(path).size == (100, 200)


def test_the_app_embeds_a_gallery_image_exactly_as_evaluation_does(tmp_path):
    from tipr.app.encoder import Encoder
    from tipr.app.gallery import load_or_build, read_gallery
    from tipr.data import EvalSplit
    from tipr.evaluate import encode_split
    from tipr.models.tipr_model import TIPRModel

    _odd_images(tmp_path / "gallery")
    torch.manual_seed(0)
    model = TIPRModel(method="clip", backbone={"name": "tipr-tiny", "pretrained": None, "image_size": [64, 32]})
    encoder = Encoder(model)
    source, _ = read_gallery(tmp_path / "gallery")
    captions = ["a person in a red coat", "a man with a black bag and white shoes"]
    index = load_or_build(tmp_path / "gallery", model_fingerprint="test", embed_images=encoder.images,
                          embed_texts=encoder.texts, cache_dir=tmp_path / "cache")
    assert index.source.image_paths == source.image_paths
    app = encoder.texts(captions) @ index.image_features.T
    split = EvalSplit(image_paths=source.image_paths, image_pids=list(range(len(source.image_paths))),
                      captions=captions, caption_pids=[0, 1])
    evaluation = encode_split(model, split, batch_size=4).numpy()
    np.testing.assert_allclose(app, evaluation, rtol=0, atol=1e-6)


def test_fifty_megapixel_jpeg_is_decoded_at_reduced_size_quickly(tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("RGB", (5000, 10000), (200, 30, 30)).save(path, quality=70)
    start = time.perf_counter()
    image = open_upload(path)
    assert image.size == (256, 512) and image.getpixel((100, 100))[0] > 150
    assert time.perf_counter() - start < 5.0


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("width, height, limit", [
    (9400, 9400, None),  # the 370 KB PNG: under PIL's 89 MP, over the upload limit
    (5001, 5000, None),  # just over the upload limit
    (10000, 10000, None), (30000, 30000, None),  # over PIL's warning / error limits
    (200, 200, 30_000),  # a lower limit set by the operator
])
def test_large_images_are_refused_before_decoding(tmp_path, width, height, limit):
    limits = UploadLimits(max_pixels=limit) if limit else LIMITS
    bomb = _png_header_only(tmp_path / "bomb.png", width, height)  # decoding it would fail: the header is all
    with pytest.raises(UploadError, match=r"^bomb\.png (is|has) .*(megapixels|pixels).*downscale it") as err:
        open_upload(bomb, limits=limits)
    assert err.value.reason == "Too large to decode" and str(tmp_path) not in str(err.value)


def test_images_under_the_limit_are_kept(tmp_path):
    path = tmp_path / "ok.png"
    Image.new("RGB", (200, 150), "green").save(path)
    assert open_upload(path, limits=UploadLimits(max_pixels=30_000)).size == (200, 150)
    with pytest.raises(ImageTooLarge, match="ok.png is 200x150"):
        read_image(path, max_pixels=29_999)


@pytest.mark.parametrize("content, message", [
    (b"not an image", "notes.png is not an image"),
    (_image_bytes(fmt="PNG")[:60], "notes.png is a damaged image"),
    (b"", "notes.png is not an image"),
])
def test_unreadable_files_are_named_without_server_paths(tmp_path, content, message):
    path = tmp_path / "notes.png"
    path.write_bytes(content)
    with pytest.raises(UploadError, match=message) as err:
        open_upload(path)
    assert str(tmp_path) not in str(err.value)
    with pytest.raises(UnreadableImage, match=message.replace("notes.png", ".*notes.png")):
        read_image(path)
    with pytest.raises(UploadError, match="gone.png does not exist"):
        open_upload(tmp_path / "gone.png")


# ------------------------------------------------------------------------------------------------ zips
@pytest.mark.parametrize("size, limits, message", [
    (64 << 20, LIMITS, "unpacks to 64 MB, over the 32 MB a file may have"),
    (8 << 20, LIMITS, r"is compressed 1,0\d\d:1 \(a zip bomb's signature"),
    (3 << 20, UploadLimits(compression_ratio=10_000, upload_bytes=2 << 20),
     "would take the upload past 2 MB unpacked"),
])
def test_zip_bombs_are_refused_quickly_with_little_memory(tmp_path, size, limits, message):
    bomb = zip_bomb(tmp_path / "bomb.zip", size, "inside/zeros.png")
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(UploadError, match=f"bomb.zip/inside/zeros.png {message}"):
            import_images([bomb], tmp_path / "out", limits=limits)
        seconds, (_, peak) = time.perf_counter() - start, tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seconds < 1.0 and peak < 4 << 20, (seconds, peak)
    assert not (tmp_path / "out").exists()


def test_zip_members_count_against_the_upload_total(tmp_path):
    archive = tmp_path / "many.zip"
    member = _image_bytes((300, 300), fmt="BMP")  # 270 KB each, stored uncompressed
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(5):
            zf.writestr(f"p{i}.bmp", member)
    stored, problems = import_images([archive], tmp_path / "out", limits=UploadLimits(upload_bytes=3 * len(member)))
    assert len(stored) == 3 and problems == [f"Not unpacked: 2 (many.zip/p3.bmp would take the upload past 1 MB "
                                             f"unpacked; many.zip/p4.bmp would take the upload past 1 MB unpacked)"]


def test_damaged_zip_members_are_skipped_and_the_rest_kept(tmp_path):
    archive = tmp_path / "damaged.zip"
    noise = np.random.default_rng(0).integers(0, 255, (40, 20, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="BMP")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bad.bmp", buf.getvalue())
        zf.writestr("good.png", _image_bytes())
    data = bytearray(archive.read_bytes())
    start = data.index(b"bad.bmp") + len(b"bad.bmp")  # bad.bmp's deflated bytes follow its name
    data[start:start + 2] = b"\xff\xff"  # a deflate block of the invalid type 3
    archive.write_bytes(bytes(data))
    stored, problems = import_images([archive], tmp_path / "out")
    assert len(stored) == 1 and problems == ["Not unpacked: 1 (damaged.zip/bad.bmp: Error -3 while decompressing "
                                             "data: invalid block type)"]


def test_ten_thousand_unusable_entries_give_a_short_summary(tmp_path):
    archive = tmp_path / "junk.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(10_000):
            zf.writestr(f"notes/{i}.txt", "x")
        for i in range(4):
            zf.writestr(f"photos/{i}.jpg", b"\xff\xd8 not really")
    with pytest.raises(UploadError) as err:
        import_images([archive], tmp_path / "out")
    text = str(err.value)
    assert len(text) < 800 and str(tmp_path) not in text and ".unzip" not in text, text
    assert "Not named like images (.bmp, .gif, .jpeg, .jpg, .png, .tif, .tiff, .webp): 10,000 (junk.zip/notes/0.txt; " \
           "junk.zip/notes/1.txt; junk.zip/notes/2.txt and 9,997 more)" in text
    assert "Not readable images: 4 (junk.zip/photos/0.jpg is not an image" in text and "and 1 more)" in text


def test_zip_and_files_import_keeps_images_and_reports_the_rest(tmp_path):
    archive = tmp_path / "mixed.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escape/person.png", _image_bytes())  # a zip-slip name must not escape
        zf.writestr("readme.txt", "hello")
        zf.writestr("broken.jpg", b"\xff\xd8 not really")
    photo = tmp_path / "photo.png"
    Image.new("RGB", (1200, 2400), "green").save(photo)
    stored, problems = import_images([archive, photo], tmp_path / "out")
    assert [p.parent for p in stored] == [tmp_path / "out"] * 2
    assert Image.open(stored[0]).size == (64, 128) and Image.open(stored[1]).size == (256, 512)
    assert [p.split(":")[0] for p in problems] == ["Not named like images (.bmp, .gif, .jpeg, .jpg, .png, .tif, "
                                                   ".tiff, .webp)", "Not readable images"]
    assert "mixed.zip/readme.txt" in problems[0] and "mixed.zip/broken.jpg is not an image" in problems[1]
    assert not (tmp_path / "escape").exists()


def test_empty_and_missing_uploads(tmp_path):
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    with pytest.raises(UploadError, match=r"Empty zip archives \(put images in them\): 1 \(empty.zip holds no files"):
        import_images([empty], tmp_path / "out")
    (tmp_path / "fake.zip").write_text("no zip")
    with pytest.raises(UploadError, match="Not valid zip archives .*fake.zip"):
        import_images([tmp_path / "fake.zip"], tmp_path / "out")
    with pytest.raises(UploadError, match="no file"):
        import_images([], tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("given, cap, kept", [(5, 3, 3), (2, 3, 2), (1, 1, 1)])
def test_one_upload_stops_at_its_cap(tmp_path, given, cap, kept):
    files = []
    for i in range(given):
        files.append(tmp_path / f"{i}.png")
        files[-1].write_bytes(_image_bytes())
    stored, problems = import_images(files, tmp_path / "out", limits=UploadLimits(images_per_upload=cap))
    assert len(stored) == kept
    assert problems == ([f"Not read: one upload adds at most {cap} images (upload the rest separately): 1 "
                         f"(from {cap}.png on)"] if given > cap else [])


# ------------------------------------------------------------------------------------------------ storage
def _uploads(tmp_path: Path, n: int) -> list[Path]:
    files = []
    for i in range(n):
        files.append(tmp_path / "in" / f"p{i}.png")
        files[-1].parent.mkdir(exist_ok=True)
        files[-1].write_bytes(_image_bytes())
    return files


def test_store_caps_each_session_and_the_whole_app(tmp_path):
    store = UploadStore(tmp_path / "uploads", UploadLimits(images_per_session=3, images_total=5))
    a, _ = store.add(_uploads(tmp_path, 2))
    b, notes = store.add(_uploads(tmp_path, 2), held=2)  # a session with 2 images may add one more
    assert len(b) == 1 and "adds at most 1 images" in notes[0]
    with pytest.raises(UploadError, match="you already have 3 images"):
        store.add(_uploads(tmp_path, 1), held=3)
    c, _ = store.add(_uploads(tmp_path, 4))  # another session: 2 of the app's 5 are left
    assert len(c) == 2 and store.count() == 5
    with pytest.raises(UploadError, match="already holds 5 uploaded images"):
        store.add(_uploads(tmp_path, 1))
    store.remove(a + b)
    assert store.count() == 2 and all(not p.exists() and not p.parent.exists() for p in a + b)
    store.remove([tmp_path / "in" / "p0.png"])  # only the store's own files are ever deleted
    assert (tmp_path / "in" / "p0.png").exists()


def test_failed_upload_leaves_no_folder(tmp_path):
    store = UploadStore(tmp_path / "uploads")
    (tmp_path / "bad.png").write_text("no")
    with pytest.raises(UploadError):
        store.add([tmp_path / "bad.png"])
    assert list(store.folder.iterdir()) == []


def test_start_up_sweeps_what_ended_runs_left_but_not_a_running_app(tmp_path):
    root = tmp_path / "uploads"
    (root / "0a1b2c3d4e5f").mkdir(parents=True)  # the layout before run folders
    (root / "0a1b2c3d4e5f" / "x.png").write_bytes(_image_bytes())
    crashed = UploadStore(root)
    crashed.add(_uploads(tmp_path, 1))
    crashed._lock_file.close()  # what a crash does: the lock goes with the process
    running = UploadStore(root)
    assert running.swept == 2 and not crashed.folder.exists() and not (root / "0a1b2c3d4e5f").exists()
    running.add(_uploads(tmp_path, 1))
    second = UploadStore(root)  # another app on the same cache folder
    assert second.swept == 0 and running.count() == 1
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [running.folder.name, running.folder.name + ".lock", second.folder.name, second.folder.name + ".lock"])


def test_the_app_sweeps_at_start_deletes_raw_uploads_and_logs_refusals_in_one_line(tmp_path, caplog):
    import gradio as gr

    from tipr.app.backend import Backend
    from tipr.app.cli import parse_args
    from tipr.app.ui import RAW_UPLOADS_CACHE, build_demo, friendly

    config = parse_args(["--cache_dir", str(tmp_path / "cache"), "--generator", "none"], app_dir=tmp_path)
    leftover = tmp_path / "cache" / "uploads" / "0a1b2c3d4e5f" / "x.png"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"")
    demo = build_demo(Backend(config, start=False), config)
    assert not leftover.parent.exists()
    assert demo.delete_cache == RAW_UPLOADS_CACHE and RAW_UPLOADS_CACHE[1] <= 3600

    @friendly
    def refuse():
        raise UploadError("bad.png is not an image")

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tipr.app"), pytest.raises(gr.Error) as err:
        refuse()
    assert err.value.print_exception is False and err.value.message == "bad.png is not an image"
    assert [r.getMessage() for r in caplog.records] == ["refuse refused: bad.png is not an image"]
    assert caplog.records[0].exc_info is None


@pytest.mark.parametrize("argv, env, expected, error", [
    (["--upload_limit", "max_pixels=40000000", "--upload_limit", "images_total=2000"], {},
     UploadLimits(max_pixels=40_000_000, images_total=2000), None),  # the example of docs/app.md
    ([], {"TIPR_UPLOAD_LIMITS": "images_per_session=5, member_bytes=1_000"},
     UploadLimits(images_per_session=5, member_bytes=1000), None),
    (["--upload_limit", "images_total=7"], {"TIPR_UPLOAD_LIMITS": "images_total=5"},  # the flag wins
     UploadLimits(images_total=7), None),
    (["--upload_limit", "max_pixels=1e5"], {}, None, "not NAME=INTEGER"),
    (["--upload_limit", "pixels=5"], {}, None, "unknown keys ['pixels']; valid keys are"),
    (["--upload_limit", "max_side=0"], {}, None, "positive integers, got max_side=0"),
])
def test_limits_are_set_by_flags_or_environment(argv, env, expected, error, capsys):
    from tipr.app.cli import parse_args

    if error is None:
        assert parse_args(argv, env=env).upload_limits == expected
        return
    with pytest.raises(SystemExit):
        parse_args(argv, env=env)
    assert error in capsys.readouterr().err


def test_the_upload_benchmark_measures_hostile_inputs(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_uploads", REPO / "benchmarks" / "bench_uploads.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    inputs = bench.make_inputs(tmp_path / "work", ["junk_zip", "big_png"])
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["big.png", "junk.zip"]
    assert Image.open(inputs["big_png"][0]).size == (9400, 9400) and inputs["big_png"][0].stat().st_size < 400_000
    for case in ("junk_zip", "big_png"):
        row = bench.measure(case, inputs[case], tmp_path / case)
        assert row["seconds"] < 5.0 and row["peak_disk_mb"] == 0.0, row  # memory: only a fresh process tells
        (outcome,) = row["outcome"]
        assert outcome.startswith("refused with a ") and int(outcome.split()[3].split("-")[0].replace(",", "")) < 1000
