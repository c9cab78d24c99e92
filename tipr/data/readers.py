"""Readers for the public annotation formats of CUHK-PEDES, ICFG-PEDES and RSTPReid.

Each format is one JSON list of records ``{"split", "captions", <image path field>, "id"}``, images under
``<dataset folder>/imgs/``. Person ids keep the conventions of the field's reference code (IRRA): CUHK-PEDES
train pids are the json id minus 1, the other formats use the json id; val/test pids are the json id as is
(they are only compared with each other). Train pids that do not run contiguously from 0 (a filtered or
merged copy) are renumbered in id order, with a warning. ``image_id`` numbers the unique train images in file
order. Image paths must stay inside ``imgs/``: an absolute path or one that climbs out with ``..`` is refused.

CUHK-PEDES's original release ships ``caption_all.json``: the same records without the ``split`` field
(``id``, ``file_path``, ``captions``, ``processed_tokens``). The split is then the release's id ranges, the
ones every later copy's ``reid_raw.json`` and IRRA's reader use: ids 1-11003 train, 11004-12003 val,
12004-13003 test.
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
    example_path: str  # an image path as the release writes it, for error messages
    disk_folder: str = ""  # the folder name on disk where it is not ``folder`` (SynthPEDES writes CUHK-PEDES/)
    # annotation files without a split field, and the release's split by json id ranges (inclusive) for them
    unsplit_files: tuple[str, ...] = ()
    id_splits: tuple[tuple[str, int, int], ...] = ()


FORMATS = {
    "cuhk-pedes": DatasetFormat("cuhk-pedes", "CUHK-PEDES", ("reid_raw.json", "caption_all.json"), "file_path", -1,
                                "https://github.com/ShuangLI59/Person-Search-with-Natural-Language-Description",
                                "CUHK01/0363004.png", unsplit_files=("caption_all.json",),
                                id_splits=(("train", 1, 11003), ("val", 11004, 12003), ("test", 12004, 13003))),
    "icfg-pedes": DatasetFormat("icfg-pedes", "ICFG-PEDES", ("ICFG-PEDES.json", "ICFG_PEDES.json"), "file_path", 0,
                                "https://github.com/zifyloo/SSAN", "test/0041/0041_010_01_0303morning_0087_1.jpg"),
    "rstpreid": DatasetFormat("rstpreid", "RSTPReid", ("data_captions.json",), "img_path", 0,
                              "https://github.com/NjtechCVLab/RSTPReid-Dataset", "0000_c14_0004.jpg"),
    # tipr's procedural stand-in, written by tipr.data.synthetic in the CUHK-PEDES layout
    "synthpedes": DatasetFormat("synthpedes", "SynthPEDES", ("reid_raw.json",), "file_path", -1,
                                "`python -m tipr.data.synthetic`", "SynthPEDES/000001_00.png", disk_folder="CUHK-PEDES"),
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
        rec["image_path"] = _image_path(image_dir, rec, anno_path, fmt)
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

    _renumber_train_pids(anno_path, records, fmt)  # after skipping: a skipped person leaves a gap too
    by_split = {split: [rec for rec in records if rec["split"] == split] for split in SPLITS}
    train, train_image_paths = _train_records(by_split["train"])
    test = _eval_split(by_split["test"])
    val_is_test = not by_split["val"]
    val = test if val_is_test else _eval_split(by_split["val"])
    return PersonDataset(name=fmt.name, root=str(dataset_dir), train=train, val=val, test=test,
                         train_image_paths=train_image_paths, val_is_test=val_is_test)


def _image_path(image_dir: Path, rec: dict[str, Any], anno_path: Path, fmt: DatasetFormat) -> str:
    """The absolute image path of a record; paths that are absolute or leave ``imgs/`` are refused."""
    path = os.path.normpath(os.path.join(image_dir, rec["path"]))
    inside = str(image_dir).rstrip(os.sep) + os.sep
    if os.path.isabs(rec["path"]) or not path.startswith(inside):
        raise AnnotationError(
            f"{anno_path}: record {rec['index']} has {fmt.path_field!r} = {rec['path']!r}, which leaves the image "
            f"folder {image_dir}; {fmt.folder} image paths are relative to imgs/ (e.g. {fmt.example_path}). "
            f"Fix or remove that record.")
    return path


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

    unsplit = path.name in fmt.unsplit_files
    fields = ("captions", fmt.path_field, "id") if unsplit else ("split", "captions", fmt.path_field, "id")
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
        split, captions, image, pid = raw.get("split"), raw["captions"], raw[fmt.path_field], raw["id"]
        if unsplit and split is None:
            split = _split_of_id(pid, fmt)
            if split is None:
                ranges = ", ".join(f"{name} {first}-{last}" for name, first, last in fmt.id_splits)
                raise bad(f"has 'id' = {pid!r}, outside {fmt.folder}'s release id ranges ({ranges}) that split a "
                          f"{path.name} without a 'split' field; add a \"split\" field to the records")
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
        records.append({"split": split, "captions": captions, "path": image, "pid": pid, "index": i,
                        "attributes": raw.get("attributes")})
    if unsplit:
        _check_id_split(path, records, fmt)
    return records


def _split_of_id(pid: Any, fmt: DatasetFormat) -> str | None:
    if isinstance(pid, int) and not isinstance(pid, bool):
        for split, first, last in fmt.id_splits:
            if first <= pid <= last:
                return split
    return None


def _check_id_split(path: Path, records: list[dict[str, Any]], fmt: DatasetFormat) -> None:
    """An annotation without a split field must give every split some records through the id ranges."""
    ranges = ", ".join(f"{split} {first}-{last}" for split, first, last in fmt.id_splits)
    empty = [split for split in SPLITS if not any(rec["split"] == split for rec in records)]
    if empty:
        ids = [rec["pid"] - (fmt.train_pid_offset if rec["split"] == "train" else 0) for rec in records]
        raise AnnotationError(
            f"{path} has no 'split' field, so {fmt.folder}'s release id ranges split it ({ranges}); its ids run "
            f"from {min(ids, default=0)} to {max(ids, default=0)}, which leaves the {' and '.join(empty)} split "
            f"empty. Use the reid_raw.json of the same release (it has the split field), or add a \"split\" "
            f"(train / val / test) to every record.")


def _renumber_train_pids(path: Path, records: list[dict[str, Any]], fmt: DatasetFormat) -> None:
    """Map train pids onto 0..n-1 in id order when they are not already; warn once saying so."""
    train_pids = sorted({rec["pid"] for rec in records if rec["split"] == "train"})
    if train_pids == list(range(len(train_pids))):
        return
    offset = fmt.train_pid_offset
    absent = sorted(set(range(train_pids[0], train_pids[-1] + 1)) - set(train_pids))
    rule = f"pid = id {'+' if offset > 0 else '-'} {abs(offset)}" if offset else "pid = id"
    warnings.warn(
        f"{path}: the {len(train_pids)} train person ids (json ids {train_pids[0] - offset} to "
        f"{train_pids[-1] - offset}" + (f", none for e.g. {[a - offset for a in absent[:_SHOWN]]}" if absent else "")
        + f") do not run contiguously from {-offset} ({fmt.folder} convention, {rule}, as in IRRA); renumbered "
        f"0..{len(train_pids) - 1} in id order. Expected for a filtered or merged copy of the dataset.",
        stacklevel=3)
    new = {pid: i for i, pid in enumerate(train_pids)}
    for rec in records:
        if rec["split"] == "train":
            rec["pid"] = new[rec["pid"]]


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
        split.image_attributes.append(rec["attributes"])
        split.captions.extend(rec["captions"])
        split.caption_pids.extend([rec["pid"]] * len(rec["captions"]))
        split.caption_images.extend([len(split.image_paths) - 1] * len(rec["captions"]))
    return split
