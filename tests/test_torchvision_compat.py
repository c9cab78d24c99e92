import subprocess
import sys

import pytest


@pytest.mark.parametrize("code", [
    "import tipr, open_clip; from diffusers import UNet2DConditionModel; print('ok')",
    # no tipr import at all: the .pth hook from tools/torchvision_hook repairs torchvision first (accelerate's CLI)
    "import timm, torchvision.transforms; print('ok')",
])
def test_imports_work_in_a_fresh_interpreter(code):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_repair_is_idempotent_and_silent_once_torchvision_is_loaded():
    import tipr._torchvision_compat as compat
    import torchvision  # noqa: F401

    assert compat.apply() is False  # torchvision already imported: nothing to do, nothing redefined
