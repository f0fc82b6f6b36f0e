"""What every featcodec codec shares: levels, normalisation, shape checks, checksums.

The interface follows CompressAI's CompressionModel: `forward` (training and evaluation: x_hat and
likelihoods), `compress` (per-item substreams + the shape they need) and `decompress`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from compressai.models import CompressionModel
from isal.isal_zlib import crc32  # zlib's CRC-32 (same values) by ISA-L: 25.6 vs 4.9 GB/s here

from codec.bitstream import BitstreamError
from codec.entropy import DEFAULT_CODER, get_coder
from codec.levels import FeatureLevel

from .normalization import FeatureNormalization
from .transforms import MultiLevelAnalysis, MultiLevelSynthesis

# Latent symbols are clamped to ±SYMBOL_CLAMP at quantisation (in forward and compress alike):
# normalised features never come near it, and CompressAI's rANS bypass coder fails beyond 2**27.
SYMBOL_CLAMP = 1 << 20
# Hyper-decoded means are quantised to this grid (1/16): both sides must use identical means.
MEAN_GRID = 16


@contextlib.contextmanager
def ieee_float32_convolutions() -> Iterator[None]:
    """cuDNN convolutions in IEEE float32, not TF32 (PyTorch's default for them): decoded features then stay
    within the tolerance of docs/bitstream.md ("Conformance") on every device."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


def crc32_arrays(*arrays: np.ndarray | torch.Tensor) -> int:
    crc = 0
    for a in arrays:
        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().numpy()
        a = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False)
        crc = crc32(memoryview(a).cast("B") if a.size else b"", crc)  # no copy of the bytes
    return crc


class FeatureCodec(CompressionModel):
    """Base of the codec kinds; `kind` is set by `register_codec`."""

    kind = "base"

    def __init__(self, levels: Sequence[FeatureLevel], resolution: int | None = None, grid_stride: int = 16):
        super().__init__()
        if not levels:
            raise ValueError("a codec needs at least one feature level")
        self.levels = list(levels)
        self.resolution = resolution
        self.grid_stride = int(grid_stride)
        self.normalization = FeatureNormalization(self.levels)

    # -- description -----------------------------------------------------------------------
    @property
    def level_names(self) -> list[str]:
        return [level.name for level in self.levels]

    def hparams(self) -> dict:
        return {"grid_stride": self.grid_stride}

    def config(self) -> dict:
        return {
            "kind": self.kind,
            "levels": [level.to_dict() for level in self.levels],
            "resolution": self.resolution,
            "hparams": self.hparams(),
        }

    def level_shapes(self, grid: Sequence[int]) -> dict[str, tuple[int, int, int]]:
        """C×H×W of every level whose grid is `grid` (H, W at stride grid_stride)."""
        gh, gw = grid
        out = {}
        for level in self.levels:
            h, w = gh * self.grid_stride, gw * self.grid_stride  # in pixels
            out[level.name] = (level.channels, h // level.stride, w // level.stride)
        return out

    def grid_of(self, x: dict[str, torch.Tensor]) -> tuple[int, int]:
        """The common grid of a batch of features; ValueError naming the level that does not fit."""
        missing = [name for name in self.level_names if name not in x]
        if missing:
            raise ValueError(f"features lack level(s) {missing}; this codec codes {self.level_names}")
        grid = None
        for level in self.levels:
            t = x[level.name]
            if t.ndim != 4 or t.shape[1] != level.channels:
                raise ValueError(
                    f"level {level.name}: expected B×{level.channels}×H×W features, got {tuple(t.shape)}"
                )
            h, w = t.shape[-2] * level.stride, t.shape[-1] * level.stride
            if h % self.grid_stride or w % self.grid_stride:
                raise ValueError(
                    f"level {level.name}: {t.shape[-2]}×{t.shape[-1]} at stride {level.stride} is not a "
                    f"multiple of the codec's grid stride {self.grid_stride}"
                )
            this = (h // self.grid_stride, w // self.grid_stride)
            if grid is None:
                grid = this
            elif this != grid:
                raise ValueError(
                    f"level {level.name}: spatial size {tuple(t.shape[-2:])} disagrees with the other levels"
                )
        return grid

    def elements_per_item(self, grid: Sequence[int]) -> int:
        return sum(int(np.prod(s)) for s in self.level_shapes(grid).values())

    def latent_shapes(self, grid: Sequence[int]) -> dict[str, list[int]]:
        """Shapes of the coded latents of one item (recorded in and checked against the stream)."""
        raise NotImplementedError

    @staticmethod
    def verify(kind: str, expected: int | None, actual: int) -> None:
        if expected is not None and int(expected) != actual:
            raise BitstreamError(
                f"{kind} checksum mismatch (stream {int(expected):#010x}, decoder {actual:#010x}): "
                + (
                    "the decoder did not reproduce the encoder's probability model"
                    if kind == "probability-model"
                    else "the entropy decoder did not reproduce the encoded symbols"
                )
            )

    @staticmethod
    def _groups(strings: list[dict[str, bytes]], channels: int, prefix: str = "y") -> list[tuple[int, int]]:
        """Channel groups of substreams "<prefix>.0" .. "<prefix>.G-1", checked on every item."""
        from codec.entropy import split_channels

        count = sum(1 for k in strings[0] if k.startswith(prefix + "."))
        names = {f"{prefix}.{g}" for g in range(count)}
        if not 1 <= count <= channels or any(names - set(item) for item in strings):
            raise BitstreamError(
                f"substreams {prefix}.0..{prefix}.G-1 missing or more than {channels} groups"
            )
        return split_channels(channels, count)

    def _require_updated(self) -> None:
        for name, module in self.named_modules():
            if hasattr(module, "_quantized_cdf") and module._quantized_cdf.numel() == 0:
                raise RuntimeError(f"codec module {name} has no CDF table; call update() (train-codec does)")
            if getattr(module, "frozen", True) is False:
                raise RuntimeError(
                    f"codec module {name} has no integer parameters; call update() (train-codec does)"
                )


class TransformFeatureCodec(FeatureCodec):
    """A learned codec with the multi-level analysis g_a / synthesis g_s (N hidden, M latent channels).

    The part shared by the factorized and the hyperprior codecs; subclasses add their entropy models.
    """

    def __init__(
        self,
        levels: Sequence[FeatureLevel],
        resolution: int | None = None,
        N: int = 128,
        M: int = 192,
        grid_stride: int = 16,
        adapter_rank: int | None = None,
    ):
        """adapter_rank: project levels finer than the grid to this many channels first (a cheaper analysis;
        codec.models.transforms); None: the full adapters."""
        super().__init__(levels, resolution, grid_stride)
        self.N, self.M = int(N), int(M)
        if adapter_rank is not None and int(adapter_rank) < 1:
            raise ValueError(f"adapter_rank must be >= 1, got {adapter_rank}")
        self.adapter_rank = None if adapter_rank is None else int(adapter_rank)
        self.g_a = MultiLevelAnalysis(self.levels, N, M, grid_stride, self.adapter_rank)
        self.g_s = MultiLevelSynthesis(self.levels, N, M, grid_stride)

    def hparams(self) -> dict:
        # adapter_rank only when set: the configs (and ids) of codecs without it stay as they were
        rank = {} if self.adapter_rank is None else {"adapter_rank": self.adapter_rank}
        return {"N": self.N, "M": self.M, "grid_stride": self.grid_stride, **rank}

    @torch.no_grad()
    def compress(
        self,
        x: dict[str, torch.Tensor],
        coder: str = DEFAULT_CODER,
        groups: int | None = 1,
        threads: int | None = None,
    ) -> dict:
        """Per item: substreams {"y.0", ...} (and the kind's side information), checksums and the model's
        estimated bits. groups=None: codec.entropy.auto_groups; threads: the coder's (None: all CPUs)."""
        self._require_updated()
        grid = self.grid_of(x)
        items = self._compress_items(x, grid, get_coder(coder), groups, threads)
        return {"items": items, "shape": list(grid), "coder": coder}

    @torch.no_grad()
    def decompress(
        self,
        strings: list[dict[str, bytes]],
        shape: Sequence[int],
        coder: str = DEFAULT_CODER,
        threads: int | None = None,
        checksums: list[dict] | None = None,
        device: str | torch.device = "cpu",
    ) -> dict:
        """Inverse of compress for items of one grid `shape`; checks the stream's checksums."""
        self._require_updated()
        grid = tuple(int(v) for v in shape)
        checks = list(checksums) if checksums is not None else [{}] * len(strings)
        return self._decompress_items(strings, grid, get_coder(coder), threads, checks, device)

    def _compress_items(self, x, grid, entropy_coder, groups, threads) -> list[dict]:
        raise NotImplementedError

    def _decompress_items(self, strings, grid, entropy_coder, threads, checksums, device) -> dict:
        raise NotImplementedError

    def synthesize(self, y_hat: torch.Tensor) -> dict[str, torch.Tensor]:
        """g_s as a decoder runs it (eval forward, decompress): float32 convolutions without TF32 on CUDA."""
        if not y_hat.is_cuda:
            return self.g_s(y_hat)
        with ieee_float32_convolutions():
            return self.g_s(y_hat)
