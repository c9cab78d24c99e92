"""Large galleries: embed offline (on many GPUs), index with faiss, load memory-mapped and search in milliseconds."""

from tipr.index.build import default_factory
from tipr.index.folder import IndexError_, IndexFolder, is_index_folder, open_index

__all__ = ["IndexError_", "IndexFolder", "default_factory", "is_index_folder", "open_index"]
