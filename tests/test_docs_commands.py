"""Every shell command in README.md and docs/*.md is run by a test, so the docs stay true.

A command is one logical line of a ```bash (or sh, shell) block: continuations joined, comments dropped. Each
has one line in COVERAGE, keyed by its text as written:

- ``Run(add=..., replace=...)``: run here, at a tiny size, in the order of its document, in one scratch folder
  per document (so a document's commands must chain);
- ``By("tests/x.py::test_name", ...)``: those tests run what the command runs (they must exist and their module
  must name the command's program);
- ``Help()``: an interactive command (a login, a questionnaire): its ``--help`` runs (in this process).

Every ``--flag`` of a command that calls one of the repo's programs must also be listed by that program's
``--help``. A command added to the docs without a COVERAGE line fails ``test_every_doc_command_is_covered``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import runpy
import shlex
import subprocess
import sys
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
SHELL_FENCE = re.compile(r"^```(bash|sh|shell)\s*$")
TINY_TRAIN = "--preset tiny --image_size 64x32 --train_batch_size 8 --cpu --report_to none --max_train_steps 1 " \
             "--validation_epochs 0 --no-eval_test"


@dataclass(frozen=True)
class Run:
    """Run the command here at a tiny size: ``replace`` (old, new) pairs first, then ``add`` appended."""

    add: str = ""
    replace: tuple[tuple[str, str], ...] = ()

    def command(self, command: str) -> str:
        for old, new in self.replace:
            assert old in command, f"{old!r} is not in {command!r}: update COVERAGE"
            command = command.replace(old, new)
        return f"{command} {self.add}".strip()


@dataclass(frozen=True)
class By:
    """Named tests run what the command runs."""

    tests: tuple[str, ...]

    def __init__(self, *tests: str):
        object.__setattr__(self, "tests", tests)


class Help:
    """An interactive command: its ``--help`` runs."""


THIS = "tests/test_docs_commands.py"
TRAINS = "tests/test_trainer.py::test_each_method_trains_and_saves_a_loadable_model"
SERVES = "tests/test_app_server.py::test_serves_quickly_and_lists_every_action"
EVALUATES = "tests/test_evaluate.py::test_cli_prints_json_or_a_table"
RERANKS = "tests/test_evaluate.py::test_rerank_reorders_only_the_top_k_by_gif_score"
TWO_RANKS = "tests/test_trainer.py::test_two_cpu_processes_train_in_sync"
# the script at a tiny size, and each method's step (fp32 and bf16) through the same code
BENCH_TRAIN_STEP = ("tests/test_train_step_bench.py::test_the_script_prints_a_row_from_a_child_process",
                    "tests/test_train_step_bench.py::test_each_method_step_is_measured")
COVERAGE = {
    # README.md
    "pip install -r requirements.txt && python app.py": By(f"{THIS}::test_requirements_pin_what_is_installed", SERVES),
    "python assets/build.py": By("tests/test_app_build.py::test_gallery_index_and_size_check_on_a_tiny_build"),
    "bash .ci/run": By(f"{THIS}::test_ci_runs_the_readme_test_command"),
    "HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False python -m pytest -q tests":
        By(f"{THIS}::test_ci_runs_the_readme_test_command"),
    "python -m tipr.data.synthetic --out data --identities 1000 --seed 0":
        Run(replace=(("--identities 1000", "--identities 6 --image_size 64x32"),)),
    "accelerate launch train/run.py --method ecca --dataset cuhk-pedes --data_root data --setting medium "
    "--output_dir runs/ecca": Run(add=TINY_TRAIN),
    "python -m tipr.evaluate --model runs/ecca --dataset cuhk-pedes --data_root data": Run(),
    # docs/app.md
    "pip install -r requirements.txt": By(f"{THIS}::test_requirements_pin_what_is_installed"),
    "python app.py": By(SERVES),
    "python app.py --help": By(f"{THIS}::test_doc_flags_are_the_programs_flags"),
    "HF_HUB_OFFLINE=1 python -m pytest -q tests/test_app_units.py tests/test_uploads.py tests/test_app_build.py "
    "tests/test_app_server.py": By(f"{THIS}::test_pytest_commands_select_tests"),
    "TIPR_SCREENSHOTS=docs/screenshots python -m pytest -q tests/test_app_server.py -k browser":
        By("tests/test_app_server.py::test_browser_runs_each_tab", f"{THIS}::test_pytest_commands_select_tests"),
    # docs/app.md, Large galleries
    "python -m tipr.index --model assets/model --gallery /data/cameras --out /data/cameras-index":
        By("tests/test_index.py::test_two_processes_write_the_index_one_process_writes"),
    "python app.py --gallery /data/cameras-index": By("tests/test_index_app.py::test_app_serves_an_index_folder"),
    "accelerate launch --multi_gpu --num_processes 8 -m tipr.index --model M --gallery G --out INDEX":
        By("tests/test_index.py::test_two_processes_write_the_index_one_process_writes"),
    "OMP_NUM_THREADS=1 python benchmarks/bench_index.py --synthetic_sizes 100000 1000000 --real_images 100000 "
    "--app_size 1000000 --out docs/results/index_benchmark.md": By("tests/test_index.py::test_bench_index_runs_tiny"),
    # docs/app.md, The demo's figures
    "OMP_NUM_THREADS=1 python benchmarks/demo_check.py --out docs/results/demo.md":
        By("tests/test_demo_check.py::test_the_script_writes_the_three_measures"),
    # docs/data.md
    "python -m tipr.data.synthetic --out data --identities 200 --profile icfg-pedes":
        By("tests/test_synthetic.py::test_profile_cli_and_bad_input"),
    # docs/training.md
    "python benchmarks/bench_train_step.py --device cuda --backbone ViT-B-16 --image_size 384x128 --batch_sizes 64 "
    "128 --precisions bf16 --steps 10 --evaluate": By(*BENCH_TRAIN_STEP),
    "OMP_NUM_THREADS=2 python benchmarks/bench_train_step.py --backbone ViT-B-16 --image_size 384x128 "
    "--batch_sizes 4 --precisions fp32 bf16 --evaluate": By(*BENCH_TRAIN_STEP),
    "OMP_NUM_THREADS=2 python benchmarks/bench_train_step.py --batch_sizes 32 --precisions fp32 bf16 --steps 5":
        By(*BENCH_TRAIN_STEP),
    "accelerate launch train/run.py --method ecca --dataset cuhk-pedes --data_root data/ --setting medium "
    "--output_dir outputs/ecca-cuhk-medium": By(TRAINS),
    "python -m tipr.data.synthetic --out synth --identities 200 --seed 0 --image_size 128x64":
        By("tests/test_synthetic.py::test_bad_input_and_cli"),
    "python train/run.py --preset tiny --method ecca --setting medium --dataset synthpedes --data_root "
    "synth/CUHK-PEDES --output_dir outputs/tiny-ecca --cpu": By(TRAINS),
    "python -m tipr.evaluate --model outputs/tiny-ecca --dataset synthpedes --data_root synth/CUHK-PEDES":
        By(EVALUATES),
    "accelerate launch train/run.py --config run.yaml --learning_rate 5e-5":
        By("tests/test_trainer.py::test_config_file_then_command_line_win"),
    "python -m tipr.generate --dataset cuhk-pedes --data_root data/ --generator stabilityai/sd-turbo --cache gen/ "
    "--split all": By("tests/test_generate_cli.py::test_interrupted_run_resumes"),
    "accelerate launch train/run.py --method gea --dataset cuhk-pedes --data_root data/ --generator "
    "stabilityai/sd-turbo --generation_cache gen/": By(TRAINS),
    "accelerate config": Help(),
    "accelerate launch train/run.py --method ecca ...": By(TWO_RANKS),
    "accelerate launch --multi_gpu --num_processes 4 train/run.py --method ecca ... --train_batch_size 64":
        By(TWO_RANKS),
    "python -m tipr.evaluate --model outputs/ecca-cuhk-medium --dataset cuhk-pedes --data_root data/ [--split val] "
    "[--json]": By(EVALUATES),
    "python -m tipr.evaluate --model user/tipr-gea-cuhk --dataset cuhk-pedes --data_root data/ --rerank --generator "
    "stabilityai/sd-turbo --generation_cache gen/": By(EVALUATES, RERANKS),
    "accelerate launch train/run.py ...same options... --resume_from_checkpoint latest":
        By("tests/test_trainer.py::test_resume_after_a_kill_matches_an_uninterrupted_run"),
    "hf auth login": Help(),
    "accelerate launch train/run.py ... --push_to_hub --hub_model_id your-name/tipr-ecca-cuhk-medium "
    "[--hub_private_repo]": By("tests/test_trainer.py::test_push_to_hub_offline_fails_fast_after_saving"),
}


def doc_commands(doc: str) -> list[str]:
    """The commands of a document's shell blocks, as COVERAGE spells them: words split as the shell does."""
    commands, block, pending = [], False, ""
    for line in (REPO / doc).read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            block = bool(SHELL_FENCE.match(line)) and not block
            continue
        if not block:
            continue
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        tokens = shlex.split(pending, comments=True)
        pending = ""
        if tokens:
            commands.append(" ".join(tokens))
    return commands


ALL = [(doc, command) for doc in DOCS for command in doc_commands(doc)]


def programs(command: str) -> list[tuple[str, list[str]]]:
    """(program, its arguments) of each part of a command: a module (``tipr.evaluate``) or a script path
    (``train/run.py``), also under ``accelerate launch``, else the first word."""
    out = []
    for part in re.split(r"\s(?:&&|\|\||;|\|)\s", command):
        tokens = [t for t in shlex.split(part) if not re.fullmatch(r"[A-Z_]+=\S*", t)]
        if tokens[0] in ("python", "accelerate") and "-m" in tokens:  # python -m M, accelerate launch ... -m M
            i = tokens.index("-m")
            out.append((tokens[i + 1], tokens[i + 2:]))
        elif tokens[0] in ("python", "accelerate", "bash") and any(t.endswith((".py", "/run")) for t in tokens):
            i = next(i for i, t in enumerate(tokens) if t.endswith((".py", "/run")))
            out.append((tokens[i], tokens[i + 1:]))
        else:
            out.append((tokens[0], tokens[1:]))
    return out


def test_every_doc_command_is_covered():
    missing = [f"{doc}: {command}" for doc, command in ALL if command not in COVERAGE]
    assert not missing, ("add one line per command to COVERAGE in tests/test_docs_commands.py (Run it at a tiny "
                         "size, or name the tests By which it runs):\n" + "\n".join(missing))
    stale = sorted(set(COVERAGE) - {command for _, command in ALL})
    assert not stale, "COVERAGE names commands no document has any more:\n" + "\n".join(stale)


@pytest.mark.parametrize("doc, command", [(d, c) for d, c in ALL if isinstance(COVERAGE.get(c), By)])
def test_named_tests_exist_and_run_the_program(doc, command):
    for node in COVERAGE[command].tests:
        path, name = node.split("::")
        source = (REPO / path).read_text(encoding="utf-8")
        assert re.search(rf"^def {name}\(", source, re.M), f"{node} (for {doc}: {command}) does not exist"
    sources = " ".join((REPO / node.split("::")[0]).read_text(encoding="utf-8") for node in COVERAGE[command].tests)
    for program, _ in programs(command):
        assert Path(program).name in sources, f"none of {COVERAGE[command].tests} mentions {program}"


@cache
def help_text(program: str) -> str:
    """What ``--help`` prints for one of the repo's programs, run in this process."""
    argv, out = sys.argv, io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # a program's logging.basicConfig must not outlive it
    try:
        sys.argv = [program, "--help"]
        with (contextlib.redirect_stdout(out), pytest.raises(SystemExit), warnings.catch_warnings()):
            warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module was imported already
            if program.endswith(".py"):
                runpy.run_path(str(REPO / program), run_name="__main__")
            else:
                runpy.run_module(program, run_name="__main__", alter_sys=True)
    finally:
        sys.argv = argv
        root.handlers[:] = handlers
        root.setLevel(level)
    return out.getvalue()


@pytest.mark.parametrize("doc, command", ALL)
def test_doc_flags_are_the_programs_flags(doc, command):
    for program, args in programs(command):
        if not (program.startswith("tipr.") or (REPO / program).suffix == ".py"):
            continue
        flags = {a.strip("[]").split("=")[0] for a in args if a.strip("[]").startswith("--")}
        if not flags:
            continue
        listed = set(re.findall(r"--[\w-]+", help_text(program)))
        assert flags <= listed, f"{doc}: {program} has no {sorted(flags - listed)}"


@pytest.mark.parametrize("command", [c for _, c in ALL if isinstance(COVERAGE.get(c), Help)])
def test_interactive_commands_exist(command):
    from importlib.metadata import entry_points

    name, *args = shlex.split(command)
    (script,) = entry_points(group="console_scripts", name=name)
    argv, out = sys.argv, io.StringIO()
    try:
        sys.argv = [name, *args, "--help"]
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit:
            script.load()()
    finally:
        sys.argv = argv
    assert exit.value.code in (0, None) and "usage" in out.getvalue().lower(), out.getvalue()


def _scratch(tmp_path: Path) -> Path:
    """A folder where the repo's scripts are found at the paths the docs give them."""
    for name in ("app.py", "train", "assets", "benchmarks"):
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("doc", [d for d in DOCS if any(isinstance(COVERAGE.get(c), Run) for c in doc_commands(d))])
def test_each_documents_commands_run_in_order_at_a_tiny_size(doc, tmp_path):
    scratch = _scratch(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for command in doc_commands(doc):
        if isinstance(COVERAGE.get(command), Run):
            tiny = COVERAGE[command].command(command)
            proc = subprocess.run(["bash", "-c", tiny], cwd=scratch, env=env, capture_output=True, text=True,
                                  timeout=600)
            assert proc.returncode == 0, f"{doc}: {tiny}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"


# ------------------------------------------------------------------------------------------------ checks By
def test_ci_runs_the_readme_test_command():
    readme = [c for c in doc_commands("README.md") if "pytest" in c]
    ci = [shlex.join(shlex.split(line, comments=True)) for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert len(readme) == 1 and readme[0] in ci, (readme, ci)
    assert "requirements-test.txt" in (REPO / ".ci" / "run").read_text()


def test_requirements_pin_what_is_installed():
    """``pip install -r requirements.txt`` gives the versions the tests run against."""
    from importlib.metadata import version

    from packaging.requirements import Requirement

    pins = [Requirement(line) for line in (REPO / "requirements.txt").read_text().splitlines()
            if re.match(r"[A-Za-z0-9_.-]+==", line)]
    assert len(pins) > 10
    for pin in pins:
        assert pin.specifier.contains(version(pin.name), prereleases=True), (pin, version(pin.name))


def test_pytest_commands_select_tests():
    for doc, command in ALL:
        for program, args in programs(command):
            if program != "pytest":
                continue
            files = [a for a in args if a.startswith("tests")]
            assert files and all((REPO / f).exists() for f in files), f"{doc}: {command}"
            if "-k" in args:
                pattern = args[args.index("-k") + 1]
                assert any(re.search(rf"^def test_\w*{pattern}", (REPO / f).read_text(), re.M) for f in files), command
