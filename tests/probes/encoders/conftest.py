import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def photo_dir(tmp_path):
    """Five small RGB images (JPEG and PNG) with some structure."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5):
        yy, xx = np.mgrid[0:48, 0:64]
        base = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1) + rng.integers(0, 40, (48, 64, 3))
        suffix = "jpg" if i % 2 else "png"
        Image.fromarray(base.clip(0, 255).astype(np.uint8)).save(folder / f"img{i}.{suffix}")
    return folder
