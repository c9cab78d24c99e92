"""The SynthPEDES study: the start model, the attribute oracle and every variant over seeds, as Markdown tables.

    OMP_NUM_THREADS=1 python benchmarks/study.py --study ecca --processes 2   # -> docs/results/study_ecca.md

Makes (once, cached under --work) the benchmark SynthPEDES, the start model (a tiny CLIP pretrained on alt-text of
other renders, tipr.study.start_model), then trains every variant and seed with train/run.py, --processes at a
time, one thread each. Each run checkpoints and a rerun of the same command continues where it stopped; the table
is rewritten after every finished run, listing the runs still to come. --write_only writes the table from the
finished runs without training anything.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from tipr.study.benchmark import StudyConfig, benchmark_data, report, study_runs
from tipr.study.runs import train_all
from tipr.study.start_model import StartModelRecipe, start_model_run

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    d, s = StudyConfig(), StartModelRecipe()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", choices=("ecca", "gea"), required=True)
    p.add_argument("--work", default="outputs/study", help="folder for data, runs and logs (reused)")
    p.add_argument("--identities", type=int, default=d.identities, help="benchmark people (test split: a tenth)")
    p.add_argument("--image_size", default=d.image_size)
    p.add_argument("--seeds", type=int, nargs="+", default=list(d.seeds))
    p.add_argument("--num_train_epochs", type=int, default=d.num_train_epochs)
    p.add_argument("--validation_epochs", type=int, default=d.validation_epochs)
    p.add_argument("--train_batch_size", type=int, default=d.train_batch_size)
    p.add_argument("--learning_rate", type=float, default=d.learning_rate)
    p.add_argument("--start_identities", type=int, default=s.identities, help="people rendered for the start model")
    p.add_argument("--start_epochs", type=int, default=s.epochs)
    p.add_argument("--processes", type=int, default=1, help="runs at a time, one thread each")
    p.add_argument("--checkpoint_steps", type=int, default=200, help="a killed run loses at most this many steps")
    p.add_argument("--generator", default=str(ROOT / "assets" / "generator"), help="GEA's diffusion generator")
    p.add_argument("--rows", nargs="+", default=None,
                   help="train and show only the rows whose names start so, e.g. --rows '(a)' '(d)' (default: all)")
    p.add_argument("--write_only", action="store_true", help="write the table from finished runs; train nothing")
    p.add_argument("--out", default=None, help="Markdown file (default docs/results/study_<study>.md)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    start = StartModelRecipe(identities=args.start_identities, image_size=args.image_size, epochs=args.start_epochs)
    config = StudyConfig(identities=args.identities, image_size=args.image_size, seeds=tuple(args.seeds),
                         num_train_epochs=args.num_train_epochs, validation_epochs=args.validation_epochs,
                         train_batch_size=args.train_batch_size, learning_rate=args.learning_rate, start=start)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else ROOT / "docs" / "results" / f"study_{args.study}.md"
    # the command that trains and resumes (what --write_only writes is what that command would write)
    command = "python benchmarks/study.py " + shlex.join(a for a in (sys.argv[1:] if argv is None else argv)
                                                         if a != "--write_only")

    data = benchmark_data(work, config)
    start_run = start_model_run(work, start)
    if not args.write_only:
        start_run.train(args.checkpoint_steps)
    if not start_run.done:
        raise SystemExit(f"the start model is not trained yet ({start_run.output_dir}); run without --write_only")
    extra = {"gea": ["--generator", args.generator, "--generation_cache", str(work / "generation-cache")]}
    runs = study_runs(work, config, args.study, start_run.output_dir, data, extra)
    if args.rows:
        runs = {name: variant for name, variant in runs.items() if name.startswith(tuple(args.rows))}
        if not runs:
            raise SystemExit(f"no row of the {args.study} study starts with {' or '.join(args.rows)}; its rows: "
                             + "; ".join(study_runs(work, config, args.study, start_run.output_dir, data, extra)))

    def write() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report(args.study, config, runs, data, start_run.output_dir, command))

    write()
    if not args.write_only:
        # seeds first: every variant gets seed 0 before any gets seed 1, so a stopped study still compares them
        ordered = [r for i in range(len(config.seeds)) for variant in runs.values() for r in variant[i:i + 1]]
        errors = train_all(ordered, processes=args.processes, checkpoint_steps=args.checkpoint_steps,
                           on_done=lambda run: write())
        write()
        if errors:
            raise SystemExit(f"{len(errors)} run(s) failed; see the logs named above")
    print(out.read_text())
    print(f"written to {out}")


if __name__ == "__main__":
    main()
