import pytest
import torch
import torch.nn.functional as F

from tipr.ecca.feature_bank import FeatureBank
from tipr.ecca.hsng import hsng_neighbours, plain_neighbours

NUM_IMAGES, DIM = 15, 8
PAIR_IMAGE_IDS = [p // 2 for p in range(2 * NUM_IMAGES)]  # two captions per image, as in CUHK-PEDES
# pairs 0,1 (image 0) both image-missing -> image 0 unavailable; pair 2 image-missing but pair 3 carries
# image 1 -> image 1 stays; pairs 4,5,20,25 text-missing.
MODES = [1, 1, 1, 0, 2, 2] + [0, 1] * 7 + [2, 0, 0, 0, 0, 2, 0, 0, 0, 0]
G = torch.Generator().manual_seed(0)
IMAGE_FEATS = torch.randn(NUM_IMAGES, DIM, generator=G)
TEXT_FEATS = torch.randn(2 * NUM_IMAGES, DIM, generator=G)


def batches(key, feats, indices, batch_size):
    # the "encoder" is a lookup: each batch carries the rows of the feature table it stands for
    return [{"index": torch.tensor(indices[i:i + batch_size]), key: feats[indices[i:i + batch_size]]}
            for i in range(0, len(indices), batch_size)]


def lookup_encoder(x):
    return x * 3.0  # unnormalised on purpose


def two_ranks(key, feats, n, batch_size=2):
    """Rank 0's batches, and rank 1's (index, normalised feature) tensors in the order a gather meets them.

    Like accelerate's even_batches, the samples are padded from the start to a multiple of 2 * batch_size.
    """
    padded = list(range(n)) + list(range((-n) % (2 * batch_size)))
    rank1 = batches(key, feats, padded[1::2], batch_size)
    return batches(key, feats, padded[0::2], batch_size), [
        t for b in rank1 for t in (b["index"], F.normalize(lookup_encoder(b[key]), dim=-1))]


@pytest.fixture(scope="module")
def bank():
    bank = FeatureBank(PAIR_IMAGE_IDS, MODES, use_faiss=True)
    bank.refresh(lookup_encoder, lookup_encoder, batches("image", IMAGE_FEATS, list(range(NUM_IMAGES)), 4),
                 batches("text", TEXT_FEATS, list(range(2 * NUM_IMAGES)), 4), num_images=NUM_IMAGES,
                 num_texts=2 * NUM_IMAGES)
    return bank


def test_two_rank_gather_covers_every_sample_once(bank):
    sharded = FeatureBank(PAIR_IMAGE_IDS, MODES)
    image_loader, image_rank1 = two_ranks("image", IMAGE_FEATS, NUM_IMAGES)
    text_loader, text_rank1 = two_ranks("text", TEXT_FEATS, 2 * NUM_IMAGES)
    rank1 = image_rank1 + text_rank1

    def gather(tensor):  # a plain all-gather seen from rank 0: padding duplicates are still there
        return torch.cat([tensor, rank1.pop(0)])

    sharded.refresh(lookup_encoder, lookup_encoder, image_loader, text_loader, gather=gather, num_images=NUM_IMAGES,
                    num_texts=2 * NUM_IMAGES)
    assert not rank1
    cov = sharded.coverage()
    assert cov["image"].min() == 1 and cov["text"].min() == 1  # every sample encoded
    assert sharded.duplicates_dropped == 1 + 2  # 15 images padded to 16, 30 texts padded to 32
    assert (cov["image"] - 1).sum() == 1 and (cov["text"] - 1).sum() == 2  # coverage counts the padding
    assert torch.allclose(sharded.image_features, F.normalize(IMAGE_FEATS, dim=-1))
    assert torch.allclose(sharded.text_features, bank.text_features)


def test_availability(bank):
    assert bank.image_available.tolist() == [False] + [True] * (NUM_IMAGES - 1)
    assert (~bank.text_available).nonzero().flatten().tolist() == [4, 5, 20, 25]


@pytest.mark.parametrize("method", ["hsng", "plain"])
def test_neighbours_match_hsng_on_available_rows(bank, method):
    images = torch.arange(1, NUM_IMAGES)
    texts = torch.tensor([p for p in range(2 * NUM_IMAGES) if p not in (4, 5, 20, 25)])
    img_feats, txt_feats = F.normalize(IMAGE_FEATS, dim=-1), F.normalize(TEXT_FEATS, dim=-1)

    image_missing = torch.tensor([0, 1, 2, 7, 9])
    got = bank.neighbours_for(image_missing, "image", k=4, k_prime=3, method=method)
    if method == "hsng":
        want, _ = hsng_neighbours(txt_feats[image_missing], img_feats[images], txt_feats[texts], k=4, k_prime=3)
    else:
        want, _ = plain_neighbours(txt_feats[image_missing], img_feats[images], k_prime=3)
    assert torch.equal(got, images[want]) and not (got == 0).any()  # image 0 is withheld

    text_missing = torch.tensor([20, 4, 5])
    got = bank.neighbours_for(text_missing, "text", k=4, k_prime=3, method=method)
    query = img_feats[torch.tensor([10, 2, 2])]
    if method == "hsng":
        want, _ = hsng_neighbours(query, txt_feats[texts], img_feats[images], k=4, k_prime=3)
    else:
        want, _ = plain_neighbours(query, txt_feats[texts], k_prime=3)
    assert torch.equal(got, texts[want]) and torch.equal(got[1], got[2])  # pairs 4, 5 share image 2
    assert ("text", 4, 3, method) in bank.search_seconds


def test_dense_search_matches_faiss(bank):
    dense = FeatureBank(PAIR_IMAGE_IDS, MODES, use_faiss=False, search_device="cpu")
    dense.refresh(lookup_encoder, lookup_encoder, batches("image", IMAGE_FEATS, list(range(NUM_IMAGES)), 8),
                  batches("text", TEXT_FEATS, list(range(2 * NUM_IMAGES)), 8), num_images=NUM_IMAGES,
                  num_texts=2 * NUM_IMAGES)
    for modality, pairs in (("image", [0, 1, 2, 7]), ("text", [4, 5, 20, 25])):
        assert torch.equal(dense.neighbours_for(pairs, modality, k=5, k_prime=4),
                           bank.neighbours_for(pairs, modality, k=5, k_prime=4))


def test_errors(bank):
    with pytest.raises(ValueError, match="do not miss their image"):
        bank.neighbours_for([0, 3], "image")
    with pytest.raises(RuntimeError, match="refresh"):
        FeatureBank(PAIR_IMAGE_IDS, MODES).neighbours_for([0], "image")
    partial = FeatureBank(PAIR_IMAGE_IDS, MODES)
    partial.refresh(lookup_encoder, lookup_encoder, batches("image", IMAGE_FEATS, list(range(NUM_IMAGES - 1)), 4),
                    batches("text", TEXT_FEATS, list(range(2 * NUM_IMAGES)), 4), num_images=NUM_IMAGES,
                    num_texts=2 * NUM_IMAGES)
    with pytest.raises(RuntimeError, match="did not encode 1 available images"):
        partial.neighbours_for([0], "image", k=4, k_prime=2)


@pytest.mark.parametrize("modality", ["image", "text"])
def test_oracle_neighbours_are_same_identity_first(modality):
    pids = [image_id // 3 for image_id in PAIR_IMAGE_IDS]  # three images (six pairs) per identity
    oracle = FeatureBank(PAIR_IMAGE_IDS, MODES, pair_pids=pids)
    oracle.refresh(lookup_encoder, lookup_encoder, batches("image", IMAGE_FEATS, list(range(NUM_IMAGES)), 4),
                   batches("text", TEXT_FEATS, list(range(2 * NUM_IMAGES)), 4), num_images=NUM_IMAGES,
                   num_texts=2 * NUM_IMAGES)
    missing_mode = 1 if modality == "image" else 2
    queries = torch.tensor([p for p, m in enumerate(MODES) if m == missing_mode])
    rows = oracle.neighbours_for(queries, modality, k_prime=2, method="oracle")
    pool_pid = torch.tensor(pids)[::2] if modality == "image" else torch.tensor(pids)
    available = oracle.image_available if modality == "image" else oracle.text_available
    own = torch.tensor(pids)[queries]
    for query, found in zip(own, pool_pid[rows]):
        same_left = int((pool_pid[available] == query).sum())
        # every available row of the same identity comes before any other row
        assert found.tolist()[:min(2, same_left)] == [int(query)] * min(2, same_left)
    assert bool(available[rows].all())


def test_oracle_needs_identities(bank):
    with pytest.raises(ValueError, match="pair_pids"):
        bank.neighbours_for([0], "image", method="oracle")
