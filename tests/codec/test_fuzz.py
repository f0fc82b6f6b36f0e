"""Checksum-consistent mutation fuzzing (tests/codec/fuzz.py): every mutated stream is refused with a
BitstreamError (exit 3 through the CLI) or decodes to exactly the original features; nothing else."""

import pytest

from . import fuzz

MUTATIONS_PER_PAIR = 100  # seeded; 7 kind/coder pairs; the >10 000-mutation run is by hand (bench/RESULTS.md)
PACKED_MUTATIONS = 150  # each decode runs the HEVC decoder on three levels


@pytest.fixture(scope="module")
def codecs(tmp_path_factory):
    return fuzz.make_codecs(tmp_path_factory.mktemp("fuzz"))


def test_mutated_streams_are_refused_or_decode_exactly(codecs, tmp_path):
    result = fuzz.run(codecs, MUTATIONS_PER_PAIR, seed=22, cli_every=20, folder=tmp_path)
    assert not result["findings"], [f[:5] for f in result["findings"][:5]]
    assert result["counts"]["refused"] > 0.8 * MUTATIONS_PER_PAIR * len(fuzz.COMBOS)
    assert set(result["exit_codes"]) <= {0, 3} and result["exit_codes"][3] > 0  # every refusal: exit code 3


def test_mutated_packed_streams_are_refused_or_decode_exactly(tmp_path):
    """The standard's decoder accepts many mutated bitstreams: the decoded-sample checksums refuse them."""
    codecs = fuzz.make_codecs(tmp_path, packed=True)
    result = fuzz.run(codecs, PACKED_MUTATIONS, seed=20, combos=[fuzz.PACKED])
    assert not result["findings"], [f[:5] for f in result["findings"][:5]]
    assert result["counts"]["refused"] > 0.8 * PACKED_MUTATIONS


@pytest.mark.parametrize("what", ["odd-grid", "huge-int", "json-bomb", "tiny-compressai", "empty-checksums"])
def test_cli_refuses_crafted_streams_with_exit_3(codecs, tmp_path, what):
    codec = codecs["factorized" if what != "empty-checksums" else "hyperprior"]
    good = fuzz.craft_stream(codec, "native", (2, 2), 2)
    if what == "odd-grid":
        data = fuzz.craft_stream(codec, "native", (3, 5), 2)
    elif what == "tiny-compressai":  # an 8-byte y.0 for 25×2×2 symbols: compressai's own reader runs past it
        data = fuzz.craft_stream(codec, "compressai", (2, 2), 1)
        container = fuzz.unpack(data)
        data = fuzz.pack({k: v for k, v in container.header.items() if k != "substreams"}, {"y.0": bytes(8)})
    else:
        header = {k: v for k, v in fuzz.unpack(good).header.items() if k != "substreams"}
        subs = fuzz.unpack(good).substreams
        if what == "empty-checksums":
            data = fuzz.pack({**header, "checksums": {}}, subs)
        else:
            text = fuzz.json.dumps(header, sort_keys=True, separators=(",", ":"))
            text = (
                text.replace('"resolution":', '"resolution":' + "9" * 5000 + ',"_":', 1)
                if what == "huge-int"
                else text[:-1] + ',"x":' + "[" * 2000 + "]" * 2000 + "}"
            )
            data = fuzz._raw_json_stream(text, subs)
    result = fuzz.decode_cli(codec, data, tmp_path)
    assert result.exit_code == 3, result.output
