"""tipr: text-to-image person retrieval with ECCA and GEA on an open_clip backbone."""

from tipr import _torchvision_compat  # noqa: F401  (must run before anything imports torchvision)

__version__ = "0.1.0"


def __getattr__(name: str):  # `from tipr import load_model` without importing open_clip on `import tipr`
    if name == "load_model":
        from tipr.models.tipr_model import load_model

        return load_model
    raise AttributeError(f"module 'tipr' has no attribute {name!r}")
