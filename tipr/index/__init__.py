"""Large galleries: embed offline (on many GPUs), index with faiss, load memory-mapped and search in milliseconds."""

from tipr.index.build import default_factory
from tipr.index.folder import IndexFolder, IndexFolderError, is_index_folder, open_index

__all__ = ["IndexFolder", "IndexFolderError", "default_factory", "is_index_folder", "open_index"]
