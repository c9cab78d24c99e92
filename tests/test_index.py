"""tipr.index: gallery listing, resumable incremental shards, faiss builds, the index folder, two processes."""

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tipr.index.build import default_factory, is_lossy, nlist_for
from tipr.index.folder import IndexFolderError, open_index
from tipr.index.indexer import assemble, embed_shards, plan
from tipr.index.shards import SUFFIX
from tipr.index.sources import GalleryListError, list_gallery

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "assets" / "model"


@pytest.fixture(scope="module")
def model():
    from tipr.models.tipr_model import load_model

    return load_model(MODEL)


@pytest.fixture
def gallery(synth, tmp_path) -> Path:
    """A folder of 11 crops in nested folders (one person with one image, one with many), a corrupt file and a
    hidden folder that is not part of the gallery."""
    src = sorted((Path(synth) / "imgs").rglob("*.png"))
    out = tmp_path / "gallery"
    for i, p in enumerate(src[:11]):
        dst = out / ("cam1" if i < 6 else "cam2/day 2") / p.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dst)
    (out / "cam2" / "broken.png").write_bytes(b"not a png")
    (out / ".thumbs").mkdir()
    shutil.copyfile(src[0], out / ".thumbs" / "x.png")
    return out


def _index(model, gallery: Path, out: Path, **kw) -> int:
    """One process's index run (what __main__ does); returns how many images were embedded."""
    listing = list_gallery(gallery)
    work = plan(listing, out, shard_size=kw.pop("shard_size", 4))
    done = embed_shards(model, listing, out, work, num_workers=0, **kw)
    assemble(listing, out, work.stamps, model_fingerprint="test-model")
    return done


# ---------------------------------------------------------------------------------------------- listing
def test_lists_folders_list_files_and_dataset_roots(synth, gallery, tmp_path):
    folder = list_gallery(gallery)
    assert folder.kind == "folder" and len(folder.images) == 12 and folder.pids == [-1] * 12
    assert folder.images[0].startswith("cam1/") and "cam2/day 2/" in " ".join(folder.images)
    assert not any(".thumbs" in p for p in folder.images)

    lst = gallery / "cam2" / "g.txt"
    outside = tmp_path / "elsewhere.png"
    shutil.copyfile(gallery / folder.images[0], outside)
    lst.write_text(f"# my cameras\n\n../{folder.images[1]}\t7\n{outside}\n")
    listed = list_gallery(lst)
    assert listed.kind == "list file" and listed.pids == [7, -1] and listed.root == gallery / "cam2"
    assert Path(listed.path(0)) == gallery / folder.images[1]  # relative to the list file's folder
    assert listed.images[1] == str(outside) and Path(listed.path(1)) == outside  # outside it: absolute

    data = list_gallery(synth)
    assert data.kind == "CUHK-PEDES" or data.kind.lower() == "cuhk-pedes"
    assert len(data.images) == len(data.pids) and data.captions and all(p >= 0 for p in data.pids)


@pytest.mark.parametrize("text, error", [
    ("missing.png\n", "do not exist"),
    ("{img}\tseven\n", "must be an integer"),
    ("# nothing\n\n", "lists no images"),
    ("{img}\n{img}\n", "twice"),
])
def test_list_file_errors_say_what_to_fix(gallery, tmp_path, text, error):
    img = next(gallery.rglob("*.png"))
    lst = tmp_path / "list.txt"
    lst.write_text(text.format(img=img))
    with pytest.raises(GalleryListError, match=error):
        list_gallery(lst)


def test_missing_or_empty_gallery_is_refused(tmp_path):
    with pytest.raises(GalleryListError, match="does not exist"):
        list_gallery(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GalleryListError, match="no images"):
        list_gallery(tmp_path / "empty")


# ---------------------------------------------------------------------------------------------- building
def test_index_embeds_like_the_app_and_finds_each_image(model, gallery, tmp_path):
    from tipr.app.encoder import Encoder
    from tipr.data.datasets import read_image

    out = tmp_path / "index"
    assert _index(model, gallery, out) == 12
    index = open_index(out, model_fingerprint="test-model")
    listing = list_gallery(gallery)
    assert index.manifest["num_skipped"] == 1 and index.manifest["skipped"] == ["cam2/broken.png"]
    assert index.images == [p for p in listing.images if p != "cam2/broken.png"]
    assert index.manifest["factory"] == "Flat" and index.rescore == 0
    expected = Encoder(model).images([read_image(index.path(i)) for i in range(len(index))])
    np.testing.assert_allclose(index.features, expected, atol=2e-3)  # float16 on disk
    scores, rows = index.search(index.vectors(range(len(index))), 3)
    assert rows[:, 0].tolist() == list(range(len(index)))
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=2e-3)


def test_rerun_embeds_only_new_and_changed_images_and_drops_removed_ones(model, gallery, tmp_path):
    out = tmp_path / "index"
    _index(model, gallery, out)
    listing = list_gallery(gallery)
    removed, changed = gallery / listing.images[0], gallery / listing.images[3]
    removed.unlink()
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    shutil.copyfile(gallery / listing.images[5], gallery / "cam3.png")
    assert _index(model, gallery, out) == 2  # the changed and the new image; the unreadable one is remembered
    index = open_index(out)
    assert listing.images[0] not in index.images and "cam3.png" in index.images and len(index) == 11
    assert _index(model, gallery, out) == 0
    assert len(list((out / "shards").glob(f"*{SUFFIX}"))) <= 4  # shards nothing refers to are deleted


class _Killed(Exception):
    pass


class _KillAfter:
    """A progress bar that 'kills' the run once ``n`` images are done (between batches, mid-shard)."""

    def __init__(self, n: int):
        self.n, self.done = n, 0

    def update(self, k: int) -> None:
        self.done += k
        if self.done >= self.n:
            raise _Killed


def test_killed_run_resumes_where_it_stopped(model, gallery, tmp_path):
    listing = list_gallery(gallery)
    out = tmp_path / "index"
    work = plan(listing, out, shard_size=4)
    with pytest.raises(_Killed):
        embed_shards(model, listing, out, work, num_workers=0, batch_size=2, progress=_KillAfter(6))
    (out / "shards" / ".half.abc.tmp").write_bytes(b"PK\x03 half a shard")  # what a kill mid-write leaves
    assert len(list((out / "shards").glob(f"*{SUFFIX}"))) == 1
    resumed = plan(listing, out, shard_size=4)
    assert len(resumed.pending) == 12 - 4 and not list((out / "shards").glob(".*.tmp"))
    embed_shards(model, listing, out, resumed, num_workers=0, batch_size=2)
    assemble(listing, out, resumed.stamps, model_fingerprint="test-model")
    clean = tmp_path / "clean"
    _index(model, gallery, clean, batch_size=2)
    a, b = open_index(out), open_index(clean)
    assert a.images == b.images
    np.testing.assert_array_equal(a.features, b.features)


@pytest.mark.parametrize("n, dim, factory", [
    (10, 512, "Flat"), (49_999, 512, "Flat"), (50_000, 512, "IVF1024,Flat"), (100_000, 512, "IVF1024,Flat"),
    (499_999, 128, "IVF2048,Flat"), (1_000_000, 512, "IVF4096,PQ64"), (1_000_000, 100, "IVF4096,PQ10"),
])
def test_default_factory_by_gallery_size(n, dim, factory):
    assert default_factory(n, dim) == factory


@pytest.mark.parametrize("factory, nprobe", [("IVF4,Flat", 4), ("IVF64,Flat", 8), ("IVF1024,Flat", 32)])
def test_default_nprobe_is_a_32nd_of_the_lists_at_least_8(factory, nprobe):
    import faiss

    from tipr.index.build import default_nprobe, new_index

    assert default_nprobe(new_index(factory, 8)) == nprobe and default_nprobe(faiss.IndexFlatIP(8)) is None


def test_nlist_and_lossy():
    assert [nlist_for(n) for n in (1, 100_000, 1_000_000)] == [4, 1024, 4096]
    assert is_lossy("IVF64,PQ8") and is_lossy("OPQ16,IVF64,PQ16") and is_lossy("IVF64,SQ8")
    assert not is_lossy("Flat") and not is_lossy("IVF64,Flat") and not is_lossy("HNSW32")


@pytest.mark.parametrize("factory, n, error", [
    ("NotAnIndex", 300, "faiss cannot build"),
    ("IVF64,Flat", 300, "needs at least 2496 images"),
])
def test_bad_index_choices_are_explained(factory, n, error):
    from tipr.index.build import build_faiss

    x = np.random.default_rng(0).standard_normal((n, 16)).astype(np.float32)
    with pytest.raises(ValueError, match=error):
        build_faiss(x / np.linalg.norm(x, axis=1, keepdims=True), factory)


@pytest.mark.parametrize("factory", ["IVF16,PQ8", "HNSW16", "IVF16,Flat"])
def test_approximate_indexes_memory_mapped_and_rescored(tmp_path, factory):
    import faiss

    from tipr.index.benchmark import clustered_queries, exact_top, person_centres, recall_at_k, synthetic_index

    index = open_index(synthetic_index(tmp_path / "idx", 3000, 32, factory=factory, shard_size=700))
    assert len(index) == 3000 and index.images[7] == "synthetic/00000007.png"
    assert isinstance(index.features, np.memmap)
    ivf = faiss.try_extract_index_ivf(index.index)
    if ivf is not None:  # the inverted lists stay in the file
        assert isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists)
    assert index.rescore == (10 if "PQ" in factory else 0)
    q = clustered_queries(40, person_centres(3000 // 8, 32))
    index.set_nprobe(16)  # every list: what is left of the error is the codes'
    scores, rows = index.search(q, 10)
    np.testing.assert_allclose(scores, np.einsum("qkd,qd->qk", index.vectors(rows.ravel()).reshape(40, 10, 32), q),
                               rtol=1e-4, atol=1e-4)  # exact scores of what is returned, best first
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    exact = exact_top(index.features, q, 10)
    assert recall_at_k(rows, exact) >= 0.99
    if index.rescore:  # product-quantised scores alone rank much worse
        index.rescore = 1
        assert recall_at_k(index.search(q, 10)[1], exact) < 0.8


def test_open_index_refuses_other_models_and_other_folders(model, gallery, tmp_path):
    with pytest.raises(IndexFolderError, match="not a tipr index folder"):
        open_index(gallery)
    out = tmp_path / "index"
    _index(model, gallery, out)
    with pytest.raises(IndexFolderError, match="built with the model test-model"):
        open_index(out, model_fingerprint="another@123")
    (out / "manifest.json").write_text("{")
    with pytest.raises(IndexFolderError, match="unreadable"):
        open_index(out)


# ---------------------------------------------------------------------------------------------- commands
@pytest.mark.parametrize("flags, error", [
    (["--gallery", "/no/such/gallery"], "gallery /no/such/gallery does not exist; pass a folder of images"),
    (["--index", "IVF64,Nope"], "faiss cannot build the index 'IVF64,Nope'.*pass a faiss factory string"),
    (["--model", "/no/such/model"], "model folder /no/such/model does not exist"),
])
def test_index_command_explains_bad_input(gallery, tmp_path, flags, error):
    from tipr.index.__main__ import main

    args = {"--model": str(MODEL), "--gallery": str(gallery), "--out": str(tmp_path / "index")}
    args.update(dict(zip(flags[::2], flags[1::2])))
    with pytest.raises(SystemExit, match=f"python -m tipr.index: error: {error}"):
        main([x for kv in args.items() for x in kv] + ["--num_workers", "0"])
    assert not (tmp_path / "index" / "shards").exists()  # refused before anything was embedded


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(cmd: list[str], timeout: int = 240) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its processes
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd[:4])} did not finish in {timeout} s:\n{err[-4000:]}")
    assert proc.returncode == 0, err[-4000:]
    return out + err


def test_two_processes_write_the_index_one_process_writes(synth, tmp_path):
    args = ["--model", str(MODEL), "--gallery", str(synth), "--num_workers", "0", "--shard_size", "3", "--cpu"]
    _run([sys.executable, "-m", "tipr.index", *args, "--out", str(tmp_path / "one")])
    log = _run([shutil.which("accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
                "-m", "tipr.index", *args, "--out", str(tmp_path / "two")])
    assert "process 1 embedded" in log and "process 0 embedded" in log
    one, two = open_index(tmp_path / "one"), open_index(tmp_path / "two")
    assert one.images == two.images and len(one) == len(list_gallery(synth).images)
    np.testing.assert_array_equal(one.features, two.features)
    np.testing.assert_array_equal(one.pids, two.pids)
    assert one.text.captions == two.text.captions and len(one.text.captions) > len(one)
    np.testing.assert_array_equal(one.text.caption_features, two.text.caption_features)
    assert one.search(one.features[:5], 3)[1].tolist() == two.search(two.features[:5], 3)[1].tolist()


def test_bench_index_runs_tiny(tmp_path):
    out = tmp_path / "bench.md"
    _run([sys.executable, "benchmarks/bench_index.py", "--synthetic_sizes", "600", "--real_images", "12",
          "--image_size", "64", "32", "--queries", "12", "--app_size", "0", "--work", str(tmp_path / "work"),
          "--out", str(out)])
    text = out.read_text()
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| S") or line.startswith("| s")]
    assert [r[1].strip() for r in rows] == ["600", "12"] and "python app.py" not in text  # the app: test_index_app
    assert all(float(r[5]) == 1.0 for r in rows)  # Flat at this size: exact
    assert all(0 < float(r[3]) <= float(r[4]) for r in rows)
    assert all(0 < float(r[7].split("(")[1].rstrip(") ")) for r in rows)  # CPU seconds to the first answer


@pytest.mark.parametrize("text,message", [
    ("{not json", r"cannot read a thing file .*x\.json: .*\. Do this"),
    ('{"format": "other/1", "items": []}', r'is not a thing file \(expected a JSON object with "format": "t/1" and'),
    ('{"format": "t/1", "items": {}}', r'and a "items" list'),
    ('[1, 2]', r"is not a thing file"),
])
def test_format_json_errors_say_what_is_wrong(tmp_path, text, message):
    from tipr.index.folder import read_format_json

    (tmp_path / "x.json").write_text(text)
    with pytest.raises(RuntimeError, match=message):
        read_format_json(tmp_path / "x.json", "t/1", "items", what="a thing file", error=RuntimeError, hint="Do this")


def test_format_json_reads_a_good_file(tmp_path):
    from tipr.index.folder import read_format_json

    (tmp_path / "x.json").write_text('{"format": "t/1", "items": [1, 2], "extra": true}')
    assert read_format_json(tmp_path / "x.json", "t/1", "items", what="a thing file") == {
        "format": "t/1", "items": [1, 2], "extra": True}
