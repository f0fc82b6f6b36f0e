"""Curves → typed records: per-seed curves, across-seed estimates,
comparisons with the anchor, pairs, verdicts.

    RatePoints ─► curves per (task, dataset) and seed (results.group_curves)
        ─► Probe: one SeedCurve per seed (hull, clean, task-sufficient rate)
        ─► Estimates across seeds (bench/rd/seeds.py): clean, task-sufficient rate, BD-rate and BD-metric vs
        the
           anchor probe (same neck, neck training and head), KD and cross-neck pairs
        ─► Verdicts on the paper's four findings (docs/analysis.md, "Verdicts")
    curves of the standard's anchors (packed-hevc, remote-jpeg, …) ─► Probes of their own family, compared
    with
        the learned probe of the same encoder, neck and head (StandardComparison); never in verdicts

Every interval of a section resamples one per-image score: the metric itself where it is a mean over images
(depth AbsRel, caption CIDEr-D), else the proxy the task names for it (pose: OKS-AR for AP). Curves are formed
per seed and compared seed by seed (seed s of A with seed s of B); nothing takes a hull or a best run across
seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from codec.names import COMPLEXITY_FIELDS

from . import seeds as seed_stats
from .bdrate import bd_metric, bd_rate, cubic_is_monotone
from .curves import COCO_STATS, UNDEFINED_COCO_VALUE, monotone_hull
from .curves import task_sufficient_rate as compute_task_sufficient_rate
from .records import ComplexityRow, Estimate, Pair, PointRecord, Probe, SeedCurve, StandardComparison
from .results import LEARNED, Curve, RatePoint, ResultsError

METHOD = "pchip"


def metric_value(p: RatePoint, metric: str) -> tuple[float | None, str | None]:
    """The point's value of `metric`, or None and why it cannot be used."""
    if metric not in p.metrics:
        return None, f"{p.source}: missing field 'metrics.{metric}' (it has {sorted(p.metrics)})"
    value = p.metrics[metric]
    if metric in COCO_STATS and value == UNDEFINED_COCO_VALUE:
        return None, f"{p.source}: {metric} = -1 (pycocotools: no ground truth in that range); point skipped"
    if not math.isfinite(value):
        return None, f"{p.source}: {metric} = {value}; point skipped"
    return value, None


def seed_key(seed: int | None) -> str:
    return "—" if seed is None else str(seed)


# --- one seed's curve --------------------------------------------------------------------------------


def seed_curve(
    curve: Curve, metric: str, rate: str, hib: bool, fraction: float, notes: list[str]
) -> SeedCurve:
    points = []
    for p in curve.points:
        value, why = metric_value(p, metric)
        if why:
            notes.append(why)
            continue
        if rate not in p.rates:
            raise ResultsError(
                f"{p.source}: no rate {rate!r} (it has {sorted(p.rates)}); choose another --rate"
            )
        points.append(PointRecord(p.rates[rate], value, p.codec, p.lmbda, p.source, p.stream_bytes))
    points.sort(key=lambda q: q.rate)
    if points:
        hull = set(monotone_hull([q.rate for q in points], [q.metric for q in points], hib).tolist())
        for i, q in enumerate(points):
            q.on_hull = i in hull
    values = []
    for p in curve.clean:
        value, why = metric_value(p, metric)
        if why:
            notes.append(why)
        else:
            values.append(value)
    clean = float(np.mean(values)) if values else None  # several clean evaluations of one neck: their mean
    sufficient = None
    if clean is not None:
        try:
            sufficient = compute_task_sufficient_rate(
                [q.rate for q in points], [q.metric for q in points], clean, fraction, hib
            ).to_dict()
        except ValueError as e:
            sufficient = {"rate": None, "reason": str(e)}
    return SeedCurve(curve.seed, points, clean, sufficient, [p.source for p in (*curve.points, *curve.clean)])


# --- per-image scores ---------------------------------------------------------------------------------


def interval_score(points: Sequence[RatePoint], metric: str) -> tuple[str | None, str | None]:
    """The per-image score that stands for `metric` in every point: itself, or the points' common proxy."""
    for p in points:
        if p.per_image is None:
            return None, f"{p.source}: no per-image scores ('per_image')"
    if all(metric in p.per_image["scores"] for p in points):
        return metric, None
    proxies = {p.per_image["proxies"].get(metric) for p in points}
    proxy = proxies.pop() if len(proxies) == 1 else None
    if proxy and all(proxy in p.per_image["scores"] for p in points):
        return proxy, None
    return None, f"no per-image {metric} (nor a proxy for it) in every point"


def aligned_scores(
    points: Sequence[RatePoint], score: str
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """points × images matrix of `score` on the image ids every point has, and their weights."""
    common = set(points[0].per_image["ids"])
    for p in points[1:]:
        common &= set(p.per_image["ids"])
    ids = [i for i in points[0].per_image["ids"] if i in common]
    rows, weights = [], None
    for p in points:
        where = {i: k for k, i in enumerate(p.per_image["ids"])}
        idx = [where[i] for i in ids]
        rows.append(np.asarray(p.per_image["scores"][score], dtype=np.float64)[idx])
        if p.per_image["weights"] is not None:
            w = np.asarray(p.per_image["weights"], dtype=np.float64)[idx]
            if weights is not None and not np.array_equal(w, weights):
                raise ValueError(
                    f"{p.source}: per-image weights differ from other points' on the same images"
                )
            weights = w
    return (np.vstack(rows) if rows else np.zeros((0, len(ids)))), weights, ids


def _hull_points(curve: Curve, sc: SeedCurve) -> list[RatePoint]:
    by_source = {p.source: p for p in curve.points}
    return [by_source[q.source] for q in sc.points if q.on_hull]


def _clean_points(curve: Curve) -> list[RatePoint]:
    return [p for p in curve.clean if p.per_image is not None]


# --- estimates ------------------------------------------------------------------------------------------


class Options:
    """How intervals are computed: resamples, level, bootstrap seed (one object for a whole report)."""

    def __init__(self, resamples: int = 1000, level: float = 0.95, seed: int = 0):
        self.resamples, self.level, self.seed = int(resamples), float(level), int(seed)


def _estimate(result: seed_stats.SeedInterval | None, score: str | None, notes: list[str]) -> Estimate | None:
    """The report's record of a `seeds.SeedInterval`, with the per-image score it resampled."""
    if result is None:
        return None
    return Estimate(
        value=result.estimate,
        low=result.low,
        high=result.high,
        level=result.level,
        per_seed=dict(result.per_seed),
        covers=result.covers,
        share_training=result.share_training,
        score=score,
        images=result.images or None,
        method=result.method,
        notes=notes + list(result.notes),
    )


def _seed_matched(a: dict, b: dict) -> list:
    """Seeds present in both probes (seed s of one is compared with seed s of the other)."""
    return [s for s in a if s in b]


def seed_curves(probe_seeds: dict, seeds: list) -> tuple[list[tuple], list[RatePoint]]:
    """[(hull rates, hull points' per-image rows)] per seed, and the points in
    that order (rows aligned later)."""
    out, points = [], []
    for s in seeds:
        curve, sc = probe_seeds[s]
        hull = _hull_points(curve, sc)
        out.append(([q.rate for q in sc.points if q.on_hull], len(hull)))
        points += hull
    return out, points


def curve_scores(probes: list[dict], seeds: list, metric: str, notes: list[str], opts: Options):
    """Per-image scores of the hull points of several probes on the same seeds, aligned on their common
    images:
    (score name, [[(rates, P × n scores) per seed] per probe], weights), or None
    (and a note) when impossible."""
    shapes, points = [], []
    for probe_seeds in probes:
        for s in seeds:
            if len([q for q in probe_seeds[s][1].points if q.on_hull]) < 2:
                notes.append(f"seed {seed_key(s)}: needs 2 hull points per curve")
                return None
        shape, pts = seed_curves(probe_seeds, seeds)
        shapes.append(shape)
        points += pts
    score, why = interval_score(points, metric)
    if opts.resamples < 2:
        score, why = None, "no image resampling asked for (--bootstrap 0)"
    if score is None:
        notes.append(f"no image interval: {why}")
        return None
    try:
        matrix, weights, ids = aligned_scores(points, score)
    except ValueError as e:
        notes.append(f"no image interval: {e}")
        return None
    scored = max(len(p.per_image["ids"]) for p in points)
    if ids and len(ids) < scored:
        notes.append(f"intervals over the {len(ids)} images every point was scored on (of {scored})")
    if not ids or not np.all(np.isfinite(matrix)):
        notes.append(f"no image interval: no common test image, or a per-image {score} that is not finite")
        return None
    curves, row = [], 0
    for shape in shapes:
        per_seed = []
        for rates, k in shape:
            per_seed.append((rates, matrix[row : row + k]))
            row += k
        curves.append(per_seed)
    if score != metric:
        notes.append(f"intervals and across-seed estimates on per-image {score} (the proxy of {metric})")
    return score, curves, weights


def _resampling(opts: Options, seeds, weights) -> seed_stats.Resampling:
    """The seed-interval options of one comparison: the study's bootstrap settings, its seeds' names."""
    return seed_stats.Resampling(
        weights=weights,
        seeds=[seed_key(s) for s in seeds],
        resamples=opts.resamples,
        level=opts.level,
        seed=opts.seed,
    )


def bd_estimates(
    ref: tuple[Probe, dict],
    test: tuple[Probe, dict],
    metric: str,
    hib: bool,
    opts: Options,
    with_metric: bool = True,
) -> tuple[Estimate | None, Estimate | None, dict, list[str]]:
    """(BD-rate, BD-metric, per-seed cubic BD-rate, notes) of `test` vs `ref`, each probe given with its
    {seed: (Curve, SeedCurve)}; per seed on the hulls, then across seeds."""
    (_, ref_seeds), (_, test_seeds) = ref, test
    notes: list[str] = []
    seeds = _seed_matched(ref_seeds, test_seeds)
    if not seeds:
        return None, None, {}, [f"no seed in common with {ref[0].label} (its seeds {list(ref_seeds)})"]
    cubic = {}
    for s in seeds:
        ha = [q for q in ref_seeds[s][1].points if q.on_hull]
        hb = [q for q in test_seeds[s][1].points if q.on_hull]
        cubic[seed_key(s)] = _cubic(
            [q.rate for q in ha], [q.metric for q in ha], [q.rate for q in hb], [q.metric for q in hb], hib
        )
    found = curve_scores([ref_seeds, test_seeds], seeds, metric, notes, opts)
    if found is None:
        return _point_estimates(seeds, ref_seeds, test_seeds, hib, opts, notes) + (cubic, notes)
    score, (curves_a, curves_b), weights = found
    common = dict(higher_is_better=hib, **_resampling(opts, seeds, weights))
    bdr = _estimate(seed_stats.bd_rate_interval(curves_a, curves_b, **common), score, [])
    bdm = (
        _estimate(seed_stats.bd_metric_interval(curves_a, curves_b, **common), score, [])
        if with_metric
        else None
    )
    return bdr, bdm, cubic, notes


def bd_difference(
    pair_1: tuple[dict, dict], pair_2: tuple[dict, dict], metric: str, hib: bool, opts: Options
) -> Estimate | None:
    """BD-rate(pair_1 on vs off) against BD-rate(pair_2 on vs off), as the ratio of their rate factors (%):
    < 0 when pair_1's change saves more bits (e.g. KD for the generalist vs KD for the specialist)."""
    (off_1, on_1), (off_2, on_2) = pair_1, pair_2
    seeds = [s for s in off_1 if all(s in d for d in (on_1, off_2, on_2))]
    notes: list[str] = []
    found = curve_scores([off_1, on_1, off_2, on_2], seeds, metric, notes, opts) if seeds else None
    if found is None:
        return None
    score, curves, weights = found
    return _estimate(
        seed_stats.bd_rate_difference_interval(
            *curves, higher_is_better=hib, **_resampling(opts, seeds, weights)
        ),
        score,
        notes,
    )


def _point_estimates(seeds, ref_seeds, test_seeds, hib, opts, notes):
    """Without per-image scores: per-seed values on the section metric and a seeds-only interval."""
    out = []
    for fn in (bd_rate, bd_metric):
        values = {}
        for s in seeds:
            ha = [q for q in ref_seeds[s][1].points if q.on_hull]
            hb = [q for q in test_seeds[s][1].points if q.on_hull]
            try:
                values[seed_key(s)] = fn(
                    [q.rate for q in ha],
                    [q.metric for q in ha],
                    [q.rate for q in hb],
                    [q.metric for q in hb],
                    method=METHOD,
                    higher_is_better=hib,
                )
            except ValueError as e:
                notes.append(f"seed {seed_key(s)}: {e}")
                values[seed_key(s)] = None
        scale = seed_stats.LOG_RATIO if fn is bd_rate else seed_stats.IDENTITY
        out.append(_estimate(seed_stats.seeds_only_interval(values, scale=scale, level=opts.level), None, []))
    return tuple(out)


def _cubic(ra, ma, rb, mb, hib) -> dict:
    """Bjøntegaard's cubic BD-rate of one seed, flagged unreliable where a fitted cubic is not monotone over
    the
    range it is integrated on (it then extrapolates or oscillates: "+685578 %" came from such a fit)."""
    if min(len(ra), len(rb)) < 4:
        return {"value": None, "reliable": False, "why": "needs 4 hull points per curve"}
    try:
        value = bd_rate(ra, ma, rb, mb, method="cubic", higher_is_better=hib)
    except ValueError as e:
        return {"value": None, "reliable": False, "why": str(e)}
    reliable = cubic_is_monotone(ra, ma, hib) and cubic_is_monotone(rb, mb, hib)
    return {"value": value, "reliable": reliable, "why": "" if reliable else "a fitted cubic is not monotone"}


def clean_estimate(probe_seeds: dict, metric: str, opts: Options) -> tuple[Estimate | None, list[str]]:
    """The probe's clean accuracy across seeds (mean per-image score of its clean evaluations)."""
    notes: list[str] = []
    seeds = [s for s, (c, sc) in probe_seeds.items() if sc.clean is not None]
    if not seeds:
        return None, notes
    points = [p for s in seeds for p in _clean_points(probe_seeds[s][0])]
    per_seed_metric = {seed_key(s): probe_seeds[s][1].clean for s in seeds}
    score, why = (
        interval_score(points, metric) if len(points) == len(seeds) else (None, "not one clean eval per seed")
    )
    if opts.resamples < 2:
        score, why = None, "no image resampling asked for (--bootstrap 0)"
    if score is not None and score != metric:
        why = f"{metric} is not a mean over images (its proxy {score} is)"
        score = None
    if score is None:
        notes.append(f"clean: interval over training seeds only ({why})")
        return _estimate(seed_stats.seeds_only_interval(per_seed_metric, level=opts.level), None, []), notes
    matrix, weights, _ = aligned_scores(points, score)
    result = seed_stats.mean_interval(list(matrix), **_resampling(opts, seeds, weights))
    return _estimate(result, score, []), notes


def clean_difference(on: dict, off: dict, metric: str, opts: Options) -> Estimate | None:
    seeds = [s for s in _seed_matched(on, off) if on[s][1].clean is not None and off[s][1].clean is not None]
    if not seeds:
        return None
    points_on = [p for s in seeds for p in _clean_points(on[s][0])]
    points_off = [p for s in seeds for p in _clean_points(off[s][0])]
    score, _ = (
        interval_score(points_on + points_off, metric)
        if len(points_on) == len(points_off) == len(seeds)
        else (None, None)
    )
    score = score if score == metric and opts.resamples >= 2 else None  # AP's difference is not its proxy's
    if score is None:
        values = {seed_key(s): on[s][1].clean - off[s][1].clean for s in seeds}
        return _estimate(
            seed_stats.seeds_only_interval(values, level=opts.level),
            None,
            [f"interval over training seeds only: {metric} is not a mean over images"],
        )
    matrix, weights, _ = aligned_scores(points_on + points_off, score)
    k = len(seeds)
    return _estimate(
        seed_stats.mean_difference_interval(
            list(matrix[:k]),
            list(matrix[k:]),
            **_resampling(opts, seeds, weights),
        ),
        score,
        [],
    )


def tsr_estimate(
    probe_seeds: dict, metric: str, hib: bool, fraction: float, opts: Options
) -> Estimate | None:
    """The task-sufficient rate across seeds, on the log scale; seeds that never reach it are counted, not
    averaged.
    With per-image scores of the metric itself the interval covers the test images too."""
    seeds = [s for s, (_, sc) in probe_seeds.items() if sc.task_sufficient_rate is not None]
    if not seeds:
        return None
    values = {seed_key(s): probe_seeds[s][1].task_sufficient_rate.get("rate") for s in seeds}
    notes: list[str] = []
    clean = [_clean_points(probe_seeds[s][0]) for s in seeds]
    found = (
        curve_scores([probe_seeds], seeds, metric, notes, opts) if all(len(c) == 1 for c in clean) else None
    )
    if found is not None and found[0] == metric:
        score, (curves,), weights = found
        rows = aligned_scores(
            [p for c in clean for p in c] + [p for s in seeds for p in _hull_points(*probe_seeds[s])], score
        )
        if rows[2] and len(rows[2]) == curves[0][1].shape[1]:
            return _estimate(
                seed_stats.task_sufficient_rate_interval(
                    curves,
                    list(rows[0][: len(seeds)]),
                    fraction=fraction,
                    higher_is_better=hib,
                    **_resampling(opts, seeds, weights),
                ),
                score,
                [],
            )
    return _estimate(
        seed_stats.seeds_only_interval(values, scale=seed_stats.LOG, level=opts.level),
        None,
        ["interval over training seeds only"],
    )


def pair_records(
    probes: list[tuple[Probe, dict]], metric: str, hib: bool, opts: Options, what: str
) -> list[Pair]:
    """Probes of one encoder that differ only in KD weight (`what` = "kd": kd 0 vs > 0) or in being a
    cross-neck
    (`what` = "after": direct vs on a frozen first neck), same neck training and head."""

    def off(p: Probe) -> bool:
        return not p.kd if what == "kd" else p.after is None

    def group(p: Probe) -> tuple:
        if what == "kd":
            return (p.label, p.neck_base, p.after, p.neck_training, p.head)
        return (p.label, bool(p.kd) and p.kd, p.neck_training, p.head)

    out = []
    for p_on, s_on in probes:
        if off(p_on):
            continue
        for p_off, s_off in probes:
            if not off(p_off) or group(p_off) != group(p_on):
                continue
            bdr, _, _, notes = bd_estimates(
                (p_off, s_off), (p_on, s_on), metric, hib, opts, with_metric=False
            )
            out.append(
                Pair(
                    what,
                    p_on.label,
                    p_off.neck,
                    p_on.neck,
                    p_on.neck_training,
                    bdr,
                    clean_difference(s_on, s_off, metric, opts),
                    notes,
                )
            )
    return out


def build_probes(
    curves: list[Curve],
    metric: str,
    rate: str,
    hib: bool,
    fraction: float,
    anchor: str,
    opts: Options,
    notes: list[str],
) -> list[tuple[Probe, dict]]:
    """One Probe per (encoder, neck, neck training, head), its seeds in order,
    compared with the anchor's probe."""
    probes = collect_probes(curves, metric, rate, hib, fraction, opts, notes)
    anchors = {(p.neck, p.neck_training, p.head): (p, s) for p, s in probes if p.label == anchor}
    for probe, by_seed in probes:
        ref = anchors.get((probe.neck, probe.neck_training, probe.head))
        if ref is None:
            probe.notes.append(f"no {anchor} curve with this neck and head")
            continue
        probe.anchor = ref[0].label
        if ref[0] is probe:
            continue
        probe.bd_rate, probe.bd_metric, probe.bd_rate_cubic, bd_notes = bd_estimates(
            ref, (probe, by_seed), metric, hib, opts
        )
        probe.notes += bd_notes
    return probes


def collect_probes(
    curves: list[Curve], metric: str, rate: str, hib: bool, fraction: float, opts: Options, notes: list[str]
) -> list[tuple[Probe, dict]]:
    """One Probe per (encoder, neck, neck training, head, codec family), its seeds in order: per-seed curves,
    clean accuracy and task-sufficient rate across seeds."""
    grouped: dict[tuple, dict] = {}
    first: dict[tuple, Curve] = {}
    for c in curves:
        grouped.setdefault(c.probe, {})[c.seed] = (c, seed_curve(c, metric, rate, hib, fraction, notes))
        first.setdefault(c.probe, c)
    probes = []
    for key, by_seed in grouped.items():
        c = first[key]
        by_seed = dict(sorted(by_seed.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))
        probe = Probe(
            c.label,
            c.encoder,
            c.weights_id,
            c.resolution,
            c.neck,
            c.neck_base,
            c.neck_training,
            c.head,
            c.kd,
            c.after,
            [sc for _, sc in by_seed.values()],
            codec_family=c.codec_family,
        )
        probe.clean, clean_notes = clean_estimate(by_seed, metric, opts)
        probe.notes += clean_notes
        probe.task_sufficient_rate = tsr_estimate(by_seed, metric, hib, fraction, opts)
        probes.append((probe, by_seed))
    return probes


def standard_comparisons(
    learned: list[tuple[Probe, dict]],
    standard: list[tuple[Probe, dict]],
    metric: str,
    hib: bool,
    opts: Options,
) -> list[StandardComparison]:
    """BD-rate of each learned probe against every standard anchor's probe of the same encoder, neck, neck
    training and head: per seed (an anchor's curve is the same on every seed, its points are scored by each
    seed's neck),
    then across seeds, with the interval of every other BD-rate (`bd_estimates`)."""

    def same(p: Probe) -> tuple:
        return (p.encoder, p.weights_id, p.resolution, p.neck, p.neck_training, p.head)

    by_probe: dict[tuple, list] = {}
    for a in standard:
        by_probe.setdefault(same(a[0]), []).append(a)
    out = []
    for probe, by_seed in learned:
        for ref in by_probe.get(same(probe), []):
            bdr, _, _, notes = bd_estimates(ref, (probe, by_seed), metric, hib, opts, with_metric=False)
            out.append(
                StandardComparison(
                    probe.label, probe.neck, probe.neck_training, ref[0].codec_family, bdr, notes
                )
            )
    return out


def complexity_rows(curves: list[Curve]) -> list[ComplexityRow]:
    """Per (encoder, codec family): the median complexity over its distinct coded rate points (each codec's
    streams are measured once per split; its seeds' evaluations repeat the record)."""
    groups: dict[tuple, dict] = {}
    for c in curves:
        for p in c.points:
            if p.complexity:
                kind = (p.codec or "").split(" ")[0]
                groups.setdefault((c.label, c.codec_family, kind), {}).setdefault(p.codec, p.complexity)
    out = []
    for (encoder, family, kind), records in groups.items():
        medians = {k: _median([r[k] for r in records.values() if k in r]) for k in COMPLEXITY_FIELDS}
        out.append(ComplexityRow(encoder, family, kind, **medians, points=len(records)))
    return sorted(out, key=lambda r: (r.encoder, r.family != LEARNED, r.family))


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None
