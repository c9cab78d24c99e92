"""SynthPEDES rendering stays byte-identical: the figures in docs/ and the shipped assets were made with it."""

import hashlib

import numpy as np
import pytest

from tipr.data.synthetic import _palette, _rng, sample_identity
from tipr.data.synthetic_render import render_pedestrian

VIEWS = ("front", "back", "side")
# sha256 over the pixels of identities 0-29 of seed 3 in every view at 128x64 (every garment, bag, hair style,
# headwear and carried item occurs), rendered before render_pedestrian's figure was split into named functions
DIGEST_128X64 = (
    "6673b72dac24a647497dcb158cd3756c179d9454713451809d594c8a7168edc5"
)
# identities 0-2, every view, at the dataset's default size
DIGEST_384X128 = "43a00b07209e778fafde76a41deb4b771ae5f3f015e14456488b22c413e8c497"


def _digest(identities: int, size: tuple[int, int]) -> str:
    digest = hashlib.sha256()
    for pid in range(identities):
        base = sample_identity(3, pid)
        palette = _palette(3, pid, base)
        for k, view in enumerate(VIEWS):
            image, scene = render_pedestrian({**base, "view": view}, view, size, _rng(3, pid, 3, k), palette)
            digest.update(np.asarray(image).tobytes())
            digest.update(repr(sorted(scene.items())).encode())
    return digest.hexdigest()


@pytest.mark.parametrize("identities, size, expected",
                         [(30, (128, 64), DIGEST_128X64), (3, (384, 128), DIGEST_384X128)])
def test_rendering_is_unchanged(identities, size, expected):
    assert _digest(identities, size) == expected
