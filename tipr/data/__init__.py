"""Datasets for text-to-image person retrieval: readers, partitions, torch datasets and transforms."""

from tipr.data.datasets import CaptionList, ImageList, TrainPairs
from tipr.data.partition import SETTINGS, Modality, Partition, partition_pairs
from tipr.data.readers import load_dataset
from tipr.data.records import AnnotationError, EvalSplit, MissingImagesError, PersonDataset, TrainRecord
from tipr.data.transforms import build_transform

__all__ = [
    "AnnotationError", "CaptionList", "EvalSplit", "ImageList", "MissingImagesError", "Modality", "Partition",
    "PersonDataset", "SETTINGS", "TrainPairs", "TrainRecord", "build_transform", "load_dataset",
    "partition_pairs",
]
