"""Suite-wide settings: offline Hub, no analytics, one torch thread per process.

The suite runs app servers and trainers in subprocesses beside the pytest process on 2 cores; two busy
torch processes with 2 OpenMP threads each slow each other down several-fold, one thread each does not.
Subprocesses inherit the environment variables set here.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> str:
    """A SynthPEDES of 8 identities at 64x32, built once per session (CUHK-PEDES layout)."""
    from tipr.data.synthetic import generate_synthpedes

    out = tmp_path_factory.getbasetemp() / "synthpedes-8"
    if not (out / "CUHK-PEDES" / "reid_raw.json").exists():
        generate_synthpedes(out, identities=8, seed=0, image_size=(64, 32), workers=1)
    return str(out / "CUHK-PEDES")


@pytest.fixture(scope="session")
def run():
    """train/run.py as a module (a script, not a package module), so tests call its main(argv) in-process."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("tipr_train_run", Path(__file__).resolve().parents[1] / "train" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
