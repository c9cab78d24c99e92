"""benchmarks/neighbour_precision.py on a tiny SynthPEDES: identity and looks columns, sane values."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("setting", ["medium", "hard"])
def test_neighbour_table_reads_identity_and_looks(synth, tmp_path, capsys, setting):
    from tipr.app.testing import build_random_model

    spec = importlib.util.spec_from_file_location("neighbour_precision", REPO / "benchmarks" / "neighbour_precision.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    model = build_random_model(tmp_path / "model", image_size=(64, 32))
    script.main(["--model", str(model), "--data_root", synth, "--setting", setting, "--k", "3", "--k_prime", "2"])
    out = capsys.readouterr().out
    rows = re.findall(r"^\| (image|text) \| (plain|hsng) \| ([\d.]+)% \| ([\d.]+)% \| ([\d.]+)% \| ([\d.]+)% \|$",
                      out, flags=re.M)
    assert [(m, n) for m, n, *_ in rows] == [("image", "plain"), ("image", "hsng"), ("text", "plain"), ("text", "hsng")]
    for *_, same, chance, alike, alike_chance in rows:
        assert 0 <= float(same) <= 100 and 0 < float(chance) < 100
        # every person shares some looks with anyone (most people carry no headwear), never all with a stranger
        assert 0 < float(alike_chance) < 100 and 0 < float(alike) <= 100
    quarters = re.findall(r"^\| (image|text) \| ([a-z' -]+) \| ([\d.]+)% \| ([\d.]+)% \|$", out, flags=re.M)
    assert [(m, n) for m, n, *_ in quarters] == [(m, n) for m in ("image", "text") for n in (
        "anchor-completion cosine", "neighbours' mutual cosine")]
    assert all(0 < float(share) <= 100 for *_, top, bottom in quarters for share in (top, bottom))
