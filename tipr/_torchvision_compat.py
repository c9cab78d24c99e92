"""Let the pure-Python parts of torchvision import where its compiled ops cannot load.

torchvision 0.28.0 is the only release pinned to torch 2.13.0, and on a CPU-only build of torch its
``_C`` extension fails to load. ``torchvision/_meta_registrations.py`` then registers fake kernels for
``torchvision::nms`` and ``torchvision::qnms`` on schemas that were never defined, and the import dies
with ``operator torchvision::nms does not exist`` (breaking open_clip, timm and diffusers' UNet).

We define those two schemas, and only when the extension really failed to load: where torchvision
works normally this module changes nothing. Calling the ops still raises torchvision's own
"Couldn't load custom C++ ops" error; tipr never calls them.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import torch

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library: torch.library.Library | None = None  # kept alive: dropping it would unregister the schemas


def _extension_loads() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # no torchvision: nothing to repair
    for folder in spec.submodule_search_locations:
        for name in os.listdir(folder):
            if name.startswith("_C.") and name.endswith((".so", ".pyd")):
                try:
                    torch.ops.load_library(os.path.join(folder, name))
                    return True
                except (OSError, RuntimeError):
                    return False
    return False


def _op_exists(name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
        return True
    except (AttributeError, RuntimeError):
        return False


def apply() -> bool:
    """Define the missing schemas if needed; returns True when a repair was made."""
    global _library
    if "torchvision" in sys.modules or _library is not None or _extension_loads():
        return False
    missing = [name for name in _SCHEMAS if not _op_exists(name)]
    if not missing:
        return False
    _library = torch.library.Library("torchvision", "DEF")
    for name in missing:
        _library.define(_SCHEMAS[name])
    return True


apply()
