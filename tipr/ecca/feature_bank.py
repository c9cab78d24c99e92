"""Whole-train-set image and text features for ECCA's neighbour search, refreshed without grad.

Images are indexed by image id (``TrainRecord.image_id``), texts by train-pair index. Availability follows
the partition modes (tipr.data.partition.Modality: 0 complete, 1 image missing, 2 text missing): a
text-missing pair contributes no text; an image is in the bank when some pair carries it (its mode is not
image-missing) or no pair points at it. Only a per-caption partition can give an image both an image-missing
and an image-carrying pair; the image then stays in the bank (tipr partitions per image, groups=image_ids).
Features are L2-normalised float32 on the CPU, computed without grad (not inference mode, so they can meet
tensors that require grad).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from tipr.ecca.hsng import hsng_neighbours, plain_neighbours

Tensor = torch.Tensor
_IMAGE_MISSING, _TEXT_MISSING = 1, 2
_MODALITIES = ("image", "text")
_METHODS = ("hsng", "plain", "oracle")


class FeatureBank:
    """Image features [num_images,d] and text features [num_pairs,d] (L2-normalised float32 on CPU).

    ``pair_image_ids[p]`` is pair p's image id; ``modes[p]`` its partition mode (None: all complete).
    Neighbour search runs through faiss-cpu, or with ``use_faiss=False`` as chunked torch products on
    ``search_device`` (e.g. "cuda"; default: where the features are, the CPU). ``faiss_index`` and
    ``faiss_params`` choose the faiss index (tipr.ecca.hsng.knn): exact "Flat" by default.
    ``pair_pids`` (identity of each pair) is read only by the diagnostic method "oracle".
    """

    def __init__(self, pair_image_ids: Sequence[int] | np.ndarray | Tensor,
                 modes: Sequence[int] | np.ndarray | Tensor | None = None, *, use_faiss: bool = True,
                 search_device: str | torch.device | None = None, faiss_index: str = "Flat",
                 faiss_params: str = "", pair_pids: Sequence[int] | np.ndarray | Tensor | None = None) -> None:
        self.pair_image_ids = torch.as_tensor(np.asarray(pair_image_ids), dtype=torch.long).reshape(-1)
        num_pairs = len(self.pair_image_ids)
        self.modes = (torch.zeros(num_pairs, dtype=torch.int8) if modes is None
                      else torch.as_tensor(np.asarray(modes)).to(torch.int8).reshape(-1))
        if len(self.modes) != num_pairs:
            raise ValueError(f"modes has {len(self.modes)} entries but pair_image_ids has {num_pairs}; pass one "
                             f"partition mode per train pair")
        if num_pairs and (self.pair_image_ids.min() < 0 or not torch.isin(self.modes, torch.tensor(
                [0, _IMAGE_MISSING, _TEXT_MISSING], dtype=torch.int8)).all()):
            raise ValueError("pair_image_ids must be >= 0 and modes 0 (complete), 1 (image missing) or 2 "
                             "(text missing)")
        self.pair_pids = None if pair_pids is None else torch.as_tensor(np.asarray(pair_pids)).long().reshape(-1)
        if self.pair_pids is not None and len(self.pair_pids) != num_pairs:
            raise ValueError(f"pair_pids has {len(self.pair_pids)} entries but pair_image_ids has {num_pairs}")
        self.use_faiss = use_faiss
        self.search = {"use_faiss": use_faiss, "index": faiss_index, "index_params": faiss_params}
        self.search_device = torch.device(search_device) if search_device is not None else None
        self.image_features: Tensor | None = None
        self.text_features: Tensor | None = None
        self.image_available = torch.zeros(0, dtype=torch.bool)
        self.text_available = self.modes != _TEXT_MISSING
        self.duplicates_dropped = 0
        self.search_seconds: dict[tuple, float] = {}
        self._counts: dict[str, Tensor] = {}
        self._tables: dict[tuple, Tensor] = {}

    @property
    def num_pairs(self) -> int:
        return len(self.pair_image_ids)

    def refresh(self, encode_image: Callable[[Tensor], Tensor], encode_text: Callable[[Tensor], Tensor],
                image_loader: Iterable[Mapping], text_loader: Iterable[Mapping], *,
                gather: Callable[[Tensor], Tensor] | None = None, num_images: int, num_texts: int) -> None:
        """Re-encode the train set without grad; loaders yield dicts with "index" and "image" / "text".

        ``encode_*`` map a batch to features [B,d] (normalised here). ``gather`` (e.g.
        ``accelerator.gather_for_metrics``) collects index and feature tensors from all ranks; indices seen
        twice (padding of the last batch) are kept once. Neighbour tables are recomputed on next request.
        """
        if num_texts != self.num_pairs:
            raise ValueError(f"num_texts={num_texts} but the bank was built for {self.num_pairs} train pairs")
        if self.num_pairs and int(self.pair_image_ids.max()) >= num_images:
            raise ValueError(f"pair_image_ids go up to {int(self.pair_image_ids.max())} but num_images="
                             f"{num_images}; pass the number of unique train images")
        self.duplicates_dropped = 0
        self.image_features, self._counts["image"] = self._encode(encode_image, image_loader, "image",
                                                                  num_images, gather)
        self.text_features, self._counts["text"] = self._encode(encode_text, text_loader, "text", num_texts,
                                                                gather)
        carried = torch.zeros(num_images, dtype=torch.bool)
        carried[self.pair_image_ids[self.modes != _IMAGE_MISSING]] = True
        referenced = torch.zeros(num_images, dtype=torch.bool)
        referenced[self.pair_image_ids] = True
        self.image_available = carried | ~referenced
        self._tables.clear()

    def _encode(self, encode: Callable, loader: Iterable[Mapping], key: str, size: int,
                gather: Callable | None) -> tuple[Tensor, Tensor]:
        feats: Tensor | None = None
        counts = torch.zeros(size, dtype=torch.long)
        with torch.no_grad():  # not inference_mode: bank rows later meet tensors that require grad
            for batch in loader:
                if "index" not in batch or key not in batch:
                    raise KeyError(f"the {key} loader must yield dicts with 'index' and '{key}', got keys "
                                   f"{sorted(batch)}")
                out = encode(batch[key])
                if not isinstance(out, torch.Tensor) or out.ndim != 2:
                    raise TypeError(f"encode_{key} must return a [B,d] tensor, got "
                                    f"{getattr(out, 'shape', type(out).__name__)}")
                out = F.normalize(out.detach().float(), dim=-1)
                index = torch.as_tensor(batch["index"]).to(out.device).long()
                if len(index) != len(out):
                    raise ValueError(f"encode_{key} returned {len(out)} rows for a batch of {len(index)}")
                if gather is not None:
                    index, out = gather(index), gather(out)
                index, out = index.cpu(), out.cpu()
                if len(index) and (index.min() < 0 or index.max() >= size):
                    raise IndexError(f"{key} index {int(index.max())} out of range for num_{key}s={size}")
                if feats is None:
                    feats = torch.zeros(size, out.shape[1])
                uniq, inverse = torch.unique(index, return_inverse=True)
                first = torch.full((len(uniq),), len(index)).scatter_reduce(
                    0, inverse, torch.arange(len(index)), reduce="amin")
                new = counts[uniq] == 0
                feats[uniq[new]] = out[first[new]]
                counts[uniq] += torch.bincount(inverse, minlength=len(uniq))
                self.duplicates_dropped += len(index) - int(new.sum())
        if feats is None:
            raise ValueError(f"the {key} loader yielded no batches")
        return feats, counts

    def coverage(self) -> dict[str, Tensor]:
        """How often the last refresh received each index ({"image": [num_images], "text": [num_pairs]}).

        1 everywhere is a complete bank; 0 is an index no loader yielded; above 1, an index several ranks or
        batches yielded (only its first feature is kept).
        """
        return {m: c.clone() for m, c in self._counts.items()}

    def features(self, modality: str, indices: Tensor) -> Tensor:
        """Bank rows: image features by image id, or text features by pair index."""
        self._check_ready(modality)
        return (self.image_features if modality == "image" else self.text_features)[torch.as_tensor(indices).cpu()]

    def neighbours_for(self, indices: Sequence[int] | Tensor, modality: str, *, k: int = 6, k_prime: int = 4,
                       method: str = "hsng") -> Tensor:
        """Bank indices [B,k'] completing the missing ``modality`` of train pairs ``indices``.

        modality "image": image ids for image-missing pairs; "text": pair indices (texts) for text-missing
        pairs. The table for all such pairs is computed once per refresh and (k, k', method). Method
        "oracle" is a diagnostic upper bound, not unsupervised: the k' nearest rows of the *same identity*
        (needs ``pair_pids``), then the nearest others where an identity has fewer than k'.
        """
        table = self._table(modality, k, k_prime, method)
        idx = torch.as_tensor(indices).long().cpu().reshape(-1)
        out = table[idx]
        bad = idx[out[:, 0] < 0]
        if len(bad):
            raise ValueError(f"train pairs {bad[:5].tolist()} do not miss their {modality}; ask only for rows "
                             f"with has_{modality} == False")
        return out

    def _check_ready(self, modality: str) -> None:
        if modality not in _MODALITIES:
            raise ValueError(f"modality must be 'image' or 'text', got {modality!r}")
        if self.image_features is None:
            raise RuntimeError("the feature bank is empty; call refresh(...) first")

    def _table(self, modality: str, k: int, k_prime: int, method: str) -> Tensor:
        self._check_ready(modality)
        if method not in _METHODS:
            raise ValueError(f"method must be one of {', '.join(_METHODS)}, got {method!r}")
        if method == "oracle" and self.pair_pids is None:
            raise ValueError("method 'oracle' reads identities: build the FeatureBank with pair_pids")
        key = (modality, k, k_prime, method)
        if key in self._tables:
            return self._tables[key]
        image_rows = self.image_available.nonzero().flatten()
        text_rows = self.text_available.nonzero().flatten()
        if modality == "image":
            pairs = (self.modes == _IMAGE_MISSING).nonzero().flatten()
            query_rows, query_counts = pairs, self._counts["text"]
            cross_rows, cross, own_rows, own = image_rows, self.image_features, text_rows, self.text_features
        else:
            pairs = (self.modes == _TEXT_MISSING).nonzero().flatten()
            query_rows, query_counts = self.pair_image_ids[pairs], self._counts["image"]
            cross_rows, cross, own_rows, own = text_rows, self.text_features, image_rows, self.image_features
        other = "text" if modality == "image" else "image"
        for what, rows, counts in ((f"queries ({other}s)", query_rows, query_counts),
                                   (f"available {modality}s", cross_rows, self._counts[modality]),
                                   (f"available {other}s", own_rows, self._counts[other])):
            missing = rows[counts[rows] == 0]
            if len(missing):
                raise RuntimeError(f"the last refresh did not encode {len(missing)} {what}, e.g. index "
                                   f"{missing[:5].tolist()}; the loaders must cover every train sample")
        start = time.perf_counter()
        query_rows, inverse = torch.unique(query_rows, return_inverse=True)  # pairs that share an image
        query = (self.text_features if modality == "image" else self.image_features)[query_rows]
        query, cross, own = (x.to(self.search_device) if self.search_device else x for x in (query, cross, own))
        if method == "hsng":
            found, _ = hsng_neighbours(query, cross[cross_rows], own[own_rows], k=k, k_prime=k_prime,
                                       **self.search)
        elif method == "plain":
            found, _ = plain_neighbours(query, cross[cross_rows], k_prime=k_prime, **self.search)
        else:
            found = self._oracle(query, query_rows, cross[cross_rows], cross_rows, modality, k_prime)
        self.search_seconds[key] = time.perf_counter() - start
        table = torch.full((self.num_pairs, k_prime), -1, dtype=torch.long)
        table[pairs] = cross_rows[found[inverse]]
        self._tables[key] = table
        return table

    def _oracle(self, query: Tensor, query_rows: Tensor, cross: Tensor, cross_rows: Tensor, modality: str,
                k_prime: int) -> Tensor:
        """Same-identity rows first, each group by descending cosine (a diagnostic that reads identities)."""
        image_pids = torch.full((int(self.pair_image_ids.max()) + 1,), -1, dtype=torch.long)
        image_pids[self.pair_image_ids] = self.pair_pids
        query_pids, cross_pids = ((self.pair_pids[query_rows], image_pids[cross_rows]) if modality == "image"
                                  else (image_pids[query_rows], self.pair_pids[cross_rows]))
        found = []
        for start in range(0, len(query), 4096):
            sims = query[start:start + 4096].float() @ cross.float().T
            same = (query_pids[start:start + 4096, None] == cross_pids[None, :]).to(sims.device)
            found.append(torch.topk(sims + 4.0 * same, k_prime, dim=1).indices.cpu())  # cosines lie in [-1, 1]
        return torch.cat(found) if found else torch.zeros(0, k_prime, dtype=torch.long)
