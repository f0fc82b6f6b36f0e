"""groups=None (`featcodec encode`'s default): channel groups from the latent's size, coded on threads,
and the same bytes whatever the thread count."""

import numpy as np
import pytest
import torch

from codec.bitstream import unpack
from codec.entropy import auto_groups, native, substreams
from codec.pipeline import decode_stream, encode_features
from tests.codec.conftest import fpn_features


def test_one_group_per_2_18_symbols_capped_by_channels_and_16():
    assert auto_groups(192, 192 * 16 * 16) == 1  # a 256 px SAM2 latent: one substream, no overhead
    assert auto_groups(192, 192 * 64 * 64) == 3  # 1024 px: 786 432 symbols
    assert auto_groups(192, 2**18) == 1 and auto_groups(192, 2**18 + 1) == 2
    assert auto_groups(4, 10**9) == 4
    assert auto_groups(1000, 10**9) == 16
    assert auto_groups(8, 0) == 1


@pytest.mark.skipif(not native.native_available(), reason="codec._C not built")
def test_auto_groups_bytes_do_not_depend_on_threads(fpn_codec, monkeypatch):
    # tiny latents: a small group size so that they split too (the rule, not the constant, is under test)
    monkeypatch.setattr(substreams, "SYMBOLS_PER_GROUP", 100)
    features = fpn_features(batch=1)
    one = encode_features(fpn_codec, features, coder="native", groups=None, threads=1)[0]
    symbols = fpn_codec.model.latent_shapes((4, 4))["y"]
    expected = auto_groups(symbols[0], int(np.prod(symbols)))
    names = [n for n in unpack(one).substreams if n.startswith("y.")]
    assert len(names) == expected > 1
    for threads in (2, 3, None):
        assert encode_features(fpn_codec, features, coder="native", groups=None, threads=threads)[0] == one
    decoded = [decode_stream(fpn_codec, one, threads=t).features for t in (1, 4)]
    for name in decoded[0]:
        assert torch.equal(decoded[0][name], decoded[1][name])
