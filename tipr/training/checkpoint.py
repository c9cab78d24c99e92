"""`checkpoint-N` folders written atomically, checked before resuming, and pruned to a total limit.

Every rank writes its part of `accelerator.save_state` into `.checkpoint-N.tmp`; the main process then adds
`tipr_checkpoint.json` (the training position plus the size and sha256 of every file) and renames the folder
to `checkpoint-N`. A run killed while saving leaves only a `.tmp` folder, which is never resumed from and is
removed by the next run; a `checkpoint-N` whose files do not match its manifest is refused, naming the folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

MANIFEST = "tipr_checkpoint.json"
PREFIX = "checkpoint-"
_FORMAT = "tipr-checkpoint/1"
_NAME = re.compile(r"^checkpoint-(\d+)$")
_TMP = re.compile(r"^\.(checkpoint-\d+|best)\.(tmp|old)$")  # folders being written or replaced
logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint folder is missing, incomplete or corrupt."""


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not possible on every platform; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_folder(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Move the finished folder `tmp` to `final` by renames, replacing an existing `final`.

    Readers see the old folder or the new one, never a half-written one; a kill between the two renames
    leaves `.NAME.old` and `tmp`, which `remove_stale_temporaries` deletes.
    """
    tmp, final = Path(tmp), Path(final)
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(final.parent)
    return final


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The `checkpoint-N` folders of `output_dir`, oldest (smallest N) first; temporary folders excluded."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def remove_stale_temporaries(output_dir: str | os.PathLike) -> list[Path]:
    """Delete `.checkpoint-N.tmp` and `.best.tmp` folders left by a run killed while saving; returns them."""
    root = Path(output_dir)
    stale = [p for p in root.iterdir() if p.is_dir() and _TMP.match(p.name)] if root.is_dir() else []
    for path in stale:
        logger.warning("removing %s: a checkpoint that was not finished writing (the run stopped while saving)", path)
        shutil.rmtree(path, ignore_errors=True)
    return stale


def prepare_output_dir(output_dir: str | os.PathLike) -> Path:
    """Create a run's output folder, or sweep what a killed run left half-written in it."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output_dir)
    return output_dir


def write_manifest(folder: str | os.PathLike, state: dict[str, Any]) -> dict[str, Any]:
    """Record the training position `state` and every file's size and sha256 in `folder`/tipr_checkpoint.json."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
    manifest = {"format": _FORMAT, "state": state, "files": files}
    tmp = folder / (MANIFEST + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / MANIFEST)
    return manifest


def check_checkpoint(folder: str | os.PathLike, *, verify_hashes: bool = True) -> dict[str, Any]:
    """The manifest of a complete checkpoint; CheckpointError naming the folder if it is missing, cut or corrupt."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint {folder} does not exist (pass 'latest' or an existing checkpoint-N folder)")
    advice = (f"Delete {folder} and resume from an earlier checkpoint (or without --resume_from_checkpoint to "
              f"start over).")
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"checkpoint {folder} is incomplete: it has no {MANIFEST}, so it was not finished "
                              f"writing (or was not made by train/run.py). {advice}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files, state = manifest["files"], manifest["state"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint {folder} is corrupt: {MANIFEST} cannot be read ({err}). {advice}") from err
    for name, meta in files.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"checkpoint {folder} is corrupt: {name} is missing. {advice}")
        size = path.stat().st_size
        if size != meta["size"]:
            raise CheckpointError(f"checkpoint {folder} is corrupt: {name} has {size} bytes, {meta['size']} were "
                                  f"written. {advice}")
        if verify_hashes and _sha256(path) != meta["sha256"]:
            raise CheckpointError(f"checkpoint {folder} is corrupt: {name} does not match its sha256. {advice}")
    return manifest


def resolve_checkpoint(spec: str | os.PathLike, output_dir: str | os.PathLike) -> Path | None:
    """The folder `--resume_from_checkpoint` names: 'latest' (None when there is none yet) or a path.

    A bare `checkpoint-N` name is looked up in `output_dir`.
    """
    if str(spec) == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(spec)
    if not path.exists() and not path.is_absolute() and (Path(output_dir) / path).exists():
        path = Path(output_dir) / path
    return path


def prune_checkpoints(output_dir: str | os.PathLike, total_limit: int | None) -> list[Path]:
    """Delete the oldest checkpoints beyond `total_limit`; returns the deleted folders."""
    if total_limit is None:
        return []
    found = list_checkpoints(output_dir)
    doomed = found[:max(0, len(found) - total_limit)]
    for path in doomed:
        logger.info("removing %s (--checkpoints_total_limit %d)", path, total_limit)
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def save_checkpoint(accelerator, output_dir: str | os.PathLike, step: int, state: dict[str, Any], *,
                    total_limit: int | None = None) -> Path:
    """`accelerator.save_state` into `checkpoint-{step}`, atomically; call on every rank."""
    output_dir = Path(output_dir)
    final = output_dir / f"{PREFIX}{step}"
    tmp = output_dir / f".{PREFIX}{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_manifest(tmp, state)
        replace_folder(tmp, final)  # the same step saved again (e.g. after resuming from it) is replaced
        prune_checkpoints(output_dir, total_limit)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, folder: str | os.PathLike) -> dict[str, Any]:
    """Check `folder`, restore it with `accelerator.load_state` and return the saved training position."""
    manifest = check_checkpoint(folder)
    accelerator.load_state(str(folder))
    return manifest["state"]
