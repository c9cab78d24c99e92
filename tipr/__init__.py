"""tipr: text-to-image person retrieval with ECCA and GEA on an open_clip backbone."""

from tipr import _torchvision_compat  # noqa: F401  (must run before anything imports torchvision)

__version__ = "0.1.0"
