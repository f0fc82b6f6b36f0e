"""The torch-free name indexes (codec/names.py, probes/names.py) equal the registries they mirror, and the
CLI's --help reads them (tests/architecture/test_layering.py checks that it imports no torch)."""

from codec import names as codec_names
from probes import names as probes_names


def test_codec_kinds_are_the_codec_registry():
    from codec.models import CODECS

    assert codec_names.CODEC_KINDS == tuple(CODECS.names())


def test_coder_names_are_the_entropy_coders():
    from codec.entropy import CODERS

    assert codec_names.CODER_NAMES == tuple(CODERS.names())


def test_packed_kinds_are_the_standard_anchors():
    from codec.models import PACKED_KINDS

    assert codec_names.PACKED_KINDS == tuple(sorted(PACKED_KINDS))
    assert set(PACKED_KINDS) <= set(codec_names.CODEC_KINDS)


def test_transform_kinds_are_the_transform_codecs():
    from codec.models import CODECS
    from codec.models.base import TransformFeatureCodec

    kinds = tuple(k for k in CODECS.names() if issubclass(CODECS.get(k), TransformFeatureCodec))
    assert codec_names.TRANSFORM_KINDS == tuple(sorted(kinds))


def test_task_names_are_the_task_registry():
    from probes.heads import BUILTIN_HEADS
    from probes.tasks import TASKS

    assert sorted(probes_names.TASK_NAMES) == TASKS.names() == BUILTIN_HEADS.names()


def test_dataset_usage_is_the_data_registry():
    from probes.data import DATASETS

    assert probes_names.DATASET_USAGE == {name: DATASETS.get(name).usage for name in DATASETS.names()}


def test_head_schemes_are_the_head_registry():
    from probes.heads import HEADS

    assert probes_names.HEAD_SCHEMES == tuple(HEADS.names())


def test_feature_dtypes_are_the_extractors():
    from probes.encoders.extract import DTYPES

    assert probes_names.FEATURE_DTYPES == tuple(sorted(DTYPES))


def test_shipped_heads_path_is_the_registrys():
    from probes.commands.heads import SHIPPED_HEADS
    from probes.heads.registry import SHIPPED_WEIGHTS

    assert SHIPPED_HEADS == SHIPPED_WEIGHTS.resolve()


def test_the_cli_offers_the_indexed_names():
    """Each choice the CLI spells is the index, so a registered kind reaches --help."""
    from click import Choice

    from bench.cli import main

    def choices(command: str, option: str) -> tuple[str, ...]:
        cmd = main.get_command(None, command)
        param = next(p for p in cmd.params if p.name == option)
        assert isinstance(param.type, Choice)
        return tuple(param.type.choices)

    assert choices("train-codec", "kind") == codec_names.CODEC_KINDS
    assert choices("encode", "coder") == codec_names.CODER_NAMES
    assert choices("train-neck", "task") == probes_names.TASK_NAMES


def test_the_format_and_schema_modules_and_the_results_reader_import_no_torch():
    """bench.rd reads eval results and sweep rows through these modules, and encode/decode resolve their
    inputs through codec.inputs, torch-free."""
    import subprocess
    import sys
    from pathlib import Path

    modules = "codec.names, codec.inputs, probes.names, bench.names, bench.rd.results"
    code = f"import sys, {modules}\nprint('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"


def test_schema_record_writes_exactly_its_schema():
    import pytest

    assert list(codec_names.schema_record(("b", "a"), {"a": 1, "b": 2})) == ["b", "a"]
    with pytest.raises(AssertionError, match="'c'"):
        codec_names.schema_record(("a", "b"), {"a": 1, "b": 2, "c": 3})
