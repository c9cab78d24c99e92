"""Training objectives: what each method computes from a batch of train pairs.

An objective turns a TrainPairs batch (plus GEA's generated images) into a dict of scalar losses whose
"loss" entry is the total. The losses themselves are the plain functions of tipr.losses, tipr.ecca and
tipr.gea; this module only decides which rows and features meet which loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from tipr.data import Partition, TrainRecord
from tipr.ecca.config import ECCAConfig
from tipr.gea.config import GEAConfig
from tipr.models.backbone import Features
from tipr.models.method import Method
from tipr.models.tipr_model import TIPRModel

Tensor = torch.Tensor
LOSSES = ("infonce", "tal")


def _rows(batch: Mapping, keep: Tensor) -> dict:
    return {k: (v[keep] if isinstance(v, Tensor) and v.ndim and len(v) == len(keep) else v) for k, v in batch.items()}


def _image_ids(records: Sequence[TrainRecord]) -> Tensor | None:
    """The image id of every train pair: which captions share an image (known without identities)."""
    return torch.tensor([r.image_id for r in records], dtype=torch.long) if records else None


def _siblings(pair_image_ids: Tensor | None, batch: Mapping) -> Tensor | None:
    """[B, B] True where two rows of the batch are captions of one image (None when the ids are unknown)."""
    from tipr.losses import same_image_mask

    if pair_image_ids is None:
        return None
    return same_image_mask(pair_image_ids[torch.as_tensor(batch["index"]).long().cpu()])


class Objective:
    """Base: no feature bank, no generated images."""

    requires_bank = False
    requires_generated = False
    uses_incomplete_pairs = False  # whether samples missing a modality contribute to the loss
    epoch = 0  # the training epoch, for objectives whose loss changes over training

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop before each epoch (after a resume too)."""
        self.epoch = epoch

    def refresh(self, model: TIPRModel, *, image_loader: Iterable[Mapping], text_loader: Iterable[Mapping],
                gather: Callable[[Tensor], Tensor] | None = None) -> None:
        """Recompute whatever the objective reads from the whole train set (nothing by default)."""

    def __call__(self, model: TIPRModel, batch: Mapping) -> dict[str, Tensor]:
        raise NotImplementedError

    # shared helpers
    @staticmethod
    def _generated(model: TIPRModel, batch: Mapping) -> tuple[Features | None, Tensor | None]:
        if not model.uses_generated_images or "generated" not in batch:
            return None, None
        return model.generated_features(batch["generated"]), batch["has_generated"].bool()

    @staticmethod
    def _gif_loss(model: TIPRModel, txt: Tensor, img: Tensor, txt_raw: Features, img_raw: Features,
                  gen: Features | None, has_gen: Tensor | None, pids: Tensor | None) -> Tensor | None:
        """GIF's fusion score trained with TAL on complete pairs (rows of the given tensors)."""
        if model.gif is None or len(txt) < 2:
            return None
        from tipr.gea.gif import gif_loss

        c = model.gea_config
        gen_mask = None if gen is None else gen.mask & has_gen[:, None]
        return gif_loss(model.gif, txt_raw.tokens, txt_raw.mask, None if gen is None else gen.tokens,
                        img_raw.tokens, (txt @ img.t()).detach(), pids, num_negatives=c.gif_hard_negatives,
                        tau=c.tal_tau, margin=c.tal_margin, gen_mask=gen_mask)


class ContrastiveObjective(Objective):
    """Two-tower alignment on complete pairs: InfoNCE or TAL (the CLIP baseline and GEA).

    With GEA heads the query feature is TGTE's enhanced text feature and GIF's fusion score adds its own
    TAL term. `supervised` lets TAL treat every pair of an identity as positive; otherwise only the own pair.
    InfoNCE leaves two captions of one image out of each other's negatives when `records` give the image ids.
    """

    def __init__(self, model: TIPRModel, *, loss: str, supervised: bool, tau: float, margin: float = 0.0,
                 records: Sequence[TrainRecord] = ()):
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
        self.loss, self.supervised, self.tau, self.margin = loss, supervised, tau, margin
        self.pair_image_ids = _image_ids(records)
        self.requires_generated = model.uses_generated_images

    def __call__(self, model: TIPRModel, batch: Mapping) -> dict[str, Tensor]:
        from tipr.gea.tal import tal_loss
        from tipr.losses import info_nce

        batch = _rows(batch, batch["has_image"].bool() & batch["has_text"].bool())
        if len(batch["text"]) < 2:
            raise ValueError("a batch needs at least two complete image-text pairs; raise the batch size")
        gen, has_gen = self._generated(model, batch)
        img, img_raw = model.image_features(batch["image"])
        txt, txt_raw = model.text_features(batch["text"], gen, has_gen)
        img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
        pids = batch["pid"] if self.supervised else None
        if self.loss == "tal":
            losses = {"tal": tal_loss(img, txt, pids, tau=self.tau, margin=self.margin)}
        else:
            losses = {"infonce": info_nce(img, txt, self.tau, exclude=_siblings(self.pair_image_ids, batch))}
        total = losses[self.loss]
        if model.gea_config is not None:
            total = model.gea_config.w_tal * total
        gif = self._gif_loss(model, txt, img, txt_raw, img_raw, gen, has_gen, pids)
        if gif is not None:
            losses["gif"] = gif
            total = total + model.gea_config.w_gif * gif
        return {"loss": total, **losses}


class ECCAObjective(Objective):
    """ECCA (eq. 25): WIGA + EPGA + FMC, without identity labels, on partially missing pairs.

    Each sample missing a modality gets a completed feature from FMC over the HSNG neighbours that the
    feature bank holds (bank features are fixed between refreshes; gradients reach the sample's own
    feature). Completed samples then take part in WIGA and EPGA, as anchors weighted by ``completed_weight``
    (0 during ``completion_warmup_epochs``) and always as negatives of the others. With FMC off, samples
    missing a modality are left out. With GEA heads (ECCA+GEA), a text whose image is missing adds its
    generated image's feature as an extra FMC node, and GIF's score is trained on the complete pairs.
    The bank's text features are encoded without TGTE: neighbour search needs the shared joint space only.
    ``oracle_neighbours`` completes from same-identity neighbours instead of HSNG's: a diagnostic upper
    bound for ablations that reads the records' identities, so the run is no longer unsupervised.
    """

    def __init__(self, model: TIPRModel, *, records: Sequence[TrainRecord], partition: Partition | None,
                 cache_dir: str | Path | None = None, oracle_neighbours: bool = False):
        from tipr.data.text_context import seen_texts
        from tipr.ecca import FeatureBank, PhraseIndex, extract_noun_phrases

        if model.ecca_config is None:
            raise ValueError(f"model method {model.method!r} has no ECCA heads; build it with method 'ecca'")
        self.config = model.ecca_config
        modes = partition.modes if partition is not None else None
        incomplete = modes is not None and bool((modes != 0).any())
        self.requires_bank = self.uses_incomplete_pairs = self.config.use_fmc and incomplete
        self.requires_generated = model.uses_generated_images
        dense = self.config.knn_index == "torch"
        self.bank = FeatureBank([r.image_id for r in records], modes, use_faiss=not dense,
                                faiss_index="Flat" if dense else self.config.knn_index,
                                faiss_params=self.config.knn_params,
                                pair_pids=[r.pid for r in records] if oracle_neighbours else None)
        self.neighbour_method = ("oracle" if oracle_neighbours else
                                 "hsng" if self.config.use_hsng else "plain")
        self.num_images = max((r.image_id for r in records), default=-1) + 1
        self.pair_image_ids = _image_ids(records)
        cache = Path(cache_dir) / "noun_phrases.json" if cache_dir is not None else None
        seen = seen_texts(model.backbone.tokenizer, [r.caption for r in records])  # the words the encoder reads
        self.phrases = (PhraseIndex(extract_noun_phrases(seen, cache_path=cache))
                        if self.config.use_wiga_weights else None)

    def refresh(self, model: TIPRModel, *, image_loader: Iterable[Mapping], text_loader: Iterable[Mapping],
                gather: Callable[[Tensor], Tensor] | None = None) -> None:
        if not self.requires_bank:
            return
        if not self.bank.use_faiss:  # knn_index "torch": search where the model is (a GPU when there is one)
            self.bank.search_device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            self.bank.refresh(model.encode_images, model.encode_texts, image_loader, text_loader, gather=gather,
                              num_images=self.num_images, num_texts=self.bank.num_pairs)
        finally:
            model.train(was_training)

    def _complete(self, anchor: Tensor, indices: Tensor, missing: str,
                  extra: Tensor | None = None, extra_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        from tipr.ecca import fmc_complete, fmc_loss

        c = self.config
        rows = self.bank.neighbours_for(indices, missing, k=c.k, k_prime=c.k_prime, method=self.neighbour_method)
        neighbours = self.bank.features(missing, rows).to(anchor.device)
        completed, _ = fmc_complete(anchor, neighbours, extra_nodes=extra, extra_mask=extra_mask,
                                    temperature=c.fmc_temperature)
        return F.normalize(completed, dim=-1), fmc_loss(completed, anchor)

    def _row_weights(self, complete: Tensor) -> tuple[Tensor | None, float]:
        """Each pair's weight as an anchor (1 complete, ``completed_weight`` completed, 0 in the warm-up), and
        the scale of WIGA and EPGA (0 for a batch where every pair weighs 0)."""
        c = self.config
        weight = c.completed_weight if self.epoch >= c.completion_warmup_epochs else 0.0
        if bool(complete.all()) or weight == 1.0:
            return None, 1.0
        rows = torch.where(complete, 1.0, weight).to(complete.device)
        return (rows, 1.0) if bool(rows.any()) else (None, 0.0)

    def __call__(self, model: TIPRModel, batch: Mapping) -> dict[str, Tensor]:
        from tipr.ecca import epga_loss, wiga_loss

        c = self.config
        has_img, has_txt = batch["has_image"].bool(), batch["has_text"].bool()
        if not c.use_fmc:  # incomplete samples cannot take part without completion
            batch = _rows(batch, has_img & has_txt)
            has_img, has_txt = batch["has_image"].bool(), batch["has_text"].bool()
        index = batch["index"]
        if not torch.is_tensor(index):
            index = torch.as_tensor(index)
        size = len(index)
        if size < 2:
            raise ValueError("a batch needs at least two usable pairs; raise the batch size")
        gen, has_gen = self._generated(model, batch)

        # encode only what exists; a batch may lack every image or every text of a side
        img_part, img_raw = model.image_features(batch["image"][has_img]) if has_img.any() else (None, None)
        txt_part = txt_raw = None
        if has_txt.any():
            gen_txt = None if gen is None else Features(*(t[has_txt] for t in gen))
            txt_part, txt_raw = model.text_features(batch["text"][has_txt], gen_txt,
                                                    None if has_gen is None else has_gen[has_txt])
        ref = img_part if img_part is not None else txt_part
        img = ref.new_zeros(size, ref.shape[-1])
        txt = ref.new_zeros(size, ref.shape[-1])
        if img_part is not None:
            img = img.index_put((has_img.nonzero()[:, 0],), F.normalize(img_part, dim=-1))
        if txt_part is not None:
            txt = txt.index_put((has_txt.nonzero()[:, 0],), F.normalize(txt_part, dim=-1))

        losses: dict[str, Tensor] = {}
        fmc_terms = []
        text_only, image_only = has_txt & ~has_img, has_img & ~has_txt
        if text_only.any():
            extra = extra_mask = None
            if gen is not None:  # ECCA+GEA: the generated image is one more node of the graph
                gen_feat = F.normalize(model.fuse(Features(*(t[text_only] for t in gen))), dim=-1)
                extra, extra_mask = gen_feat[:, None], has_gen[text_only][:, None]
            completed, term = self._complete(txt[text_only], index[text_only].cpu(), "image", extra, extra_mask)
            img = img.index_put((text_only.nonzero()[:, 0],), completed)
            fmc_terms.append(term)
        if image_only.any():
            completed, term = self._complete(img[image_only], index[image_only].cpu(), "text")
            txt = txt.index_put((image_only.nonzero()[:, 0],), completed)
            fmc_terms.append(term)

        if self.phrases is not None:
            weights, alpha = self.phrases.weights(index.cpu(), has_txt.cpu(), device=img.device), c.alpha
        else:
            weights, alpha = torch.eye(size, device=img.device), 1.0
        row_weights, scale = self._row_weights(has_img & has_txt)
        losses["wiga"] = wiga_loss(img, txt, weights, alpha=alpha, tau=c.tau,
                                   exclude=_siblings(self.pair_image_ids, batch), row_weights=row_weights)
        total = scale * c.w_wiga * losses["wiga"]
        if c.use_epga:
            losses["epga"] = epga_loss(img, txt, model.prototypes(), tau=c.tau, sinkhorn_iters=c.sinkhorn_iters,
                                       epsilon=c.sinkhorn_epsilon, row_weights=row_weights)
            total = total + scale * c.w_epga * losses["epga"]
        if fmc_terms:
            losses["fmc"] = sum(fmc_terms)
            total = total + c.w_fmc * losses["fmc"]

        complete = has_img & has_txt
        complete_img = complete[has_img]
        complete_txt = complete[has_txt]
        if model.gif is not None and int(complete.sum()) >= 2:
            gen_c = None if gen is None else Features(*(t[complete] for t in gen))
            gif = self._gif_loss(
                model, txt[complete], img[complete],
                Features(*(t[complete_txt] for t in txt_raw)), Features(*(t[complete_img] for t in img_raw)),
                gen_c, None if has_gen is None else has_gen[complete], None)
            losses["gif"] = gif
            total = total + model.gea_config.w_gif * gif
        return {"loss": total, **losses}


def build_objective(model: TIPRModel, *, method: str | Method | None = None, records: Sequence[TrainRecord] = (),
                    partition: Partition | None = None, supervised: bool = False, loss: str | None = None,
                    cache_dir: str | Path | None = None, oracle_neighbours: bool = False) -> Objective:
    """The objective of `method` (default: the model's own) for these train records and partition.

    clip and gea train on the complete pairs of an incomplete partition; ecca completes the rest.
    """
    method = Method.parse(method or model.method)
    if method != model.method:
        raise ValueError(f"objective for {method!r} asked for a model built as {model.method!r}")
    if partition is not None:
        partition.check(len(records))
    if method.uses_ecca:
        if supervised:
            raise ValueError("ECCA trains without identity labels; drop --supervised for methods ecca and ecca+gea")
        if loss not in (None, "wiga"):
            raise ValueError(f"ECCA's loss is WIGA + EPGA + FMC; --loss {loss!r} applies to clip and gea only")
        return ECCAObjective(model, records=records, partition=partition, cache_dir=cache_dir,
                             oracle_neighbours=oracle_neighbours)
    if oracle_neighbours:
        raise ValueError(f"oracle neighbours complete ECCA's missing features; method {method!r} completes nothing")
    loss = loss or ("tal" if supervised or method.uses_gea else "infonce")
    if loss == "tal":
        gea = model.gea_config or GEAConfig()
        return ContrastiveObjective(model, loss=loss, supervised=supervised, tau=gea.tal_tau, margin=gea.tal_margin)
    # ECCA's InfoNCE temperature, for the (a) baseline of its ablation
    return ContrastiveObjective(model, loss=loss, supervised=supervised, tau=ECCAConfig().tau, records=records)
