from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from tipr.data import ImageList, TrainPairs, TrainRecord, build_transform, partition_pairs
from tipr.data.datasets import CaptionList
from tipr.models.tipr_model import TIPRModel
from tipr.ecca import ECCAConfig
from tipr.objectives import ECCAObjective, build_objective

COLOURS = ["red", "blue", "green", "black", "white", "yellow"]
SMALL_ECCA = dict(num_prototypes_s=8, fusion_heads=2, num_unified_prototypes=8, k=3, k_prime=2)
SMALL_GEA = dict(tgte_heads=2, gif_heads=2, gif_layers=1, gif_hard_negatives=2)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    out = []
    for image_id in range(12):
        path = folder / f"{image_id}.png"
        Image.fromarray(rng.integers(0, 255, (32, 16, 3), dtype=np.uint8)).save(path)
        for j in range(2):
            caption = f"a person in a {COLOURS[image_id % 6]} coat and {COLOURS[(image_id + j) % 6]} trousers"
            out.append(TrainRecord(pid=image_id // 2, image_id=image_id, image_path=str(path), caption=caption))
    return out


def make_model(method, **ecca):
    torch.manual_seed(0)
    return TIPRModel(method=method, backbone=dict(name="tipr-tiny", pretrained=None, image_size=[64, 32]),
                     ecca=(SMALL_ECCA | ecca) if "ecca" in method else None,
                     gea=SMALL_GEA if "gea" in method else None)


def batch_of(model, records, partition, supervised, size=12, generated=False):
    pairs = TrainPairs(records, transform=build_transform((64, 32), train=False), tokenize=model.tokenize,
                       partition=partition, supervised=supervised)
    batch = next(iter(DataLoader(pairs, batch_size=size, shuffle=False)))
    if generated:
        batch["generated"] = torch.randn(len(batch["index"]), 3, 64, 32)
        batch["has_generated"] = torch.ones(len(batch["index"]), dtype=torch.bool)
    return batch


def refresh(objective, model, records):
    transform = build_transform((64, 32), train=False)
    paths = sorted({r.image_id: r.image_path for r in records}.items())
    images = [{"index": i, "image": x} for i, x in enumerate(ImageList([p for _, p in paths], transform))]
    texts = [{"index": i, "text": t} for i, t in enumerate(CaptionList([r.caption for r in records], model.tokenize))]
    objective.refresh(model, image_loader=DataLoader(images, batch_size=8), text_loader=DataLoader(texts, batch_size=8))


@pytest.mark.parametrize("method,supervised,setting,expected", [
    ("clip", False, "full", {"infonce"}),
    ("clip", True, "medium", {"tal"}),
    ("gea", True, "full", {"tal", "gif"}),
    ("ecca", False, "medium", {"wiga", "epga", "fmc"}),
    ("ecca+gea", False, "easy", {"wiga", "epga", "fmc", "gif"}),
])
def test_each_method_trains(records, tmp_path, method, supervised, setting, expected):
    model = make_model(method).train()
    partition = partition_pairs(len(records), setting, seed=1, groups=[r.image_id for r in records])
    objective = build_objective(model, records=records, partition=partition, supervised=supervised,
                                cache_dir=tmp_path)
    if objective.requires_bank:
        refresh(objective, model, records)
        assert objective.bank.coverage()["text"].tolist() == [1] * len(records)
    batch = batch_of(model, records, partition, supervised, size=24, generated=objective.requires_generated)
    losses = objective(model, batch)
    assert set(losses) == expected | {"loss"}
    assert torch.isfinite(losses["loss"])
    c, g = model.ecca_config, model.gea_config
    weights = {"wiga": c and c.w_wiga, "epga": c and c.w_epga, "fmc": c and c.w_fmc, "gif": g and g.w_gif}
    weights |= {"tal": g.w_tal if g else 1.0, "infonce": 1.0}
    assert losses["loss"].item() == pytest.approx(sum(weights[k] * v.item() for k, v in losses.items()
                                                      if k != "loss"), rel=1e-5)
    losses["loss"].backward()
    assert model.backbone.clip.visual.conv1.weight.grad.abs().sum() > 0
    assert model.backbone.clip.token_embedding.weight.grad.abs().sum() > 0


def test_ecca_without_fmc_uses_complete_pairs_only(records, tmp_path):
    model = make_model("ecca", use_fmc=False, use_wiga_weights=False, use_epga=False)
    partition = partition_pairs(len(records), "medium", seed=1, groups=[r.image_id for r in records])
    objective = build_objective(model, records=records, partition=partition, cache_dir=tmp_path)
    assert not objective.requires_bank
    batch = batch_of(model, records, partition, False, size=24)
    complete = batch["has_image"] & batch["has_text"]
    with torch.no_grad():
        got = objective(model, batch)["wiga"]
        img = model.encode_images(batch["image"][complete])
        txt = model.encode_texts(batch["text"][complete])
    from tipr.losses import info_nce, same_image_mask

    siblings = same_image_mask(torch.tensor([records[i].image_id for i in batch["index"][complete]]))
    assert siblings.any()  # the fixture's images have two captions each
    assert got.item() == pytest.approx(info_nce(img, txt, 0.02, exclude=siblings).item(), rel=1e-5)
    assert got.item() != pytest.approx(info_nce(img, txt, 0.02).item(), rel=1e-3)


def test_infonce_baseline_leaves_siblings_out(records, tmp_path):
    from tipr.losses import info_nce, same_image_mask

    model = make_model("clip")
    objective = build_objective(model, records=records, supervised=False, loss="infonce")
    batch = batch_of(model, records, None, False, size=10)
    with torch.no_grad():
        got = objective(model, batch)["infonce"]
        img, txt = model.encode_images(batch["image"]), model.encode_texts(batch["text"])
    siblings = same_image_mask(torch.tensor([records[i].image_id for i in batch["index"]]))
    assert got.item() == pytest.approx(info_nce(img, txt, 0.02, exclude=siblings).item(), rel=1e-5)


def test_ecca_refuses_labels(records):
    with pytest.raises(ValueError, match="without identity labels"):
        build_objective(make_model("ecca"), records=records, supervised=True)


@pytest.mark.parametrize("drop", ["has_image", "has_text"])
def test_ecca_batch_missing_a_whole_side(records, tmp_path, drop):
    model = make_model("ecca")
    partition = partition_pairs(len(records), "medium", seed=1, groups=[r.image_id for r in records])
    objective = build_objective(model, records=records, partition=partition, cache_dir=tmp_path)
    refresh(objective, model, records)
    batch = batch_of(model, records, partition, False, size=24)
    other = "has_text" if drop == "has_image" else "has_image"
    keep = batch[other].bool() & ~batch[drop].bool()  # only the samples that miss `drop`
    batch = {k: (v[keep] if torch.is_tensor(v) else v) for k, v in batch.items()}
    losses = objective(model, batch)
    assert torch.isfinite(losses["loss"]) and "fmc" in losses


@pytest.mark.parametrize("knn_index,oracle", [("torch", False), ("Flat", True)])
def test_ecca_neighbour_search_options(records, tmp_path, knn_index, oracle):
    partition = partition_pairs(len(records), "medium", seed=1, groups=[r.image_id for r in records])
    tables = {}
    for index in ("Flat", knn_index):
        model = make_model("ecca", knn_index=index)
        objective = build_objective(model, records=records, partition=partition, cache_dir=tmp_path,
                                    oracle_neighbours=oracle and index == knn_index)
        refresh(objective, model, records)
        missing = torch.from_numpy(partition.indices(1))
        tables[index, objective.neighbour_method] = objective.bank.neighbours_for(
            missing, "image", k=3, k_prime=2, method=objective.neighbour_method)
    if knn_index == "torch":  # exact dense products on the model's device find what exact faiss finds
        assert objective.bank.search_device == torch.device("cpu") and not objective.bank.use_faiss
        assert torch.equal(tables["Flat", "hsng"], tables["torch", "hsng"])
    else:  # the oracle's first neighbour is an image of the same person wherever one is available
        pid = {r.image_id: r.pid for r in records}
        shown = {pid[int(i)] for i in objective.bank.image_available.nonzero()[:, 0]}
        wanted = [records[int(p)].pid for p in missing]
        got = [pid[int(i)] for i in tables["Flat", "oracle"][:, 0]]
        assert any(w in shown for w in wanted)
        assert [g for g, w in zip(got, wanted) if w in shown] == [w for w in wanted if w in shown]


def test_oracle_neighbours_only_for_ecca(records):
    with pytest.raises(ValueError, match="completes nothing"):
        build_objective(make_model("clip"), records=records, oracle_neighbours=True)


@pytest.mark.parametrize("weight,warmup,epoch,complete,expected,scale", [
    (1.0, 0, 0, [1, 0, 0], None, 1.0),  # the paper: completed pairs like complete ones
    (0.25, 0, 0, [1, 0, 1], [1.0, 0.25, 1.0], 1.0),
    (1.0, 3, 2, [1, 0, 0], [1.0, 0.0, 0.0], 1.0),  # still warming up
    (1.0, 3, 3, [1, 0, 0], None, 1.0),
    (0.5, 3, 7, [0, 1, 0], [0.5, 1.0, 0.5], 1.0),
    (0.0, 0, 5, [1, 1], None, 1.0),  # nothing completed
    (0.0, 0, 5, [0, 0], None, 0.0),  # nothing weighs: WIGA and EPGA sit this batch out
])
def test_row_weights_over_training(weight, warmup, epoch, complete, expected, scale):
    objective = SimpleNamespace(config=ECCAConfig(completed_weight=weight, completion_warmup_epochs=warmup),
                                epoch=epoch)
    rows, got_scale = ECCAObjective._row_weights(objective, torch.tensor(complete, dtype=torch.bool))
    assert (None if rows is None else rows.tolist()) == expected
    assert got_scale == scale


def test_warm_up_trains_like_weight_zero_then_like_the_paper(records, tmp_path):
    partition = partition_pairs(len(records), "medium", seed=1, groups=[r.image_id for r in records])

    def losses(epoch, **ecca):
        model = make_model("ecca", **ecca)
        objective = build_objective(model, records=records, partition=partition, cache_dir=tmp_path)
        refresh(objective, model, records)
        objective.set_epoch(epoch)
        with torch.no_grad():
            return objective(model, batch_of(model, records, partition, False, size=24))

    warming, after = losses(1, completion_warmup_epochs=2), losses(2, completion_warmup_epochs=2)
    zero, paper = losses(1, completed_weight=0.0), losses(2)
    for key in ("wiga", "epga", "fmc", "loss"):
        assert warming[key].item() == pytest.approx(zero[key].item(), rel=1e-5)
        assert after[key].item() == pytest.approx(paper[key].item(), rel=1e-5)
    assert warming["wiga"].item() != pytest.approx(after["wiga"].item(), rel=1e-3)
