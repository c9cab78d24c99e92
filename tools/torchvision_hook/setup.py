"""Installs tipr_torchvision_hook.pth at the root of site-packages (pyproject.toml has the rest)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "tipr_torchvision_hook.pth"


class BuildWithPth(build_py):
    """A .pth file must sit at the root of site-packages, which no declarative option can express."""

    def run(self):
        super().run()
        shutil.copy(Path(__file__).parent / PTH, Path(self.build_lib) / PTH)

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / PTH)]


setup(cmdclass={"build_py": BuildWithPth})
