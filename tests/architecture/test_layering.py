"""The layers depend one way (codec ← probes ← bench), and no module-level import cycle exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .layering import import_cycles, upward_imports

ROOT = Path(__file__).resolve().parents[2]


def test_no_layer_imports_a_higher_one():
    assert upward_imports(ROOT) == []


def test_no_module_level_import_cycles():
    assert import_cycles(ROOT) == []


def _fake_project(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for layer in ("codec", "probes", "bench"):
        (tmp_path / layer).mkdir(exist_ok=True)
        (tmp_path / layer / "__init__.py").touch()
    return tmp_path


def test_the_check_catches_an_upward_import_at_any_depth(tmp_path):
    root = _fake_project(
        tmp_path,
        {
            "codec/levels.py": "import torch\n",
            "codec/models/net.py": "def f():\n    from probes.encoders import spec\n",  # inside a function
            # relative
            "probes/encoders/spec.py": "from codec.levels import FeatureLevel\nfrom ...bench import cli\n",
            "bench/cli.py": "import probes.encoders.spec\nimport codec\n",
        },
    )
    found = upward_imports(root)
    assert len(found) == 2
    assert any(f.startswith("codec/models/net.py:2 (codec) imports probes.encoders") for f in found)
    assert any(f.startswith("probes/encoders/spec.py:2 (probes) imports bench") for f in found)


def test_the_check_catches_a_cycle(tmp_path):
    root = _fake_project(
        tmp_path,
        {
            "codec/a.py": "from codec import b\n",
            "codec/b.py": "from .a import x\n",
            "codec/c.py": "def later():\n    from codec import a\n",  # not at import time: no cycle
        },
    )
    assert import_cycles(root) == [["codec.a", "codec.b", "codec.a"]]


def test_cli_help_and_info_import_no_torch(tmp_path):
    """`featcodec --help`, `CMD --help` and `info` answer without importing torch (instant start-up)."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from bench.cli import COMMANDS, main\n"
        "r = CliRunner()\n"
        "assert r.invoke(main, ['--help']).exit_code == 0\n"
        "for name in COMMANDS:\n"
        "    res = r.invoke(main, [name, '--help'])\n"
        "    assert res.exit_code == 0, (name, res.output)\n"
        "assert r.invoke(main, ['info', sys.argv[1]]).exit_code == 3\n"  # not a stream: clean error, no torch
        "heavy = sorted(m for m in ('torch', 'timm', 'numpy', 'compressai', 'transformers') if m in "
        "sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    junk = tmp_path / "junk.fcb"
    junk.write_bytes(b"not a stream")
    out = subprocess.run(
        [sys.executable, "-c", code, str(junk)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""
