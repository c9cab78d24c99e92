"""benchmarks/ecca_collapse.py at a tiny size: trains the start and one run, writes the diagnostics table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_collapse_table_is_written(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("ecca_collapse_script", REPO / "benchmarks" / "ecca_collapse.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    name = "(d) + w_fmc 0.1 (the defaults now)"
    monkeypatch.setattr(module, "RUNS", {name: module.RUNS[name]})
    out = tmp_path / "collapse.md"
    monkeypatch.setattr(sys, "argv", ["ecca_collapse.py", "--work", str(tmp_path / "work"), "--identities", "30",
                                      "--pretrain_identities", "10", "--pretrain_epochs", "1", "--max_train_steps",
                                      "2", "--out", str(out)])
    module.main()
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| run | R1 | mAP | random-pair cosine | FMC max/min weight | image code entropy")
    start, run = rows[1], rows[2]
    assert start.startswith("| start (no training here) |") and start.count("–") == 3  # no prototypes
    cells = [c.strip() for c in run.strip("|").split("|")]
    assert cells[0] == name and all(c != "–" for c in cells[1:])
    assert -1 <= float(cells[3]) <= 1 and 0 <= float(cells[5]) <= 4.16
