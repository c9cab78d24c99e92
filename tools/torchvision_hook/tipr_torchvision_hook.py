"""Run tipr's torchvision repair before the first `import torchvision` of any program (tools included).

Installed with tipr as a `.pth` line, so that programs which import torchvision before tipr (the
`accelerate` command line imports timm, hence torchvision, at start-up) work on CPU-only torch too.
Costs nothing until torchvision is imported; where torchvision loads normally the repair does nothing.
"""

import importlib.abc
import sys


class _RepairBeforeTorchvision(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            sys.meta_path.remove(self)
            try:
                import tipr._torchvision_compat  # noqa: F401
            except Exception:  # never break an import that could work without the repair
                pass
        return None


if not any(isinstance(f, _RepairBeforeTorchvision) for f in sys.meta_path) and "torchvision" not in sys.modules:
    sys.meta_path.insert(0, _RepairBeforeTorchvision())
