"""ECCA: enhancing cross-modal completion and alignment (unsupervised incomplete text-image person retrieval)."""

from .feature_bank import FeatureBank
from .fmc import affinity_matrix, fmc_complete, fmc_loss
from .hsng import hsng_neighbours, jaccard_distance, k_reciprocal_sets, knn, kth_similarity, plain_neighbours
from .config import ECCAConfig
from .epga import UnifiedPrototypes, epga_loss, sinkhorn
from .noun_phrases import extract_noun_phrases
from .prototype_fusion import PrototypeFusion
from .wiga import PhraseIndex, phrase_iou, wiga_loss, wiga_weights
