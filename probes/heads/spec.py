"""What a frozen head consumes: the token grid, width and number of maps (`TokenSpec`).

This is the one interface between necks and heads, the counterpart of the
encoder's `EncoderSpec` upstream: a neck is built to produce exactly
`head.expects()`, and a head's `teacher()` returns tokens of the same shape.

Token tensors are always B×M×T×C: M maps (Depth Anything's DPT neck takes 4
backbone hidden states, ViTPose and BLIP one), T = h·w patch tokens, plus one
leading CLS token where the head's own encoder has one, and C = width.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenSpec:
    grid: tuple[int, int]  # h × w patch tokens, row-major
    width: int
    maps: int = 1
    cls_token: bool = False

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1] + int(self.cls_token)

    def shape(self, batch_size: int) -> tuple[int, int, int, int]:
        return (batch_size, self.maps, self.num_tokens, self.width)

    def check(self, tokens, what: str = "tokens") -> None:
        """Raise a ValueError naming both shapes if `tokens` is not B×M×T×C of this spec."""
        if tokens.ndim != 4 or tuple(tokens.shape[1:]) != self.shape(1)[1:]:
            raise ValueError(
                f"{what}: expected B×{self.maps}×{self.num_tokens}×{self.width}, got {tuple(tokens.shape)}"
            )

    def to_dict(self) -> dict:
        return {"grid": list(self.grid), "width": self.width, "maps": self.maps, "cls_token": self.cls_token}

    @classmethod
    def from_dict(cls, d: dict) -> TokenSpec:
        return cls(
            grid=tuple(d["grid"]), width=int(d["width"]), maps=int(d["maps"]), cls_token=bool(d["cls_token"])
        )
