"""Readers for the public annotation formats of CUHK-PEDES, ICFG-PEDES and RSTPReid.

Each format is one JSON list of records ``{"split", "captions", <image path field>, "id"}``, images under
``<dataset folder>/imgs/``. Person ids keep the conventions of the field's reference code (IRRA): CUHK-PEDES
train pids are the json id minus 1, the other formats use the json id; train pids must be contiguous from 0;
val/test pids are the json id as is (they are only compared with each other). ``image_id`` numbers the
unique train images in file order.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tipr.data.records import AnnotationError, EvalSplit, MissingImagesError, PersonDataset, TrainRecord

SPLITS = ("train", "val", "test")
_SHOWN = 5  # how many offending paths or ids an error message lists


@dataclass(frozen=True)
class DatasetFormat:
    name: str
    folder: str
    annotation_files: tuple[str, ...]  # the first is the official name; later ones are accepted spellings
    path_field: str
    train_pid_offset: int
    url: str
    disk_folder: str = ""  # the folder name on disk where it is not ``folder`` (SynthPEDES writes CUHK-PEDES/)


FORMATS = {
    "cuhk-pedes": DatasetFormat("cuhk-pedes", "CUHK-PEDES", ("reid_raw.json",), "file_path", -1,
                                "https://github.com/ShuangLI59/Person-Search-with-Natural-Language-Description"),
    "icfg-pedes": DatasetFormat("icfg-pedes", "ICFG-PEDES", ("ICFG-PEDES.json", "ICFG_PEDES.json"), "file_path", 0,
                                "https://github.com/zifyloo/SSAN"),
    "rstpreid": DatasetFormat("rstpreid", "RSTPReid", ("data_captions.json",), "img_path", 0,
                              "https://github.com/NjtechCVLab/RSTPReid-Dataset"),
    # tipr's procedural stand-in, written by tipr.data.synthetic in the CUHK-PEDES layout
    "synthpedes": DatasetFormat("synthpedes", "SynthPEDES", ("reid_raw.json",), "file_path", -1,
                                "`python -m tipr.data.synthetic`", disk_folder="CUHK-PEDES"),
}
_ALIASES = {"cuhk": "cuhk-pedes", "icfg": "icfg-pedes", "rstp": "rstpreid", "synth": "synthpedes"}


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


_LOOKUP = {_key(n): n for n in FORMATS} | {_key(a): n for a, n in _ALIASES.items()}


def resolve_format(name: str) -> DatasetFormat:
    """The format for a dataset name; case, dashes and underscores are ignored ("CUHK_PEDES", "cuhk")."""
    try:
        return FORMATS[_LOOKUP[_key(name)]]
    except KeyError:
        known = ", ".join(sorted(FORMATS)) + " (aliases: " + ", ".join(sorted(_ALIASES)) + ")"
        raise ValueError(f"unknown dataset {name!r}; known datasets: {known}") from None


def load_dataset(name: str, root: str | os.PathLike, *, skip_missing_images: bool = False) -> PersonDataset:
    """Read a dataset in its public layout; ``root`` is the dataset folder or the folder that contains it.

    With ``skip_missing_images=True`` an annotation record whose image file is absent is dropped (with its
    captions) and a warning says how many were; otherwise a ``MissingImagesError`` is raised. Where the
    annotation has no val split (ICFG-PEDES) ``val`` is the test split and ``val_is_test`` is set, as IRRA
    validates on the test split.
    """
    fmt = resolve_format(name)
    anno_path = _find_annotation(fmt, Path(root))
    dataset_dir = anno_path.parent.absolute()
    image_dir = dataset_dir / "imgs"
    records = _read_records(anno_path, fmt)

    for rec in records:
        rec["image_path"] = os.path.normpath(os.path.join(image_dir, rec["path"]))
    missing = [rec["image_path"] for rec in records if not os.path.isfile(rec["image_path"])]
    if missing:
        where = f"under {image_dir}" if image_dir.is_dir() else f"(the image folder {image_dir} does not exist)"
        summary = (f"{len(missing)} of {len(records)} images listed in {anno_path} are missing {where}, "
                   f"e.g. {', '.join(missing[:_SHOWN])}")
        if not skip_missing_images:
            raise MissingImagesError(f"{summary}. Unpack the dataset's images into {image_dir}, or pass "
                                     f"skip_missing_images=True to drop those records.", missing)
        warnings.warn(f"{summary}; skipping those records (skip_missing_images=True).", stacklevel=2)
        gone = set(missing)
        records = [rec for rec in records if rec["image_path"] not in gone]

    by_split = {split: [rec for rec in records if rec["split"] == split] for split in SPLITS}
    train, train_image_paths = _train_records(by_split["train"])
    test = _eval_split(by_split["test"])
    val_is_test = not by_split["val"]
    val = test if val_is_test else _eval_split(by_split["val"])
    return PersonDataset(name=fmt.name, root=str(dataset_dir), train=train, val=val, test=test,
                         train_image_paths=train_image_paths, val_is_test=val_is_test)


def _find_annotation(fmt: DatasetFormat, root: Path) -> Path:
    if root.is_file() and root.name in fmt.annotation_files:  # the annotation file itself
        return root
    folder = fmt.disk_folder or fmt.folder
    candidates = [root, root / folder]
    if root.is_dir():  # the folder name in any case, e.g. cuhk-pedes/
        candidates += sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower() == folder.lower())
    looked = []
    for folder in dict.fromkeys(candidates):
        for file_name in fmt.annotation_files:
            path = folder / file_name
            if path.is_file():
                return path
            looked.append(str(path))
    exists = "" if root.is_dir() else f" ({root} does not exist)"
    raise FileNotFoundError(
        f"no {fmt.annotation_files[0]} annotation file for {fmt.folder} found{exists}; looked at: "
        f"{', '.join(looked)}. Download {fmt.folder} from {fmt.url} and pass the folder that holds "
        f"{fmt.annotation_files[0]} and imgs/ (or its parent).")


def _read_records(path: Path, fmt: DatasetFormat) -> list[dict[str, Any]]:
    """Parse and validate the annotation list; each result has split, captions, path, pid, attributes."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}. "
                              f"Re-download or repair the file.") from err
    except UnicodeDecodeError as err:
        raise AnnotationError(f"{path} is not UTF-8 text ({err}). Re-download the file.") from err
    if not isinstance(data, list):
        raise AnnotationError(f"{path} should hold a JSON list of records, found a {type(data).__name__}. "
                              f"Is it the {fmt.folder} annotation file?")

    fields = ("split", "captions", fmt.path_field, "id")
    records = []
    for i, raw in enumerate(data):
        def bad(problem: str) -> AnnotationError:
            return AnnotationError(f"{path}: record {i} {problem}. Each {fmt.folder} record needs the fields "
                                   f"{', '.join(fields)}; fix or remove that record.")

        if not isinstance(raw, dict):
            raise bad(f"is a {type(raw).__name__}, not a JSON object")
        for name in fields:
            if name not in raw:
                raise bad(f"has no field {name!r} (it has: {', '.join(map(repr, raw)) or 'none'})")
        split, captions, image, pid = raw["split"], raw["captions"], raw[fmt.path_field], raw["id"]
        if split not in SPLITS:
            raise bad(f"has split {split!r}; expected one of {', '.join(map(repr, SPLITS))}")
        if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            raise bad(f"has 'captions' = {captions!r:.80}, expected a list of strings")
        if not isinstance(image, str) or not image:
            raise bad(f"has {fmt.path_field!r} = {image!r}, expected a relative image path")
        try:
            if isinstance(pid, bool) or (isinstance(pid, float) and not pid.is_integer()):
                raise ValueError
            pid = int(pid)
        except (TypeError, ValueError):
            raise bad(f"has 'id' = {pid!r}, expected an integer person id") from None
        if split == "train":
            pid += fmt.train_pid_offset
        records.append({"split": split, "captions": captions, "path": image, "pid": pid,
                        "attributes": raw.get("attributes")})

    train_pids = {rec["pid"] for rec in records if rec["split"] == "train"}
    if train_pids and train_pids != set(range(len(train_pids))):
        offset, first = fmt.train_pid_offset, -fmt.train_pid_offset
        absent = sorted(set(range(max(train_pids) + 1)) - train_pids)[:_SHOWN]
        rule = f"pid = id {'+' if offset > 0 else '-'} {abs(offset)}" if offset else "pid = id"
        raise AnnotationError(
            f"{path}: train person ids must run contiguously from {first} ({fmt.folder} convention, {rule}, "
            f"as in IRRA); found {len(train_pids)} distinct ids from {min(train_pids) - offset} to "
            f"{max(train_pids) - offset}" + (f", none for e.g. {[a - offset for a in absent]}" if absent else "")
            + ". Renumber the train ids.")
    return records


def _train_records(records: list[dict[str, Any]]) -> tuple[list[TrainRecord], list[str]]:
    image_ids: dict[str, int] = {}
    train = []
    for rec in records:
        image_id = image_ids.setdefault(rec["image_path"], len(image_ids))
        for caption in rec["captions"]:
            train.append(TrainRecord(pid=rec["pid"], image_id=image_id, image_path=rec["image_path"],
                                     caption=caption, attributes=rec["attributes"]))
    return train, list(image_ids)


def _eval_split(records: list[dict[str, Any]]) -> EvalSplit:
    split = EvalSplit()
    for rec in records:
        split.image_paths.append(rec["image_path"])
        split.image_pids.append(rec["pid"])
        split.captions.extend(rec["captions"])
        split.caption_pids.extend([rec["pid"]] * len(rec["captions"]))
        split.caption_images.extend([len(split.image_paths) - 1] * len(rec["captions"]))
    return split
