"""benchmarks/bench_train_step.py at a tiny size: every method's step is timed on the trainer's own objective,
ECCA's bank refresh is counted apart, and the script's table comes out of a child process per method."""

import importlib.util
from pathlib import Path

import pytest

from tipr.training.throughput import StepCost, default_data_root, fill_placeholder_cache, measure_step_cost

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from tipr.data import load_dataset
    from tipr.generation.tiny_pipeline import TiprTinyText2ImagePipeline

    work = tmp_path_factory.mktemp("bench")
    root = default_data_root(work, 12, (64, 32))
    TiprTinyText2ImagePipeline.from_scratch(seed=0).save_pretrained(work / "pipe")
    fill_placeholder_cache(work / "pipe", work / "cache", load_dataset("cuhk-pedes", root).all_captions(), (64, 32))
    return root, work


@pytest.mark.parametrize("method, precision", [("clip", "fp32"), ("ecca", "bf16"), ("gea", "fp32"),
                                               ("ecca+gea", "fp32")])
def test_each_method_step_is_measured(setup, method, precision):
    from tipr.data import load_dataset

    root, work = setup
    argv = ["--preset", "tiny", "--method", method, "--dataset", "cuhk-pedes", "--data_root", str(root),
            "--image_size", "64x32", "--train_batch_size", "4", "--setting", "medium",
            "--generator", str(work / "pipe"), "--generation_cache", str(work / "cache")]
    cost = measure_step_cost(argv, steps=2, warmup_steps=1, precision=precision, evaluate_test=True)
    data = load_dataset("cuhk-pedes", root)
    assert (cost.method, cost.batch_size, cost.precision, cost.steps) == (method, 4, precision, 2)
    assert cost.seconds_per_step > 0 and cost.pairs_per_second == pytest.approx(4 / cost.seconds_per_step)
    assert 0.1 < cost.peak_memory_gib < 64
    if "ecca" in method:  # one refresh encodes every train image and caption
        assert cost.bank_seconds > 0 and cost.bank_items == len(data.train_image_paths) + len(data.train)
    else:
        assert cost.bank_seconds is None and cost.bank_items is None
    assert cost.eval_queries == data.test.num_captions and cost.eval_seconds > 0
    assert cost.row().startswith(f"| {method} | 4 | {precision} | ")


def test_bad_precision_is_refused(setup):
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        measure_step_cost(["--method", "clip", "--dataset", "x", "--data_root", "y"], precision="int8")


def test_the_script_prints_a_row_from_a_child_process(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_train_step", REPO / "benchmarks" / "bench_train_step.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    costs = bench.main(["--methods", "ecca", "--batch_sizes", "4", "--steps", "1", "--warmup_steps", "0",
                        "--work_dir", str(tmp_path)])
    assert [c.method for c in costs] == ["ecca"] and isinstance(costs[0], StepCost) and costs[0].bank_items > 0
    out = capsys.readouterr().out
    assert "tipr-tiny at 64x32, random weights, cpu" in out and "| method | batch | precision |" in out
    assert costs[0].row() in out
