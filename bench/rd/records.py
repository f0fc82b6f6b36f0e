"""The report's typed records: what `featcodec report` computes, before it is
written as markdown, JSON or plots.

    Section (task, dataset, metric)
      ├─ Probe (encoder, neck, neck training, head) ── SeedCurve per training seed (points, clean,
      task-sufficient rate) │     clean, task-sufficient rate, BD-rate / BD-metric vs the anchor: each an
      `Estimate` across seeds ├─ Pair (KD on vs off, cross-neck vs direct): BD-rate and clean difference,
      each an `Estimate` ├─ standard anchors: a Probe per anchor codec family (packed-hevc, remote-jpeg, …),
      never a learned probe; │     StandardComparison: BD-rate of the learned codec vs each of them (an
      `Estimate`) ├─ ComplexityRow per (encoder, codec family): kMAC/pixel of the learned parts,
      encode/decode ms └─ zero-rate points
    Verdict: one of the paper's findings, decided from `Estimate`s (reproduced / contradicted / inconclusive)

`report.json` is `dataclasses.asdict` of a `Report`; the markdown and the plots read these records only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .seeds import COVERS_BOTH


@dataclass
class Estimate:
    """An across-seed estimate with its interval (bench/rd/seeds.py; docs/analysis.md)."""

    value: float | None  # across-seed estimate (None: undefined, see notes)
    low: float | None = None
    high: float | None = None
    level: float = 0.95
    per_seed: dict[str, float | None] = field(default_factory=dict)  # seed → the value on that seed
    covers: str = COVERS_BOTH
    share_training: float | None = None  # share of the estimate's variance that comes from training seeds
    score: str | None = None  # the per-image score the interval resamples (the metric, or its proxy)
    images: int | None = None
    method: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def defined(self) -> bool:
        return self.value is not None


@dataclass
class PointRecord:
    rate: float
    metric: float
    codec: str | None
    lmbda: float | None
    source: str
    stream_bytes: dict[str, float] | None = None
    on_hull: bool = True


@dataclass
class SeedCurve:
    """One probe's curve on one training seed: its points, its clean accuracy, its task-sufficient rate."""

    seed: int | None
    points: list[PointRecord]
    clean: float | None
    task_sufficient_rate: dict | None  # curves.TaskSufficientRate.to_dict(), or {"rate": None, "reason": ...}
    sources: list[str] = field(default_factory=list)


@dataclass
class Probe:
    """Encoder + neck + neck training + head on one task and dataset: one curve per seed."""

    label: str
    encoder: str
    weights_id: str
    resolution: int | None
    neck: str
    neck_base: str
    neck_training: str
    head: str
    kd: float | None
    after: str | None
    seeds: list[SeedCurve]
    clean: Estimate | None = None
    task_sufficient_rate: Estimate | None = None
    anchor: str | None = None  # the anchor probe's label ("" for the anchor itself)
    bd_rate: Estimate | None = None  # PCHIP BD-rate vs the anchor, %, across seeds
    bd_metric: Estimate | None = None  # PCHIP BD-metric vs the anchor, metric units, across seeds
    bd_rate_cubic: dict[str, dict] = field(default_factory=dict)  # seed → {"value", "reliable", "why"}
    notes: list[str] = field(default_factory=list)
    codec_family: str = "learned"  # results.LEARNED, or a standard anchor's family (packed-hevc, remote-jpeg)

    @property
    def name(self) -> str:
        training = "" if self.neck_training == "clean-trained" else f" ({self.neck_training})"
        family = "" if self.codec_family == "learned" else f" [{self.codec_family}]"
        return f"{self.label} · {self.neck}{training}{family}"


@dataclass
class Pair:
    """Two probes of one encoder that differ only in KD weight (`what` = "kd") or
    in being a cross-neck ("after")."""

    what: str
    encoder: str
    neck_off: str
    neck_on: str
    neck_training: str
    bd_rate: Estimate | None  # on vs off, %: negative = "on" needs fewer bits
    clean_difference: Estimate | None  # clean accuracy on − off, metric units
    notes: list[str] = field(default_factory=list)


@dataclass
class StandardComparison:
    """The learned codec against one of the standard's anchors, same encoder,
    neck and head (seed s vs seed s)."""

    encoder: str
    neck: str
    neck_training: str
    family: str  # packed-hevc, remote-jpeg, …
    bd_rate: Estimate | None  # learned vs the anchor, %: negative = the learned codec needs fewer bits
    notes: list[str] = field(default_factory=list)


@dataclass
class ComplexityRow:
    """One codec family's coding complexity for one encoder: medians over its coded points
    (codec.complexity)."""

    encoder: str
    family: str
    codec: str  # the codec kind: hyperprior, hevc, remote-jpeg, …
    encoder_kmac_per_pixel: float | None
    decoder_kmac_per_pixel: float | None
    encode_ms: float | None
    decode_ms: float | None
    points: int  # coded points (rate points of distinct codecs) measured


@dataclass
class ZeroRate:
    value: float
    predictor: str | None
    task_config: str
    source: str


@dataclass
class Section:
    task: str
    data: str
    metric: str
    higher_is_better: bool
    plot: str
    probes: list[Probe]
    zero_rate: list[ZeroRate] = field(default_factory=list)
    kd_pairs: list[Pair] = field(default_factory=list)
    cross_neck_pairs: list[Pair] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    standard_anchors: list[Probe] = field(
        default_factory=list
    )  # curves of the standard's anchors, per family
    versus_standard: list[StandardComparison] = field(default_factory=list)
    complexity: list[ComplexityRow] = field(default_factory=list)


@dataclass
class Evidence:
    """One comparison behind a verdict: its estimate, and which side of 0 the finding needs."""

    label: str
    estimate: Estimate | None
    expect: str  # "negative" or "positive": the sign the finding predicts
    outcome: str


@dataclass
class Verdict:
    finding: str  # "a" .. "d"
    claim: str
    outcome: str  # reproduced | contradicted | inconclusive | not measured
    evidence: list[Evidence]
    rule: str


@dataclass
class Report:
    format: str
    format_version: int
    inputs: list[str]
    rate: str
    fraction: float
    anchor: str
    seeds: list[str]
    interval: dict  # method, level, resamples, seed, verdict level and correction
    sections: list[Section]
    verdicts: list[Verdict]
    curve_files: list[dict]
    notes: list[str]

    def to_dict(self) -> dict:
        return asdict(self)
