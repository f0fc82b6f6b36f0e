"""The paper's four findings, decided from seed-aware intervals: reproduced, contradicted or inconclusive.

"How Universal Are SAM2 Features?" (PCS 2025), with the anchor as the generalist (MAE Hiera) and every other
encoder as a specialist (SAM2):

    (a) the specialist ≥ the generalist on depth         BD-rate(specialist vs generalist, depth) < 0
    (b) the generalist > the specialist on pose, caption   BD-rate(specialist vs generalist, pose | caption)
    > 0 (c) a cross-neck loses accuracy against a direct neck  clean accuracy (cross − direct) worse, each
    encoder (d) KD helps, and more for the generalist              BD-rate(KD on vs off) < 0, each encoder;
    and
                                                           BD-rate_KD(generalist) − BD-rate_KD(specialist) < 0

Rule (docs/analysis.md, "Verdicts"): a comparison is on the finding's side when its whole interval is; a
finding is *reproduced* when every one of its comparisons is, at level 1 − α/F (F findings: Bonferroni over
findings; all parts must hold, an intersection–union test, so no correction within a finding); *contradicted*
when any comparison's interval lies wholly on the other side at level 1 − α/(F·k) (k comparisons in the
finding); else *inconclusive*. α = 0.05.
"""

from __future__ import annotations

from collections.abc import Callable

from . import seeds as seed_stats
from .compare import Options, bd_difference, bd_estimates, clean_difference
from .records import Estimate, Evidence, Probe, Verdict

ALPHA = 0.05
FINDINGS = {
    "a": "the specialised encoder is at least as good as the generalist on depth (fewer bits for equal "
    "accuracy)",
    "b": "the generalist beats the specialised encoder on pose and on captioning",
    "c": "a cross-neck (task B on a frozen task-A neck) loses accuracy against a direct neck",
    "d": "KD helps (fewer bits for equal accuracy), and more for the generalist",
}


def side(estimate: Estimate | None, expect: str) -> str:
    """'for' when the interval lies wholly on the expected side of 0, 'against' when wholly on the other,
    else 'open'
    (`seeds.verdict`'s reproduced / contradicted / inconclusive of one comparison)."""
    outcome = seed_stats.verdict(
        None if estimate is None else {"low": estimate.low, "high": estimate.high}, expect
    )
    return {"reproduced": "for", "contradicted": "against"}.get(outcome, "open")


def decide(parts: list[tuple[str, Estimate | None, Estimate | None, str]]) -> tuple[str, list[Evidence]]:
    """parts: (label, estimate at the 'reproduced' level, estimate at the
    'contradicted' level, expected sign)."""
    if not parts or all(p[1] is None for p in parts):
        return "not measured", [
            Evidence(label, est, expect, "not measured") for label, est, _, expect in parts
        ]
    evidence, outcome = [], "reproduced"
    for label, est, strict, expect in parts:
        s_for, s_against = side(est, expect), side(strict, expect)
        one = "for" if s_for == "for" else "against" if s_against == "against" else "open"
        evidence.append(Evidence(label, est, expect, one))
        if one == "against":
            outcome = "contradicted"
        elif one != "for" and outcome != "contradicted":
            outcome = "inconclusive"
    return outcome, evidence


def _find(probes, pred: Callable[[Probe], bool]):
    return next(((p, s) for p, s in probes if pred(p)), None)


def _direct(p: Probe) -> bool:
    return p.neck_training == "clean-trained" and not p.kd and p.after is None


def findings(sections: list[tuple], anchor: str, opts: Options) -> list[Verdict]:
    """sections: (task, metric, higher_is_better, [(Probe, by_seed)]) of the
    report; one verdict per finding."""
    n = len(FINDINGS)
    level = seed_stats.bonferroni_level(n, ALPHA)

    def at(k: int) -> tuple[Options, Options]:
        strict = seed_stats.bonferroni_level(n * max(k, 1), ALPHA)
        return Options(opts.resamples, level, opts.seed), Options(opts.resamples, strict, opts.seed)

    by_task = {}
    for task, metric, hib, probes in sections:
        by_task.setdefault(task, (metric, hib, probes))  # a task's first dataset and metric (the primary)
    specialists = list(
        dict.fromkeys(p.label for _, _, _, probes in sections for p, _ in probes if p.label != anchor)
    )
    verdicts = []

    def versus(task: str, expect: str, k: int) -> list[tuple]:
        if task not in by_task:
            return []
        metric, hib, probes = by_task[task]
        ref = _find(probes, lambda p: p.label == anchor and _direct(p))
        out = []
        for name in specialists:
            test = (
                _find(probes, lambda p, name=name: p.label == name and _direct(p) and p.neck == ref[0].neck)
                if ref
                else None
            )
            if ref is None or test is None:
                out.append((f"{task}: BD-rate of {name} vs {anchor}", None, None, expect))
                continue
            loose, strict = at(k)
            est = bd_estimates(ref, test, metric, hib, loose, with_metric=False)[0]
            est_strict = bd_estimates(ref, test, metric, hib, strict, with_metric=False)[0]
            out.append((f"{task} ({ref[0].neck}): BD-rate of {name} vs {anchor}, %", est, est_strict, expect))
        return out

    parts_a = versus("depth", "negative", 1)
    parts_b = versus("pose", "positive", 2) + versus("caption", "positive", 2)
    parts_c = []
    for task, (metric, hib, probes) in by_task.items():
        for cross, s_cross in probes:
            if cross.after is None or cross.neck_training != "clean-trained":
                continue
            direct = _find(
                probes, lambda p, c=cross: p.label == c.label and _direct(p) and p.neck_base == c.neck_base
            )
            if direct is None:
                continue
            k = sum(1 for p, _ in probes if p.after is not None and p.neck_training == "clean-trained")
            loose, strict = at(k)
            parts_c.append(
                (
                    f"{task}: clean {metric} of {cross.label} on a {cross.after}-neck − direct",
                    clean_difference(s_cross, direct[1], metric, loose),
                    clean_difference(s_cross, direct[1], metric, strict),
                    "negative" if hib else "positive",
                )
            )
    parts_d, kd_pairs = [], {}
    for task, (metric, hib, probes) in by_task.items():
        for on, s_on in probes:
            if not on.kd or on.neck_training != "clean-trained" or on.after is not None:
                continue
            off = _find(
                probes, lambda p, o=on: p.label == o.label and _direct(p) and p.neck_base == o.neck_base
            )
            if off is None:
                continue
            kd_pairs.setdefault(task, {})[on.label] = (off, (on, s_on), metric, hib)
    for task, pairs in kd_pairs.items():
        k = len(pairs) + 1
        loose, strict = at(k)
        for label, (off, on, metric, hib) in pairs.items():
            parts_d.append(
                (
                    f"{task}: BD-rate of KD on vs off, {label}, %",
                    bd_estimates(off, on, metric, hib, loose, with_metric=False)[0],
                    bd_estimates(off, on, metric, hib, strict, with_metric=False)[0],
                    "negative",
                )
            )
        if anchor in pairs:
            for name in [s for s in specialists if s in pairs]:
                (off_g, on_g, metric, hib), (off_s, on_s, _, _) = pairs[anchor], pairs[name]
                gain = ((off_g[1], on_g[1]), (off_s[1], on_s[1]))
                parts_d.append(
                    (
                        f"{task}: KD rate factor of {anchor} ÷ of {name}, % (< 0: KD saves more bits "
                        f"for {anchor})",
                        bd_difference(*gain, metric, hib, loose),
                        bd_difference(*gain, metric, hib, strict),
                        "negative",
                    )
                )
    rule = (
        f"reproduced: every comparison's {100 * level:.2f} % interval on the finding's side of 0; "
        "contradicted: "
        f"some comparison's interval (level 1 − {ALPHA:g}/({n}·k)) wholly on the other side; else "
        "inconclusive"
    )
    for key, parts in (("a", parts_a), ("b", parts_b), ("c", parts_c), ("d", parts_d)):
        outcome, evidence = decide(parts)
        verdicts.append(Verdict(key, FINDINGS[key], outcome, evidence, rule))
    return verdicts
