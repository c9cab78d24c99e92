"""Trainer runs of a study: each one `train/run.py` process with one thread, cached by its flags, resumable.

A run lives in `work/run-<key>`, the key a hash of its flags (and of whatever `version` they point at). Its
`results.json` marks it finished; until then it checkpoints every `checkpoint_steps` and a rerun continues from
the last checkpoint (`--resume_from_checkpoint latest`), so a study killed at any point loses at most that much.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def subprocess_env() -> dict[str, str]:
    """Offline, unbuffered, one thread unless OMP_NUM_THREADS says otherwise, importing this checkout's tipr."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": path,
                         "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def run_logged(cmd: Sequence[str], log: str | os.PathLike) -> float:
    """Run `cmd` from the repository root with its output in `log`; its wall seconds, or an error with the log's tail."""
    start = time.perf_counter()
    with open(log, "a") as out:
        proc = subprocess.run(list(cmd), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=subprocess_env())
    if proc.returncode:
        tail = Path(log).read_text()[-3000:]
        raise RuntimeError(f"command failed ({proc.returncode}): {shlex.join(cmd)}\n--- {log} ---\n{tail}")
    return time.perf_counter() - start


@dataclass
class TrainRun:
    """One trainer run: a row name, its flags (without --output_dir) and the folder it lives in.

    Its key hashes ``key_flags`` (default: the flags) and ``version``, what the flags leave to code defaults.
    """

    name: str
    flags: list[str]
    work: Path
    version: str = ""
    key_flags: list[str] | None = None

    @property
    def key(self) -> str:
        flags = self.flags if self.key_flags is None else self.key_flags
        return hashlib.sha1((json.dumps(flags) + self.version).encode()).hexdigest()[:10]

    @property
    def output_dir(self) -> Path:
        return Path(self.work) / f"run-{self.key}"

    @property
    def done(self) -> bool:
        return (self.output_dir / "results.json").is_file()

    def results(self) -> dict:
        """results.json of the finished run, with its output_dir."""
        summary = json.loads((self.output_dir / "results.json").read_text())
        return summary | {"output_dir": str(self.output_dir)}

    def command(self, checkpoint_steps: int) -> list[str]:
        return [sys.executable, "train/run.py", *self.flags, "--output_dir", str(self.output_dir),
                "--checkpointing_steps", str(checkpoint_steps), "--checkpoints_total_limit", "1",
                "--resume_from_checkpoint", "latest"]

    def train(self, checkpoint_steps: int = 200) -> dict:
        """Train (or continue) the run unless it finished; its results."""
        if not self.done:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "flags.json").write_text(json.dumps({"name": self.name, "flags": self.flags}, indent=1))
            print(f"training {self.name} -> {self.output_dir}", flush=True)
            run_logged(self.command(checkpoint_steps), self.output_dir / "train.log")
        return self.results()


def train_all(runs: Sequence[TrainRun], *, processes: int = 1, checkpoint_steps: int = 200,
              on_done: Callable[[TrainRun], None] | None = None) -> list[BaseException]:
    """Train every unfinished run in order, `processes` at a time (one thread each), calling `on_done(run)` as
    each finishes; the errors of those that failed (one failed run does not stop the others)."""
    todo = [r for r in runs if not r.done]
    errors: list[BaseException] = []
    lock = threading.Lock()

    def one(run: TrainRun) -> None:
        try:
            run.train(checkpoint_steps)
        except RuntimeError as err:
            with lock:
                errors.append(err)
            print(err, file=sys.stderr, flush=True)
            return
        if on_done is not None:
            with lock:
                on_done(run)

    with ThreadPoolExecutor(max_workers=max(1, processes)) as pool:
        list(pool.map(one, todo))
    return errors
