"""codec.devices.to_host: every tensor on the host, with one synchronisation, values and dtypes unchanged."""

import numpy as np
import pytest
import torch

from codec.devices import to_host

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.mark.parametrize("device", DEVICES)
def test_to_host_keeps_values_and_dtypes(device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    g = torch.Generator().manual_seed(0)
    tensors = {
        "symbols": torch.randint(-(1 << 20), 1 << 20, (2, 8, 5, 7), generator=g, dtype=torch.int32),
        "indexes": torch.randint(0, 64, (2, 8, 5, 7), generator=g, dtype=torch.int32),
        "bits": torch.rand(2, generator=g),
    }
    host = to_host({k: v.to(device) for k, v in tensors.items()})
    for name, t in tensors.items():
        assert host[name].dtype == t.numpy().dtype
        np.testing.assert_array_equal(host[name], t.numpy())
