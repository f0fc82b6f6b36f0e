"""Mean-scale hyperprior for multi-level encoder features (Minnen, Ballé, Toderici, NeurIPS 2018).

Built from CompressAI's EntropyBottleneck (side information z) and GaussianConditional (latent y),
with the analysis/synthesis transforms of codec.models.transforms sized from the encoder's levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.utils import conv, deconv
from torch import nn
from torch.func import functional_call
from torch.profiler import record_function

from codec import ops
from codec.devices import CudaGraphs, to_host
from codec.entropy import (
    CdfTable,
    decode_substreams,
    encode_substreams,
    split_channels,
)
from codec.names import HYPER_PATHS
from codec.ops.reference import raise_for_status

from .base import MEAN_GRID, SYMBOL_CLAMP, TransformFeatureCodec, crc32_arrays
from .integer import IntegerHyperSynthesis
from .registry import register_codec

SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256.0, 64
_CHECKSUMS = ThreadPoolExecutor(3, thread_name_prefix="featcodec-crc")  # a stream's three CRC-32s
# How h_s turns z into the coder's inputs (HYPER_PATHS): "integer" (an integer network, exact in float32 on
# any device, batched; train-codec's default) or "float64" (float h_s in float64 on the CPU, one item at a
# time; codecs written before the integer path, whose config has no hyper_path, are float64).


def get_scale_table() -> list[float]:
    """CompressAI's 64 log-spaced scales (compressai.models.google.get_scale_table)."""
    return np.exp(np.linspace(np.log(SCALES_MIN), np.log(SCALES_MAX), SCALES_LEVELS)).tolist()


def scale_of_index(index: torch.Tensor) -> torch.Tensor:
    """The scale-table entry of a (straight-through, integer-valued) index, differentiable in it."""
    step = (np.log(SCALES_MAX) - np.log(SCALES_MIN)) / (SCALES_LEVELS - 1)
    return torch.exp(np.log(SCALES_MIN) + index * step)


def _pad4(t: torch.Tensor) -> torch.Tensor:
    """Zero-pad H, W to multiples of 4 for the two stride-2 hyper layers."""
    ph, pw = (-t.shape[-2]) % 4, (-t.shape[-1]) % 4
    return F.pad(t, (0, pw, 0, ph)) if ph or pw else t


@register_codec("hyperprior")
class MeanScaleFeatureHyperprior(TransformFeatureCodec):
    r"""Mean-scale hyperprior over features of one or several levels (Minnen et al. 2018).

    ::

        x {level: B×C×H×W}
          │ normalise (per-channel stats), rearrange onto the stride-`grid_stride` grid
          ▼
        ┌─────┐ y  ┌─────┐ z  ┌───┐ ┌────┐ z symbols ┌──────────────────────────┐
        │ g_a ├─┬─►│ h_a ├───►│ Q ├►│ EB ├──────────►│ h_s → scales, means      │
        └─────┘ │  └─────┘    └───┘ └────┘           │ (integer net, or float64 │
                │                                    │ on the CPU per item)     │
                │                                    └────────────┬─────────────┘
                │      indexes = scale_table bin of scales;       │ means on a 1/16 grid
                │  ┌───┐ symbols ┌────┐                           │
                └─►│ Q ├────────►│ GC │◄──────────────────────────┘
                   └───┘         └─┬──┘  y_hat = symbols + means
                                   ▼
                                 ┌─────┐  split per level, rearrange back, denormalise
                                 │ g_s ├──► x_hat {level: B×C×H×W}
                                 └─────┘

    Determinism: the decoder must rebuild exactly the (indexes, means) the encoder used. With
    `hyper_path="integer"` (what train-codec trains) h_s is an integer network (Ballé, Johnston &
    Minnen, ICLR 2019; codec.models.integer): from the z symbols it computes integer scale-table
    indexes and means·16 whose partial sums stay below 2^24, so float32 evaluation is exact, batched,
    on the model's device. With `hyper_path="float64"` (codecs written before it) h_s is a float net
    evaluated in float64 on the CPU, one item at a time, its outputs then quantised. Either way a
    CRC32 of (indexes, means) travels in the stream, so a decoder that disagrees fails with
    BitstreamError instead of returning wrong features.
    """

    def __init__(self, *args, hyper_path: str = "float64", **kwargs):
        """TransformFeatureCodec's arguments (levels, resolution, N, M, grid_stride) and hyper_path."""
        super().__init__(*args, **kwargs)
        N, M = self.N, self.M
        if hyper_path not in HYPER_PATHS:
            raise ValueError(f"hyper_path {hyper_path!r}: choose from {', '.join(HYPER_PATHS)}")
        self.hyper_path = hyper_path
        self.h_a = nn.Sequential(
            conv(M, N, 3, 1),
            nn.LeakyReLU(inplace=True),
            conv(N, N, 5, 2),
            nn.LeakyReLU(inplace=True),
            conv(N, N, 5, 2),
        )
        if hyper_path == "integer":
            self.h_s = IntegerHyperSynthesis(N, M, scale_levels=SCALES_LEVELS, mean_grid=MEAN_GRID)
        else:
            # Lighter than Minnen's (5×5 kernels, 1.5·M channels): h_s runs in float64 for determinism,
            # inside a budget of 10 % of the encoder forward.
            self.h_s = nn.Sequential(
                deconv(N, N, 3, 2),
                nn.LeakyReLU(inplace=True),
                deconv(N, N, 3, 2),
                nn.LeakyReLU(inplace=True),
                conv(N, 2 * M, 1, 1),
            )
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(get_scale_table())

    def hparams(self) -> dict:
        return {**super().hparams(), "hyper_path": self.hyper_path}

    def latent_shapes(self, grid: Sequence[int]) -> dict[str, list[int]]:
        gh, gw = grid
        return {"y": [self.M, gh, gw], "z": [self.N, -(-gh // 4), -(-gw // 4)]}

    # -- pieces shared by forward / compress / decompress ------------------------------------
    def _medians(self) -> torch.Tensor:
        return self.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)

    def _quantize_z(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        medians = self._medians().to(z.dtype)
        symbols = torch.round(z.detach() - medians).clamp_(-SYMBOL_CLAMP, SYMBOL_CLAMP).to(torch.int32)
        return symbols, ops.dequantize(symbols, medians.expand_as(z).contiguous())

    def _hyper_device(self) -> torch.device:
        """Where h_s runs at coding time: the model's device (integer path) or the CPU (float64 path)."""
        return self._medians().device if self.hyper_path == "integer" else torch.device("cpu")

    @torch.no_grad()
    def entropy_parameters(
        self, z_hat: torch.Tensor, grid: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scales, quantised means) of y from z_hat, by the deterministic path (see class doc).

        Integer path: the integer h_s on the z symbols round(z_hat − medians) (z_hat = symbols + medians, so
        this gives the symbols back, by the same float32 operations on both sides), batched in float32 on
        z_hat's device; scales are scale-table entries, means on the 1/MEAN_GRID grid.
        """
        if self.hyper_path == "integer":
            z_symbols = torch.round(z_hat.detach() - self._medians().to(z_hat))
            index, mean = self.h_s.integer_forward(z_symbols)
            index, mean = index[:, :, : grid[0], : grid[1]], mean[:, :, : grid[0], : grid[1]]
            scales = self.gaussian_conditional.scale_table.to(index.device)[index.long()]
            return scales.contiguous(), (mean / MEAN_GRID).contiguous()  # exact: |mean| < 2**24
        params = {k: v.detach().to("cpu", torch.float64) for k, v in self.h_s.state_dict().items()}
        z64 = z_hat.detach().to("cpu", torch.float64)
        gp = torch.cat([functional_call(self.h_s, params, (z64[i : i + 1],)) for i in range(z64.shape[0])])
        scales, means = gp[:, :, : grid[0], : grid[1]].chunk(2, dim=1)
        means_q = torch.round(means * MEAN_GRID) / MEAN_GRID  # exact in float32 for |means| < 2**19
        return scales.float().contiguous(), means_q.float().contiguous()

    def _training_parameters(
        self, z_hat: torch.Tensor, grid: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scales, means) of y in training: float h_s, or the integer h_s with straight-through rounding."""
        if self.hyper_path == "integer":
            index, mean = self.h_s(z_hat - self._medians())
            index, mean = index[:, :, : grid[0], : grid[1]], mean[:, :, : grid[0], : grid[1]]
            return scale_of_index(index), mean / MEAN_GRID
        scales, means = self.h_s(z_hat)[:, :, : grid[0], : grid[1]].chunk(2, dim=1)
        return scales, means

    def _y_likelihoods(self, y_hat: torch.Tensor, indexes: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        gc = self.gaussian_conditional
        scales = gc.scale_table.to(y_hat.device)[indexes.long()]
        likelihoods = gc._likelihood(y_hat, scales, means)
        return gc.likelihood_lower_bound(likelihoods) if gc.use_likelihood_bound else likelihoods

    def _quantize_y(self, y: torch.Tensor, z_hat: torch.Tensor):
        """(symbols, indexes, means, status) of y; the quantiser's status bits unread (raise_for_status)."""
        scales, means = self.entropy_parameters(z_hat, y.shape[-2:])
        scales, means = scales.to(y.device), means.to(y.device)
        symbols, indexes, status = ops.quantize_index(
            y.detach(),
            means,
            scales,
            self.gaussian_conditional.scale_table,
            clamp=SYMBOL_CLAMP,
            check=False,
            with_status=True,
        )
        return symbols, indexes, means, status

    # -- CompressAI interface ----------------------------------------------------------------
    def forward(self, x: dict[str, torch.Tensor]) -> dict:
        self.grid_of(x)
        y = self.g_a(self.normalization.normalize(x))
        z = self.h_a(_pad4(y))
        if self.training:
            z_hat, z_likelihoods = self.entropy_bottleneck(z)
            scales, means = self._training_parameters(z_hat, y.shape[-2:])
            _, y_likelihoods = self.gaussian_conditional(y, scales, means)
            y_hat = ops.ste_round(y, means)
        else:  # exactly what compress / decompress compute
            _, z_hat = self._quantize_z(z)
            z_likelihoods = self._z_likelihoods(z_hat)
            symbols, indexes, means, status = self._quantize_y(y, z_hat)
            raise_for_status(int(status))
            y_hat = ops.dequantize(symbols, means)
            y_likelihoods = self._y_likelihoods(y_hat, indexes, means)
        x_hat = self.normalization.denormalize(self.g_s(y_hat) if self.training else self.synthesize(y_hat))
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}, "y_hat": y_hat}

    def _z_likelihoods(self, z_hat: torch.Tensor) -> torch.Tensor:
        """EntropyBottleneck(z_hat, training=False)'s likelihoods, by the same operations on the same layout
        (so the same floats) but without its forward's permutation tensor, whose copy to the device and whose
        elements read back to the host would each wait for the device and break a CUDA-graph capture."""
        eb = self.entropy_bottleneck
        b, c, h, w = z_hat.shape
        values = z_hat.permute(1, 0, 2, 3).contiguous().reshape(c, 1, -1)
        likelihood, _, _ = eb._likelihood(values)
        if eb.use_likelihood_bound:
            likelihood = eb.likelihood_lower_bound(likelihood)
        return likelihood.reshape(c, b, h, w).permute(1, 0, 2, 3).contiguous()

    def _encode_tensors(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """compress's device part: everything up to the coder's inputs, with no host synchronisation (the
        quantiser's status is returned, checked after the one copy to the host), so a GPU can replay it from
        one CUDA graph (codec.devices.CudaGraphs)."""
        with record_function("featcodec.encode.analysis"):
            y = self.g_a(x, self.normalization)  # normalised in the grid pass
            z = self.h_a(_pad4(y))
        with record_function("featcodec.encode.hyper"):
            z_symbols, z_hat = self._quantize_z(z)
            z_likelihoods = self._z_likelihoods(z_hat)
            symbols, indexes, means, status = self._quantize_y(y, z_hat)
            y_likelihoods = self._y_likelihoods(ops.dequantize(symbols, means), indexes, means)
            # per item, as a one-item encode reduces it (the estimate is in the header: same bytes either way)
            bits = torch.stack(
                [
                    -(torch.log2(yl).sum() + torch.log2(zl).sum())
                    for yl, zl in zip(y_likelihoods, z_likelihoods, strict=True)
                ]
            )
            means_grid = torch.round(means * MEAN_GRID).to(torch.int32)
        return {
            "symbols": symbols,
            "indexes": indexes,
            "z": z_symbols,
            "means": means_grid,
            "bits": bits,
            "status": status,
        }

    def _device_encoder(self) -> CudaGraphs:
        graphs = self.__dict__.get("_graphs")
        if graphs is None:  # a plain attribute (not a module or buffer): not in the state dict
            graphs = self.__dict__["_graphs"] = CudaGraphs(
                self._encode_tensors, lambda: [*self.parameters(), *self.buffers()]
            )
        return graphs

    def update(self, scale_table=None, force: bool = False, update_quantiles: bool = False) -> bool:
        """CompressAI's update (CDF tables), and for the integer path the integer h_s (freeze)."""
        updated = super().update(scale_table, force=force, update_quantiles=update_quantiles)
        if self.hyper_path == "integer" and (force or not self.h_s.frozen):
            self.h_s.freeze()
            updated = True
        if updated:  # free the graphs captured on the replaced tensors
            self._device_encoder().clear()
        return updated

    def _compress_items(self, x, grid, entropy_coder, groups, threads) -> list[dict]:
        """Substreams {"z", "y.0", ...} per item; the device part replayed from a CUDA graph on a GPU."""
        device_encoder = self._device_encoder()
        with device_encoder.lock:  # a graph's outputs are static: copy them out before another thread replays
            with record_function("featcodec.encode.device"):  # analysis and hyper (one graph replay on a GPU)
                tensors = device_encoder(x)
            with record_function("featcodec.encode.to_host"):  # one synchronisation
                host = to_host(tensors)
        raise_for_status(int(host["status"]))
        with record_function("featcodec.encode.entropy_coding"):
            z_table = CdfTable.from_entropy_model(self.entropy_bottleneck)
            y_table = CdfTable.from_entropy_model(self.gaussian_conditional)
            symbols, indexes, z_symbols, means_grid = (host[k] for k in ("symbols", "indexes", "z", "means"))
            z_indexes = self._z_indexes(z_symbols.shape[1:])
            channel_groups = split_channels(self.M, groups, symbols[0].size)  # groups=None: auto_groups
            items = []
            for b in range(symbols.shape[0]):
                checks = {  # on other threads while the coder runs (ISA-L's CRC releases the GIL)
                    "hyper": (z_symbols[b],),  # checked before h_s runs on them
                    "probability_model": (indexes[b], means_grid[b]),
                    "symbols": (z_symbols[b], symbols[b]),
                }
                checks = {name: _CHECKSUMS.submit(crc32_arrays, *arrays) for name, arrays in checks.items()}
                strings = {"z": entropy_coder.encode(z_symbols[b].reshape(-1), z_indexes, z_table)}
                y_strings = encode_substreams(
                    entropy_coder, symbols[b], indexes[b], y_table, channel_groups, threads
                )
                strings.update({f"y.{g}": s for g, s in enumerate(y_strings)})
                items.append(
                    {
                        "strings": strings,
                        "checksums": {name: future.result() for name, future in checks.items()},
                        "estimated_bits": float(host["bits"][b]),
                    }
                )
        return items

    def _z_indexes(self, z_shape: Sequence[int]) -> np.ndarray:
        c, h, w = z_shape
        return np.repeat(np.arange(c, dtype=np.int32), h * w)

    def _decompress_items(self, strings, grid, entropy_coder, threads, checksums, device) -> dict:
        z_table = CdfTable.from_entropy_model(self.entropy_bottleneck)
        y_table = CdfTable.from_entropy_model(self.gaussian_conditional)
        z_shape = self.latent_shapes(grid)["z"]
        z_indexes = self._z_indexes(z_shape)
        z_symbols = np.stack(
            [entropy_coder.decode(s["z"], z_indexes, z_table).reshape(z_shape) for s in strings]
        )
        for b in range(len(strings)):  # a wrong z would cost the float64 hyper path before failing later
            self.verify("hyper", checksums[b].get("hyper"), crc32_arrays(z_symbols[b]))
        z_symbols = torch.from_numpy(z_symbols)
        hyper_device = self._hyper_device()
        z_on = z_symbols.to(hyper_device)
        z_hat = ops.dequantize(z_on, self._medians().to(hyper_device).expand_as(z_on).contiguous())
        scales, means = self.entropy_parameters(z_hat, grid)
        table = self.gaussian_conditional.scale_table.to(hyper_device)
        _, indexes = ops.quantize_index(means, means, scales, table)
        indexes_np = indexes.cpu().numpy()
        means_grid = torch.round(means * MEAN_GRID).to(torch.int32).cpu().numpy()
        channel_groups = self._groups(strings, self.M)
        symbols = []
        for b, item in enumerate(strings):
            check = checksums[b]
            self.verify(
                "probability-model",
                check.get("probability_model"),
                crc32_arrays(indexes_np[b], means_grid[b]),
            )
            y_strings = [item[f"y.{g}"] for g in range(len(channel_groups))]
            sym = decode_substreams(entropy_coder, y_strings, indexes_np[b], y_table, channel_groups, threads)
            self.verify("symbols", check.get("symbols"), crc32_arrays(z_symbols[b].numpy(), sym))
            symbols.append(sym)
        y_hat = ops.dequantize(torch.from_numpy(np.stack(symbols)).to(hyper_device), means).to(device)
        x_hat = self.normalization.denormalize_(self.synthesize(y_hat))
        return {"x_hat": x_hat, "y_hat": y_hat}
