"""Choices the CLI spells out (so that --help needs no torch) equal the registries they mirror."""

from codec.commands import CODER_NAMES
from probes.commands.coding import HYPER_PATH_NAMES
from probes.commands.encoders import FEATURE_DTYPES
from probes.commands.necks import TASKS


def test_coder_names_are_the_entropy_coders():
    from codec.entropy import CODERS

    assert CODER_NAMES == tuple(sorted(CODERS))


def test_hyper_path_names_are_the_hyperpriors():
    from codec.models.hyperprior import HYPER_PATHS

    assert HYPER_PATH_NAMES == tuple(sorted(HYPER_PATHS))


def test_feature_dtypes_are_the_extractors():
    from probes.encoders.extract import DTYPES

    assert FEATURE_DTYPES == tuple(sorted(DTYPES))


def test_tasks_are_the_heads_tasks():
    from probes.heads import TASKS as HEAD_TASKS

    assert TASKS == HEAD_TASKS


def test_shipped_heads_path_is_the_registrys():
    from probes.commands.heads import SHIPPED_HEADS
    from probes.heads.registry import SHIPPED_WEIGHTS

    assert SHIPPED_HEADS == SHIPPED_WEIGHTS.resolve()
