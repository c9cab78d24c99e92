"""The SynthPEDES study: which rows it trains, from what, on which data, and the Markdown it writes.

Every variant fine-tunes the start model (tipr.study.start_model) on a benchmark SynthPEDES whose test split has
at least 200 people, for an epoch budget with validation every few epochs; the model scored on test is the one
best on val (train/run.py keeps it). Rows show mean ± std over seeds, beside the attribute oracle (the ceiling)
and the start model zero-shot (the floor).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tipr.study.runs import TrainRun
from tipr.study.start_model import StartModelRecipe, ensure_synthpedes
from tipr.study.tables import metrics_table

BASELINE, FULL_ECCA = "(a) InfoNCE, complete pairs only", "(d) ECCA (WIGA + EPGA + FMC with HSNG)"
COMPLETE_DATA = "InfoNCE with nothing missing (every pair complete: what the missing data costs)"
ECCA_VARIANTS: dict[str, list[str]] = {
    BASELINE: ["--method", "clip", "--loss", "infonce", "--no-supervised"],
    "(b) WIGA + EPGA, complete pairs only": ["--method", "ecca", "--no-use_fmc"],
    FULL_ECCA: ["--method", "ecca"],
    "(d0) ECCA, completed pairs only negatives (completed_weight 0)": ["--method", "ecca", "--completed_weight", "0"],
    "(dw) ECCA, completed pairs after a 9-epoch warm-up on complete ones": ["--method", "ecca",
                                                                           "--completion_warmup_epochs", "9"],
    "(d-oracle) ECCA completing from same-person neighbours (reads identities: what completion could give)": [
        "--method", "ecca", "--oracle_neighbours"],
    COMPLETE_DATA: ["--method", "clip", "--loss", "infonce", "--no-supervised", "--setting", "full"],
}
GEA_VARIANTS: dict[str, list[str]] = {
    "CLIP + TAL (supervised, full data)": ["--method", "clip", "--loss", "tal", "--supervised"],
    "full GEA (TGTE + GIF re-ranking)": ["--method", "gea", "--supervised", "--eval_rerank"],
}
STUDIES = {"ecca": ("medium", ECCA_VARIANTS), "gea": ("full", GEA_VARIANTS)}


@dataclass
class StudyConfig:
    """The study's data, budget and seeds; the defaults are the committed tables' (docs/results/study_*.md)."""

    identities: int = 2000  # 80/10/10: 1,600 train, 200 val and 200 test people
    data_seed: int = 0
    image_size: str = "128x64"
    seeds: tuple[int, ...] = (0, 1, 2)
    num_train_epochs: int = 30
    validation_epochs: int = 3
    train_batch_size: int = 64
    learning_rate: float = 5e-4
    start: StartModelRecipe = field(default_factory=StartModelRecipe)

    def __post_init__(self) -> None:
        if self.identities < 30 or not self.seeds or self.num_train_epochs < 1 or self.validation_epochs < 1:
            raise ValueError("StudyConfig needs identities >= 30, at least one seed, num_train_epochs >= 1 and "
                             f"validation_epochs >= 1; got {self.identities}, {self.seeds}, {self.num_train_epochs} "
                             f"and {self.validation_epochs}")

    @property
    def test_identities(self) -> int:
        from tipr.data.synthetic import split_sizes

        return split_sizes(self.identities)[2]

    def describe(self) -> str:
        test = self.test_identities
        return (f"tiny backbone from the start model, {self.num_train_epochs} epochs over the pairs each variant "
                f"uses at batch {self.train_batch_size}, learning rate {self.learning_rate:g}, validation every "
                f"{self.validation_epochs} epochs (the model best on val R1 is tested), seeds "
                f"{', '.join(map(str, self.seeds))}; SynthPEDES of {self.identities} people (test split: "
                f"{test} people, {4 * test} images, {8 * test} captions)")


def benchmark_data(work: str | Path, config: StudyConfig) -> Path:
    return ensure_synthpedes(Path(work) / f"benchmark-{config.identities}-s{config.data_seed}",
                             identities=config.identities, seed=config.data_seed, image_size=config.image_size)


def cache_key_parts(flags: Sequence[str]) -> tuple[list[str], str]:
    """What a run's cache key reads: its flags without ECCA's config flags, and the ECCA config they train
    (code defaults, preset and flags together), so that a key names what is trained however the flags spell it:
    a run with ``--completed_weight 0`` is still found after 0 becomes the default."""
    from tipr.ecca.config import ECCAConfig
    from tipr.training.args import ecca_config, parse_args

    flags = list(flags)
    config = ecca_config(parse_args(flags))
    if config is None:
        return flags, ""
    names = {f"--{prefix}{name}" for name in ECCAConfig.__dataclass_fields__ for prefix in ("", "no-")}
    drop = {i for i, flag in enumerate(flags) if flag in names}
    drop |= {i + 1 for i in drop if i + 1 < len(flags) and not flags[i + 1].startswith("--")}
    return [f for i, f in enumerate(flags) if i not in drop], json.dumps(config.to_dict(), sort_keys=True)


def study_runs(work: str | Path, config: StudyConfig, study: str, start_dir: str | Path, data: Path,
               extra: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[TrainRun]]:
    """The trainer runs of `study` ("ecca" or "gea"), one per variant and seed; `extra` adds flags per method."""
    setting, variants = STUDIES[study]
    common = ["--preset", "tiny", "--dataset", "cuhk-pedes", "--data_root", str(data), "--pretrained",
              str(start_dir), "--image_size", config.image_size, "--setting", setting, "--num_train_epochs",
              str(config.num_train_epochs), "--train_batch_size", str(config.train_batch_size), "--learning_rate",
              str(config.learning_rate), "--validation_epochs", str(config.validation_epochs), "--report_to", "none"]
    runs = {}
    for name, flags in variants.items():
        method = flags[flags.index("--method") + 1]
        more = list((extra or {}).get(method, ()))
        # a variant's own --setting replaces the study's (the other variants' flags, hence cache keys, stay as they were)
        shared = common[:common.index("--setting")] + common[common.index("--setting") + 2:] if "--setting" in flags \
            else common
        runs[name] = []
        for seed in config.seeds:
            run_flags = shared + flags + more + ["--seed", str(seed)]
            key_flags, version = cache_key_parts(run_flags)
            runs[name].append(TrainRun(name, run_flags, Path(work), version, key_flags))
    return runs


def zero_shot(model_dir: str | Path, data: Path) -> dict[str, float]:
    """A model's test metrics on the benchmark without training on it (cached beside the model)."""
    out = Path(model_dir) / f"zero_shot-{data.parent.name}.json"
    if not out.is_file():
        from tipr.data import load_dataset
        from tipr.evaluate import evaluate
        from tipr.models.tipr_model import load_model

        out.write_text(json.dumps(evaluate(load_model(model_dir), load_dataset("cuhk-pedes", data).test)))
    return json.loads(out.read_text())


def oracle(data: Path) -> dict[str, float]:
    """The attribute oracle on the benchmark's test split (cached beside the data)."""
    out = data / "attribute_oracle_test.json"
    if not out.is_file():
        from tipr.attribute_oracle import attribute_oracle
        from tipr.data import load_dataset

        out.write_text(json.dumps(attribute_oracle(load_dataset("cuhk-pedes", data).test)))
    return json.loads(out.read_text())


def report(study: str, config: StudyConfig, runs: Mapping[str, Sequence[TrainRun]], data: Path, start_dir: Path,
           command: str) -> str:
    """The study's Markdown: the table over the finished runs, and which runs are still to come."""
    setting = STUDIES[study][0]
    rows: dict[str, list[Mapping[str, float]]] = {
        "attribute oracle (reads the true attributes; the ceiling)": [oracle(data)],
        "start model, zero-shot (no training on SynthPEDES descriptions)": [zero_shot(start_dir, data)],
    }
    pending = []
    for name, variant in runs.items():
        rows[name] = [r.results()["results"]["test"] for r in variant if r.done]
        pending += [f"{name}, seed {r.flags[r.flags.index('--seed') + 1]}" for r in variant if not r.done]
    title = {"ecca": "ECCA study on SynthPEDES (medium setting: 30% complete, 35% image missing, 35% text missing, "
                     "unsupervised)", "gea": "GEA study on SynthPEDES (full data, supervised)"}[study]
    lines = [f"<!-- written by `{command}`; do not edit by hand -->", "", f"# {title}", "",
             f"{config.describe()}. Setting `{setting}`. Start model recipe: "
             f"`{json.dumps(asdict(config.start))}`.", "",
             metrics_table(rows, expected_seeds=len(config.seeds), unseeded=list(rows)[:2]), "",
             f"Chance R1: {100 / config.test_identities:.2f} (each person has as many images). Targets: the start "
             "model's zero-shot R1 at most half the trained baseline's, and the baseline at least 20 R1 above it.", ""]
    best = {name: [r.results()["best"]["epoch"] for r in variant if r.done] for name, variant in runs.items()}
    if any(best.values()):
        lines += [f"Epoch of the model best on val (of {config.num_train_epochs}), per finished seed: " + "; ".join(
            f"{name.split(' ')[0]} {', '.join(map(str, epochs))}" for name, epochs in best.items() if epochs) + ".", ""]
    if pending:
        lines += [f"Not finished yet ({len(pending)} runs; rerun the command above to continue them from their last "
                  "checkpoint): " + "; ".join(pending) + ".", ""]
    return "\n".join(lines)
