"""Conformance: tests/codec/fcb_reader.py, written from docs/bitstream.md without importing featcodec, decodes
the symbols of the golden streams in tests/codec/data/golden (every coder, both containers, the old and the
new channel-group bounds, M = 25 with 22 groups) and of fresh ones, with the streams' own checksums."""

import ast
from pathlib import Path

import pytest

from codec.entropy import legacy_group_bounds
from codec.pipeline import encode_features

from . import fcb_reader, fuzz

GOLDEN = Path(__file__).parent / "data" / "golden"
# (kind, coder, groups, compact, legacy bounds): what the golden set holds
CASES = [
    (kind, coder, 22, True, False)
    for kind in ("factorized", "hyperprior")
    for coder in ("native", "native2", "constriction", "compressai")
]
CASES += [
    ("factorized", "native", 1, False, False),
    ("hyperprior", "native", 3, False, False),
    ("factorized", "native", 2, True, True),
    ("hyperprior", "compressai", 4, False, True),
]


def _name(kind, coder, groups, compact, legacy):
    return f"{kind}-{coder}-g{groups}-v{2 if compact else 1}.{0 if legacy else 1}.fcb"


def make_stream(codecs, kind, coder, groups, compact, legacy) -> bytes:
    from .test_hardening import _as_minor_0

    x = fuzz.features((2, 4), seed=1)
    with legacy_group_bounds(legacy):
        (data,) = encode_features(codecs[kind], x, coder=coder, groups=groups, compact=compact)
    return _as_minor_0(data) if legacy else data


@pytest.fixture(scope="module")
def codecs(tmp_path_factory):
    return fuzz.make_codecs(tmp_path_factory.mktemp("conformance"))


def test_the_reader_imports_no_featcodec_module():
    tree = ast.parse(Path(fcb_reader.__file__).read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not modules & {"codec", "probes", "bench", "tests"}, modules


@pytest.mark.parametrize("case", CASES, ids=lambda c: _name(*c))
def test_the_independent_reader_decodes_the_golden_streams(codecs, case):
    kind = case[0]
    data = (GOLDEN / _name(*case)).read_bytes()
    assert fcb_reader.parse(data)["checksums"]  # the golden stream was written by these (seeded) codecs:
    assert data == make_stream(codecs, *case), (
        "golden stream differs: regenerate with python -m tests.codec.test_conformance"
    )
    out = fcb_reader.read_symbols(data, codecs[kind].path)
    assert out["crc"] == out["checksums"]


def test_the_reader_agrees_on_other_grids_and_groups(codecs):
    for kind in ("factorized", "hyperprior"):
        for coder in ("native", "native2", "constriction", "compressai"):
            for grid, groups, spread in (
                ((2, 2), 25, 3),
                ((4, 6), 7, 40),
                ((2, 8), 16, 1 << 20),
            ):  # large: escapes
                data = fuzz.craft_stream(
                    codecs[kind], coder, grid, groups, seed=groups, compact=groups % 2 == 1, spread=spread
                )
                out = fcb_reader.read_symbols(data, codecs[kind].path)
                assert out["crc"] == out["checksums"], (kind, coder, grid, groups)


def test_the_reader_decodes_every_native2_lane_count(codecs):
    lanes = set()
    for grid, spread in (((4, 4), 3), ((8, 8), 40), ((16, 16), 3), ((16, 16), 40)):  # 1, 2, 4 and 8 lanes
        data = fuzz.craft_stream(
            codecs["factorized"], "native2", grid, 1, seed=spread, compact=True, spread=spread
        )
        out = fcb_reader.read_symbols(data, codecs["factorized"].path)
        assert out["crc"] == out["checksums"], (grid, spread)
        lanes.add(fcb_reader.parse(data)["substreams"]["y.0"][0])
    assert lanes == {0, 1, 2, 3}, lanes


if __name__ == "__main__":  # regenerate the golden streams (only when the format deliberately changes)
    import tempfile

    GOLDEN.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        made = fuzz.make_codecs(Path(tmp))
        for case in CASES:
            (GOLDEN / _name(*case)).write_bytes(make_stream(made, *case))
