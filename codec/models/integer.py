"""Integer networks (Ballé, Johnston & Minnen, "Integer networks for data compression with latent-variable
models", ICLR 2019) for the hyper-synthesis h_s of the mean-scale hyperprior.

A decoder must rebuild the coder's inputs (scale indexes and quantised means of y) exactly as the
encoder did. A float network gives slightly different numbers on another device, thread count or
convolution algorithm, so h_s is made an integer network: each layer computes on integers

    v = (H u + b) ⊘ c          H, b integers, c ≥ 1 an integer per output channel
    w = g(v)                   hidden layers; the last layer has none

where a ⊘ c = ⌊(a + ⌊c/2⌋) / c⌋ is rounding division (ties up) and g a bounded integer activation: the
paper's QReLU min(max(v, 0), 255) with a leak, g(v) = v for v ≥ 0 and ⌊v / 8⌋ below, clamped to
[−32, 255] — the integer counterpart of the float h_s's LeakyReLU (with plain QReLU, R + λ·D was 1.6–1.9 %
higher at λ = 12.5; bench/RESULTS.md). |g(v)| ≤ 255 either way, which is all the bound below needs.

Evaluated in float32, every value is an integer; it is exact, in any summation order, when every partial
sum is an integer of magnitude < 2^24 (float32 has a 24-bit significand). Any
partial sum of output o is bounded by

    Σ_i |H_oi| |u_i| + |b_o + ⌊c_o/2⌋|  ≤  max|H| · fan_in · max|u| + max|b + ⌊c/2⌋|  =: bound

with fan_in the most terms one output sums: C_in·k² for a k×k convolution, C_in·⌈k/s⌉² for a k×k
transposed convolution of stride s (each output meets at most ⌈k/s⌉ kernel taps per axis). Each layer
keeps max|H| · fan_in · max|u| ≤ 2^23 − 1 (its `weight_max` is chosen for that) and clamps
|b + ⌊c/2⌋| ≤ 2^23 − 1, so bound < 2^24; `IntegerLayer.check_bound` asserts it on the frozen integers.
The rounding division itself is exact in float32: `torch.div(a, c, rounding_mode="floor")` computes
(a − fmod(a, c)) / c, and fmod and the division of an exact multiple are exact.

Layers are evaluated as matrix products (`integer_forward`), never through a convolution routine:
cuDNN, oneDNN or NNPACK may pick Winograd or FFT algorithms, which are not sums of the integer
products. A transposed 3×3 convolution of stride 2 becomes one product per output phase
(sub-pixel form, then pixel shuffle). Operands are at most 8-bit integers, exact even where a
float32 product is computed with TF32 (11 significant bits) or bf16 (8) operands.

Training is quantisation-aware (straight-through rounding, as in the paper): float weights W' are
kept, scaled per output channel so that the largest magnitude maps to `weight_max`
(H = round(W'/s), s = max|W'_o| / weight_max), and that scale is folded into the divisor,
c = round(Δ_out / (s · Δ_in)), where Δ_in, Δ_out are the float values of one integer step of the
layer's input and output. The bias is stored in float units of the output (b = round(b'/(s Δ_in))).
`freeze()` writes H, b, c as int32 buffers: they, not the float parameters, define the decoder.
train-codec does not train this network jointly with the codec by default: it trains the codec with a float
h_s, then distils that h_s into this one with the rest frozen (`codec.train.distill_integer_hyper`; joint
training cost 11–16 % rate at λ = 12.5, bench/RESULTS.md). The network, and so the bound, is the same either
way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EXACT_LIMIT = 1 << 24  # float32 represents every integer of magnitude ≤ 2^24
TERM_BUDGET = (1 << 23) - 1  # max|H|·fan_in·max|u| ≤ this and |b + ⌊c/2⌋| ≤ this: bound < 2^24
WEIGHT_MAX = 127  # 8-bit weights at most
ACTIVATION_MAX = 255  # hidden activations: 8-bit above zero …
NEGATIVE_SHIFT = 3  # … and ⌊v / 8⌋ below (an integer leaky ReLU, like the float h_s's LeakyReLU) …
ACTIVATION_MIN = -32  # … down to ⌊−256 / 8⌋, so |u| ≤ ACTIVATION_MAX still bounds the next layer's inputs
INPUT_CLAMP = 127  # z symbols enter h_s clamped to ±INPUT_CLAMP (integers; a decoder clamps them too)
DIVISOR_MAX = 1 << 22
HIDDEN_STEP = 1 / 16  # float value of one step of a hidden activation (range −2 … 255/16)

# (output phase, patch offset) → kernel tap of a 3×3 transposed convolution, stride 2, padding 1,
# output padding 1: output 2r + a receives input r + d through tap a + 1 − 2d (when in 0..2).
_TAPS = {(0, 0): 1, (1, 0): 2, (1, 1): 0}


class IntegerBoundError(ValueError):
    """An integer layer whose partial sums could reach 2^24 (float32 evaluation would not be exact)."""


class _BoundedClamp(torch.autograd.Function):
    """clamp(x, low, high) forward; backward, the gradient also passes outside [low, high] when it points back
    inside (CompressAI's LowerBound, on both sides), so a unit pushed past a bound is not stuck there."""

    @staticmethod
    def forward(ctx, x: Tensor, low: float, high: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.low, ctx.high = low, high
        return x.clamp(low, high)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        passes = ((x >= ctx.low) | (grad < 0)) & ((x <= ctx.high) | (grad > 0))
        return grad * passes, None, None


def bounded_clamp(x: Tensor, low: float, high: float) -> Tensor:
    return _BoundedClamp.apply(x, low, high) if x.requires_grad else x.clamp(low, high)


def _ste(x: Tensor, rounded: Tensor) -> Tensor:
    """`rounded` forward, identity gradient (straight-through)."""
    return x + (rounded - x).detach()


class IntegerLayer(nn.Module):
    """One integer layer: a 1×1 convolution or a 3×3 transposed convolution of stride 2 (h_s's upsampling),
    a per-channel rounding division and, for hidden layers, the bounded integer leaky ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        transposed: bool,
        input_max: int,
        input_step: float,
        output_step: float | Sequence[float],
        activation: bool,
    ):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.transposed, self.activation = bool(transposed), bool(activation)
        self.input_max, self.input_step = int(input_max), float(input_step)
        # fan_in: the most products one output sums (see the module docstring)
        self.fan_in = self.in_channels * (4 if transposed else 1)
        self.weight_max = min(WEIGHT_MAX, TERM_BUDGET // (self.fan_in * self.input_max))
        if self.weight_max < 1:
            raise IntegerBoundError(
                f"integer layer {in_channels}→{out_channels}: fan_in {self.fan_in} × inputs up to "
                f"{self.input_max} "
                f"leave no integer weight with partial sums under 2^24; use fewer channels"
            )
        shape = (in_channels, out_channels, 3, 3) if transposed else (out_channels, in_channels, 1, 1)
        template = (
            nn.ConvTranspose2d(in_channels, out_channels, 3)
            if transposed
            else nn.Conv2d(in_channels, out_channels, 1)
        )
        self.weight = nn.Parameter(template.weight.detach().clone().reshape(shape))
        self.bias = nn.Parameter(torch.zeros(out_channels))  # float units of the output
        steps = (
            torch.full((out_channels,), float(output_step))
            if isinstance(output_step, (int, float))
            else (torch.tensor([float(s) for s in output_step]))
        )
        if steps.shape != (out_channels,):
            raise ValueError(
                f"output_step: one per output channel ({out_channels}), got {tuple(steps.shape)}"
            )
        self.register_buffer("output_step", steps, persistent=False)
        # the integer network (written by freeze(), stored in the codec's weights)
        self.register_buffer("int_weight", torch.zeros(shape, dtype=torch.int32))
        self.register_buffer("int_bias", torch.zeros(out_channels, dtype=torch.int32))  # includes ⌊c/2⌋
        self.register_buffer("divisor", torch.zeros(out_channels, dtype=torch.int32))
        # the same integers as float32 matrices for integer_forward (derived, not stored)
        self.register_buffer("_gemm_weight", torch.zeros(0), persistent=False)
        self.register_buffer("_gemm_bias", torch.zeros(0), persistent=False)
        self.register_buffer("_gemm_divisor", torch.zeros(0), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, _keys: module._prepare())

    def extra_repr(self) -> str:
        kind = "transposed 3×3/2" if self.transposed else "1×1"
        return (
            f"{self.in_channels}→{self.out_channels}, {kind}, |H| ≤ {self.weight_max}, |u| ≤ "
            f"{self.input_max}, "
            f"activation={self.activation}"
        )

    # -- quantisation-aware training --------------------------------------------------------
    def _scale(self, weight: Tensor) -> Tensor:
        """s per output channel: float weight per integer step, so that max|W'_o| / s = weight_max."""
        dims = (0, 2, 3) if self.transposed else (1, 2, 3)
        return weight.abs().amax(dim=dims).clamp_min(1e-12) / self.weight_max

    def _per_output(self, t: Tensor) -> Tensor:
        return t.view(1, -1, 1, 1) if self.transposed else t.view(-1, 1, 1, 1)

    def integer_parameters(self, ste: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """(H, b + ⌊c/2⌋, c) from the float parameters; straight-through rounding when `ste`."""
        weight, bias = self.weight, self.bias
        if not ste:
            weight, bias = weight.detach().to(torch.float64), bias.detach().to(torch.float64)
        s = self._scale(weight)
        step = self.output_step.to(weight)
        q = (lambda x: _ste(x, torch.round(x))) if ste else torch.round
        h = q(weight / self._per_output(s)).clamp(-self.weight_max, self.weight_max)
        c = q(step / (s * self.input_step)).clamp(1, DIVISOR_MAX)
        half = torch.floor(c.detach() / 2)
        b = q(bias / (s * self.input_step)) + half
        return h, b.clamp(-TERM_BUDGET, TERM_BUDGET), c

    def _linear(self, u: Tensor, h: Tensor) -> Tensor:
        if self.transposed:
            return F.conv_transpose2d(u, h, stride=2, padding=1, output_padding=1)
        return F.conv2d(u, h)

    def forward(self, u: Tensor) -> Tensor:
        """Training: the integer layer with straight-through rounding (float convolutions; not exact)."""
        h, b, c = self.integer_parameters()
        v = (self._linear(u, h) + b.view(1, -1, 1, 1)) / c.view(1, -1, 1, 1)
        v = _ste(v, torch.floor(v))
        if not self.activation:
            return v
        low = v / (1 << NEGATIVE_SHIFT)
        return bounded_clamp(
            torch.where(v >= 0, v, _ste(low, torch.floor(low))), ACTIVATION_MIN, ACTIVATION_MAX
        )

    # -- the integer network ------------------------------------------------------------------
    @property
    def frozen(self) -> bool:
        """Whether the integer network is written: _prepare derives the matrices only from int32 buffers with
        every divisor ≥ 1, so this reads no tensor value (no device synchronisation per encode)."""
        return bool(self._gemm_weight.numel())

    def _written(self) -> bool:
        return bool(self.divisor.numel()) and int(self.divisor.min()) >= 1

    @torch.no_grad()
    def freeze(self) -> None:
        """Write the integer parameters (from the float ones) and check the partial-sum bound."""
        h, b, c = self.integer_parameters(ste=False)
        self.int_weight.copy_(h.to(torch.int32))
        self.divisor.copy_(c.to(torch.int32))
        self.int_bias.copy_(b.to(torch.int32))
        self._prepare()

    def partial_sum_bound(self) -> int:
        """max|H| · fan_in · max|u| + max|b + ⌊c/2⌋|: no partial sum of any output exceeds it."""
        return int(self.int_weight.abs().max()) * self.fan_in * self.input_max + int(
            self.int_bias.abs().max()
        )

    def check_bound(self) -> int:
        bound = self.partial_sum_bound()
        if not bound < EXACT_LIMIT:
            raise IntegerBoundError(
                f"integer layer {self.in_channels}→{self.out_channels}: partial sums up to {bound} ≥ 2^24 "
                f"(max|H| {int(self.int_weight.abs().max())}, fan_in {self.fan_in}, max|u| "
                f"{self.input_max}); "
                f"float32 evaluation would not be exact"
            )
        return bound

    @torch.no_grad()
    def _prepare(self) -> None:
        """The float32 matrices integer_forward multiplies with (exact copies of the int32 buffers)."""
        if not self._written():
            empty = self.divisor.new_zeros(0, dtype=torch.float32)
            self._gemm_weight = self._gemm_bias = self._gemm_divisor = empty
            return
        self.check_bound()
        h = self.int_weight.to(torch.float32)
        if (
            self.transposed
        ):  # sub-pixel form: rows (out, phase a, phase b), columns (in, offset dr, offset dc)
            gemm = h.new_zeros(self.out_channels, 2, 2, self.in_channels, 2, 2)
            for (a, dr), ti in _TAPS.items():
                for (b, dc), tj in _TAPS.items():
                    gemm[:, a, b, :, dr, dc] = h[:, :, ti, tj].T
            gemm = gemm.reshape(self.out_channels * 4, self.in_channels * 4)
        else:
            gemm = h.reshape(self.out_channels, self.in_channels)
        self._gemm_weight = gemm.contiguous()
        self._gemm_bias = self.int_bias.to(torch.float32).view(1, -1, 1, 1)
        self._gemm_divisor = self.divisor.to(torch.float32).view(1, -1, 1, 1)

    def integer_forward(self, u: Tensor) -> Tensor:
        """The integer layer in float32, exact: matrix products of integers, partial sums < 2^24."""
        if not self._gemm_weight.numel():
            raise RuntimeError("integer layer has no integer parameters; call update() (train-codec does)")
        batch, channels, height, width = u.shape
        if self.transposed:
            padded = F.pad(u, (0, 1, 0, 1))
            patches = torch.stack(
                [padded[:, :, dr : dr + height, dc : dc + width] for dr in (0, 1) for dc in (0, 1)], dim=2
            )
            acc = torch.matmul(self._gemm_weight, patches.reshape(batch, channels * 4, height * width))
            acc = F.pixel_shuffle(acc.reshape(batch, self.out_channels * 4, height, width), 2)
        else:
            acc = torch.matmul(self._gemm_weight, u.reshape(batch, channels, height * width))
            acc = acc.reshape(batch, self.out_channels, height, width)
        v = acc.add_(self._gemm_bias).div_(
            self._gemm_divisor, rounding_mode="floor"
        )  # in place: no new pages
        if not self.activation:
            return v
        low = torch.div(v, 1 << NEGATIVE_SHIFT, rounding_mode="floor")  # exact: a power of two
        return torch.where(v >= 0, v, low).clamp_(ACTIVATION_MIN, ACTIVATION_MAX)

    def reference_forward(self, u: Tensor) -> Tensor:
        """The specification of integer_forward: plain convolutions in float64 (exact below 2^53)."""
        h = self.int_weight.to(torch.float64)
        acc = self._linear(u.to(torch.float64), h) + self.int_bias.to(torch.float64).view(1, -1, 1, 1)
        v = torch.floor(acc / self.divisor.to(torch.float64).view(1, -1, 1, 1))  # exact: |acc| < 2^24 ≪ 2^53
        if not self.activation:
            return v
        return torch.where(v >= 0, v, torch.floor(v / (1 << NEGATIVE_SHIFT))).clamp(
            ACTIVATION_MIN, ACTIVATION_MAX
        )


class IntegerHyperSynthesis(nn.Module):
    r"""h_s as an integer network: z symbols → (scale-table indexes, means · MEAN_GRID) of y.

    ::

        z symbols (int) ─ clamp ±127 ─► 3×3/2ᵀ, g ─► 3×3/2ᵀ, g ─► 1×1 ─┬─► scale index, clamp 0…L−1
                                        (N ch)          (N ch)   (2M ch) └─► mean·16 (integer)

    Same shape as the float h_s (two stride-2 transposed convolutions, then a 1×1 to 2M channels), with g
    the bounded integer leaky ReLU (module docstring). The outputs are integers: `scale_levels` scale-table
    indexes and means on the 1/MEAN_GRID grid, so they are the coder's inputs with no further rounding.
    """

    def __init__(
        self,
        N: int,
        M: int,
        *,
        scale_levels: int,
        mean_grid: int,
        index_step: float = 1 / 16,
        initial_index: int = 16,
    ):
        super().__init__()
        self.M, self.scale_levels = int(M), int(scale_levels)
        self.layers = nn.ModuleList(
            [
                IntegerLayer(
                    N,
                    N,
                    transposed=True,
                    input_max=INPUT_CLAMP,
                    input_step=1.0,
                    output_step=HIDDEN_STEP,
                    activation=True,
                ),
                IntegerLayer(
                    N,
                    N,
                    transposed=True,
                    input_max=ACTIVATION_MAX,
                    input_step=HIDDEN_STEP,
                    output_step=HIDDEN_STEP,
                    activation=True,
                ),
                IntegerLayer(
                    N,
                    2 * M,
                    transposed=False,
                    input_max=ACTIVATION_MAX,
                    input_step=HIDDEN_STEP,
                    output_step=[index_step] * M + [1 / mean_grid] * M,
                    activation=False,
                ),
            ]
        )
        with torch.no_grad():  # start in the middle of the scale table (the float h_s starts at its bound)
            self.layers[-1].bias[:M] = initial_index * index_step

    def _split(self, out: Tensor) -> tuple[Tensor, Tensor]:
        index, mean = out.chunk(2, dim=1)
        return bounded_clamp(index, 0, self.scale_levels - 1), mean

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Training (straight-through): z − medians (noisy) → (scale index, mean·MEAN_GRID),
        integer-valued."""
        x = z.clamp(-INPUT_CLAMP, INPUT_CLAMP)
        for layer in self.layers:
            x = layer(x)
        return self._split(x)

    @property
    def frozen(self) -> bool:
        return all(layer.frozen for layer in self.layers)

    def freeze(self) -> None:
        for layer in self.layers:
            layer.freeze()

    def partial_sum_bounds(self) -> list[int]:
        """Each layer's bound on its partial sums (all < 2^24 once frozen; IntegerBoundError otherwise)."""
        return [layer.check_bound() for layer in self.layers]

    @torch.no_grad()
    def integer_forward(self, z_symbols: Tensor) -> tuple[Tensor, Tensor]:
        """Exact evaluation in float32 on z_symbols' device, batched: (scale index, mean·MEAN_GRID)."""
        x = z_symbols.to(torch.float32).clamp(-INPUT_CLAMP, INPUT_CLAMP)
        for layer in self.layers:
            x = layer.integer_forward(x)
        return self._split(x)

    @torch.no_grad()
    def reference_forward(self, z_symbols: Tensor) -> tuple[Tensor, Tensor]:
        """The same integers by plain float64 convolutions (the specification; tests compare the two)."""
        x = z_symbols.to(torch.float64).clamp(-INPUT_CLAMP, INPUT_CLAMP)
        for layer in self.layers:
            x = layer.reference_forward(x)
        return self._split(x)
