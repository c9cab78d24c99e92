"""The app on an index folder from `python -m tipr.index`: nothing embedded at start, the same features and
results as the app's own embedding, and no action reading the whole gallery per query."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tipr.app.gallery import load_or_build
from tipr.app.gallery_source import GalleryError
from tipr.generation.cache import model_fingerprint

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "assets" / "model"


@pytest.fixture(scope="module")
def model():
    from tipr.models.tipr_model import load_model

    return load_model(MODEL)


@pytest.fixture(scope="module")
def index_folder(synth, tmp_path_factory) -> Path:
    from tipr.index.__main__ import main

    out = tmp_path_factory.mktemp("index") / "synth-index"
    main(["--model", str(MODEL), "--gallery", synth, "--out", str(out), "--num_workers", "0", "--cpu"])
    return out


def _never(*_):
    raise AssertionError("an index folder must not be embedded again")


def _load(folder, fingerprint=None):
    return load_or_build(folder, model_fingerprint=fingerprint or model_fingerprint(MODEL), embed_images=_never,
                         embed_texts=_never, cache_dir="/nonexistent-cache")


def test_app_loads_an_index_folder_like_its_own_embedding(model, synth, index_folder, tmp_path):
    from tipr.app.encoder import Encoder

    loaded = _load(index_folder)
    encoder = Encoder(model)
    own = load_or_build(synth, model_fingerprint=model_fingerprint(MODEL), embed_images=encoder.images,
                        embed_texts=encoder.texts, cache_dir=tmp_path / "cache")
    assert loaded.source.image_paths == own.source.image_paths and loaded.source.image_pids == own.source.image_pids
    assert loaded.source.captions == own.source.captions and loaded.location == index_folder.resolve()
    # the app decodes gallery images capped at 512 px and tipr.index decodes them whole: same at these sizes
    np.testing.assert_allclose(loaded.vectors(range(len(loaded))), own.image_features, atol=2e-3)
    np.testing.assert_allclose(loaded.caption_features, own.caption_features, atol=1e-5)
    assert loaded.phrases == own.phrases
    queries = own.caption_features[:7]
    assert loaded.search(queries, 5)[1].tolist() == own.search(queries, 5)[1].tolist()


def test_an_index_of_another_model_is_refused(index_folder):
    with pytest.raises(GalleryError, match="was built with the model .* pass that model or build the index again"):
        _load(index_folder, "another-model@0123")


class _NoScan:
    """Image features that may be read a few rows at a time, never whole."""

    def __init__(self, array, limit=64):
        self.array, self.limit = array, limit
        self.shape, self.dtype = array.shape, array.dtype

    def __len__(self):
        return len(self.array)

    def __getitem__(self, rows):
        picked = np.asarray(self.array)[rows]
        if picked.ndim == 2 and len(picked) > self.limit:
            raise AssertionError(f"{len(picked)} gallery rows read at once")
        return picked

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole gallery was read")

    def __matmul__(self, other):
        raise AssertionError("the whole gallery was scored")


class _Imaginer:
    available, error = True, None

    def imagine(self, text, *, seed=0, steps=None):
        return Image.new("RGB", (32, 64), "red")


@pytest.mark.parametrize("within", [1000, 2])
def test_no_action_scans_the_gallery_and_ranks_stay_bounded(model, index_folder, monkeypatch, within):
    import tipr.app.completion as completion
    import tipr.app.ranks as ranks
    from tipr.app.encoder import Encoder
    from tipr.app.handlers import move_label
    from tipr.app.search import Searcher

    monkeypatch.setattr(ranks, "RANK_WITHIN", within)
    index = _load(index_folder)
    features = index.vectors(range(len(index)))
    index.image_features = _NoScan(index.image_features)
    searcher = Searcher(Encoder(model), index, _Imaginer())

    hits = searcher.search("a man in a red jacket", k=3).hits
    assert [h.rank for h in hits] == [1, 2, 3] and all(Path(h.path).is_file() for h in hits)
    cmp = searcher.compare("a man in a red jacket", k=3)
    plain = searcher.encoder.query("a man in a red jacket")[0]
    before = features @ plain
    exact = [int((before > before[h.row]).sum()) + 1 for h in cmp.with_]
    assert cmp.moves == [r if r <= within else None for r in exact]
    assert all(m is not None for m in cmp.moves) or move_label(None, 1).endswith(f">{within}")

    row = 2
    done = completion.complete_image(index, features[row], row=row, k=3, k_prime=2)
    probe = index.caption_features[int(np.argmax(index.caption_features @ features[row]))]
    scores = features @ probe
    exact_without = int((np.delete(scores, row) > scores[row]).sum()) + 1
    assert done.rank_without == (exact_without if exact_without <= within else None)
    assert done.gallery_size == len(index)
    outside = completion.complete_image(index, features[0] * 0.5 + features[1] * 0.5, row=None, k=3, k_prime=2)
    assert outside.gallery_size == len(index) + 1 and len(outside.neighbours) == 2


def test_hsng_on_the_nearby_images_equals_hsng_on_the_whole_gallery(model, index_folder):
    import torch

    from tipr.app.completion import complete_image
    from tipr.ecca import hsng_neighbours

    index = _load(index_folder)
    features = index.vectors(range(len(index)))
    for row in range(len(index)):
        v = features[row] / np.linalg.norm(features[row])
        whole, _ = hsng_neighbours(torch.from_numpy(v[None]), torch.from_numpy(index.caption_features),
                                   torch.from_numpy(features), k=4, k_prime=3)
        assert complete_image(index, features[row], row=row, k=4, k_prime=3).neighbours == whole[0].tolist()


@pytest.mark.slow
def test_app_serves_an_index_folder(index_folder):
    """python app.py --gallery INDEX_FOLDER answers text searches through its API (what bench_index times)."""
    pytest.importorskip("gradio_client")
    from tipr.index.benchmark import app_first_answer

    served = app_first_answer(index_folder, str(MODEL), queries=["a woman in a blue coat", "a man with a backpack",
                                                                 "black trousers and white shoes"])
    assert 0 < served["first_answer_cpu_s"] and 0 < served["first_answer_s"] < 300
    assert 0 < served["p50_ms"] <= served["p95_ms"] and served["rss_mb"] > 100


def test_app_reads_list_files_and_refuses_other_files(synth, tmp_path):
    from tipr.app.gallery_source import read_source

    images = sorted((Path(synth) / "imgs").rglob("*.png"))[:3]
    listing = tmp_path / "gallery.txt"
    listing.write_text(f"# three crops\n{images[0]}\t5\n{os.path.relpath(images[2], tmp_path)}\n")
    source = read_source(listing)
    assert source.kind == "list file" and source.image_paths == [str(images[0]), str(images[2])]
    assert source.image_pids == [5, -1] and source.captions == []
    with pytest.raises(GalleryError, match="is not a list file"):
        read_source(images[1])
