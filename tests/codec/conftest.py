"""Shared fixtures: a mini-hiera feature cache of small PNGs and tiny codecs trained on it."""

import numpy as np
import pytest
import torch
from PIL import Image

from codec.codec_dir import save_codec
from codec.levels import random_features
from codec.models import create_codec
from codec.train import train_codec
from probes.encoders import collect_images, create_encoder, extract_features, sample_images_dir
from probes.encoders.spec import FeatureLevel

TINY = {"N": 16, "M": 24}
# the training options of a tiny codec that trains in a second: TINY sizes, small batches, a large step
TINY_TRAINING = dict(batch_size=2, lr=3e-3, hparams=TINY, progress=False)
# a SAM2-like FPN with few channels: three levels at strides 4/8/16
FPN_LEVELS = [FeatureLevel("fpn0", 8, 4), FeatureLevel("fpn1", 8, 8), FeatureLevel("fpn2", 16, 16)]


def write_images(folder, n=4, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        yy, xx = np.mgrid[0:48, 0:64]
        base = np.stack([xx * (3 + i), yy * 5, (xx + yy) * 2], -1) + rng.integers(0, 60, (48, 64, 3))
        path = folder / f"img{i}.png"
        Image.fromarray(base.clip(0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def image_paths():
    """The bundled sample images: a real photograph and three rendered scenes."""
    return collect_images([sample_images_dir()])


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory, image_paths):
    encoder = create_encoder("mini-hiera-random", random_init=True, resolution=64)
    return extract_features(
        encoder, image_paths, tmp_path_factory.mktemp("cache"), batch_size=2, progress=False
    )


@pytest.fixture(scope="session")
def trained_codecs(tmp_path_factory, feature_cache):
    """Hyperprior codecs at three λ (briefly trained), plus factorized and uniform baselines."""
    out = {}
    for lmbda in (0.3, 10.0, 300.0):
        out[("hyperprior", lmbda)] = train_codec(
            feature_cache,
            tmp_path_factory.mktemp(f"hyper{lmbda}"),
            lmbda=lmbda,
            steps=40,
            **TINY_TRAINING,
        )
    out[("factorized", 10.0)] = train_codec(
        feature_cache,
        tmp_path_factory.mktemp("fact"),
        lmbda=10.0,
        kind="factorized",
        steps=10,
        **TINY_TRAINING,
    )
    out[("uniform", 10.0)] = train_codec(
        feature_cache, tmp_path_factory.mktemp("unif"), lmbda=10.0, kind="uniform", progress=False
    )
    return out


def cache_batch(cache, indexes=(0, 1, 2, 3)):
    items = [cache[i] for i in indexes]
    return {name: torch.stack([it[name] for it in items]).float() for name in items[0]}


@pytest.fixture
def fpn_codec(tmp_path):
    """An untrained (random, updated) hyperprior over three FPN-like levels, saved and loaded."""
    torch.manual_seed(0)
    model = create_codec("hyperprior", FPN_LEVELS, resolution=64, **TINY)
    return save_codec(model, tmp_path / "fpn", encoder="test-fpn", weights_id="random-init", lmbda=1.0)


def fpn_features(batch=2, seed=0, resolution=64):
    return random_features(FPN_LEVELS, resolution, batch=batch, seed=seed, scale=3)


@pytest.fixture(scope="session", autouse=True)
def _single_thread():
    """Tiny models: one intra-op thread is faster, and immune to OpenMP spinning on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
