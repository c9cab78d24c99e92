"""Upload a saved model folder to the Hugging Face Hub, failing in seconds when the Hub cannot be reached.

    python -m tipr.training.hub_push outputs/ecca-cuhk-pedes-full --hub_model_id user/tipr-ecca-cuhk
    python -m tipr.training.hub_push tiny-generator --hub_model_id user/tipr-tiny-generator

A tipr model folder (train/run.py) or a diffusers pipeline folder (train/train_generator.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tipr.hub import HubUnreachableError, hub_offline, hub_reachable
from tipr.models.weights import WEIGHT_PATTERNS, weight_files

logger = logging.getLogger(__name__)

# what a repo holds; checkpoints, logs and caches stay local
MODEL_FILES = ["config.json", *WEIGHT_PATTERNS, "README.md", "results.json", "partition.json"]
PIPELINE_FILES = ["model_index.json", "README.md", "*/*.json", "*/*.safetensors", "*/*.txt"]  # one folder a component
_NEVER = ["checkpoint-*/*", ".*", ".*/*"]


def warn_if_unreachable(folder: str | os.PathLike) -> bool:
    """At the start of a run that pushes at its end: warn now if the Hub cannot be reached; whether it can."""
    if hub_reachable():
        return True
    logger.warning("the Hugging Face Hub cannot be reached now: the result will be saved in %s and the upload "
                   "tried at the end", folder)
    return False


def push_folder(folder: str | os.PathLike, repo_id: str, *, token: str | None = None, private: bool = False,
                commit_message: str = "Upload tipr model") -> str:
    """Create `repo_id` if needed and upload the model files of `folder`; returns the repo URL.

    `folder` is a tipr model (config.json + its weights, one file or shards) or a diffusers pipeline
    (model_index.json).
    """
    folder = Path(folder)
    pipeline = (folder / "model_index.json").is_file()
    if not pipeline and not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is neither a saved tipr model nor a diffusers pipeline: config.json (or "
                                f"model_index.json) is missing")
    if not pipeline:
        weight_files(folder)  # a missing shard is named before anything is uploaded
    if not hub_reachable():  # decided in seconds, before any upload call retries for minutes
        reason = "HF_HUB_OFFLINE is set" if hub_offline() else "the Hub did not answer within 3 s"
        raise HubUnreachableError(
            f"the model is saved locally in {folder}, but it cannot be uploaded to {repo_id!r}: {reason}. Unset "
            f"HF_HUB_OFFLINE or check the network, then upload it with `python -m tipr.training.hub_push {folder} "
            f"--hub_model_id {repo_id}`.")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
                      allow_patterns=PIPELINE_FILES if pipeline else MODEL_FILES, ignore_patterns=_NEVER)
    return str(url)


def main(argv: Sequence[str] | None = None) -> str:
    p = argparse.ArgumentParser(prog="python -m tipr.training.hub_push", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="a model folder saved by train/run.py or train/train_generator.py")
    p.add_argument("--hub_model_id", required=True, help="repo id, e.g. user/tipr-ecca-cuhk")
    p.add_argument("--hub_token", default=None, help="Hub token (default: the logged-in one)")
    p.add_argument("--hub_private_repo", action="store_true", help="create the repo as private")
    args = p.parse_args(argv)
    url = push_folder(args.folder, args.hub_model_id, token=args.hub_token, private=args.hub_private_repo)
    print(f"uploaded {args.folder} to {url}")
    return url


if __name__ == "__main__":
    try:
        main()
    except (HubUnreachableError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
