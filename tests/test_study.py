"""benchmarks/study.py at a tiny size: start model, oracle, variants in two processes, the table, resuming."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tipr.study.runs import TrainRun
from tipr.study.tables import format_mean_std, mean_std, metrics_table

REPO = Path(__file__).resolve().parents[1]


def _study():
    spec = importlib.util.spec_from_file_location("tipr_study_script", REPO / "benchmarks" / "study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("values,expected", [([1.0], (1.0, 0.0)), ([1.0, 3.0], (2.0, 2 ** 0.5)),
                                             ([5.0, 5.0, 5.0], (5.0, 0.0))])
def test_mean_std(values, expected):
    assert mean_std(values) == pytest.approx(expected)


def test_metrics_table_counts_seeds():
    table = metrics_table({"a": [{"R1": 10.0}, {"R1": 20.0}], "b": [], "c": [{"R1": 1.0}]}, expected_seeds=2,
                          keys=("R1",))
    assert f"| a | {format_mean_std([10.0, 20.0])} | 2 |" in table
    assert "| b | – | pending |" in table and "| c | 1.00 | 1 of 2 |" in table
    assert "| c | 1.00 | – |" in metrics_table({"c": [{"R1": 1.0}]}, expected_seeds=3, unseeded=["c"], keys=("R1",))


def test_run_key_follows_flags_and_version(tmp_path):
    a, b = TrainRun("x", ["--seed", "0"], tmp_path), TrainRun("y", ["--seed", "0"], tmp_path)
    assert a.output_dir == b.output_dir and not a.done
    assert TrainRun("x", ["--seed", "1"], tmp_path).key != a.key != TrainRun("x", ["--seed", "0"], tmp_path, "v2").key


def test_tiny_study_writes_its_table(tmp_path, capsys):
    study = _study()
    out = tmp_path / "study.md"
    argv = ["--study", "ecca", "--work", str(tmp_path / "work"), "--identities", "30", "--image_size", "64x32",
            "--seeds", "0", "--num_train_epochs", "1", "--validation_epochs", "1", "--train_batch_size", "8",
            "--start_identities", "10", "--start_epochs", "1", "--processes", "2", "--out", str(out)]
    study.main(argv)
    table = out.read_text()
    for row in ("attribute oracle", "start model, zero-shot", "(a) InfoNCE", "(b) WIGA + EPGA", "(d) ECCA",
                "(d0) ECCA, completed pairs only negatives", "(dw) ECCA, completed pairs after", "(d-oracle) ECCA",
                "InfoNCE with nothing missing"):
        assert row in table
    assert "pending" not in table and "Not finished" not in table
    assert "test split: 3 people" in table
    runs = sorted((tmp_path / "work").glob("run-*/results.json"))
    assert len(runs) == 8  # the start model and seven variants
    stamps = [p.stat().st_mtime_ns for p in runs]
    study.main(argv + ["--write_only"])  # nothing retrained, the same table
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    assert out.read_text().split("\n", 1)[1] == table.split("\n", 1)[1]
    # a run that has not finished is listed as pending, with its seed
    flags = {p.parent: p.parent.joinpath("flags.json").read_text() for p in runs}
    ecca = next(folder for folder, text in flags.items() if '"(d) ECCA' in text)
    (ecca / "results.json").unlink()
    study.main(argv + ["--write_only"])
    partial = out.read_text()
    assert "| (d) ECCA (WIGA + EPGA + FMC with HSNG) | – | – | – | – | – | pending |" in partial
    assert "Not finished yet (1 runs" in partial and "(d) ECCA (WIGA + EPGA + FMC with HSNG), seed 0" in partial
    # --rows keeps the table to some rows (the oracle and the start stay)
    study.main(argv + ["--write_only", "--rows", "(a)", "(b)"])
    some = out.read_text()
    assert "| (a) InfoNCE" in some and "| (b) WIGA" in some and "(d) ECCA" not in some and "Not finished" not in some
    assert "attribute oracle" in some and "start model, zero-shot" in some
    with pytest.raises(SystemExit, match=r"no row of the ecca study starts with \(z\)"):
        study.main(argv + ["--write_only", "--rows", "(z)"])


def test_a_variant_setting_replaces_the_studys(tmp_path):
    from tipr.study.benchmark import BASELINE, COMPLETE_DATA, StudyConfig, study_runs

    runs = study_runs(tmp_path, StudyConfig(seeds=(0,)), "ecca", tmp_path / "start", tmp_path / "data")
    settings = {name: [f for i, f in enumerate(r[0].flags) if r[0].flags[i - 1] == "--setting"]
                for name, r in runs.items()}
    assert settings[BASELINE] == ["medium"] and settings[COMPLETE_DATA] == ["full"]
    # the rows without their own setting keep the flags (so the cache keys) they always had
    assert runs[BASELINE][0].flags[:runs[BASELINE][0].flags.index("--method")].count("--setting") == 1


@pytest.mark.parametrize("extra,same", [
    (["--completed_weight", "1"], True),  # the default, spelled out
    (["--no-use_fmc", "--use_fmc"], True),
    (["--completed_weight", "0"], False),
    (["--no-use_epga"], False),
])
def test_a_run_key_names_what_it_trains(tmp_path, extra, same):
    from tipr.study.benchmark import cache_key_parts
    from tipr.study.runs import TrainRun

    base = ["--preset", "tiny", "--dataset", "cuhk-pedes", "--data_root", str(tmp_path), "--method", "ecca"]

    def key(flags):
        return TrainRun("x", flags, tmp_path, *reversed(cache_key_parts(flags))).key

    assert (key(base + extra + ["--seed", "0"]) == key(base + ["--seed", "0"])) is same
    assert key(base + ["--seed", "1"]) != key(base + ["--seed", "0"])
    clip = base[:-1] + ["clip", "--seed", "0"]
    assert cache_key_parts(clip) == (clip, "")
