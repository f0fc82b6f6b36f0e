"""Files, directories and quoted globs → the inputs of a many-file command and the output each writes
(`featcodec encode IMAGE|DIR|GLOB... -o DIR`, `featcodec decode STREAM|DIR|GLOB... -o DIR`).

    found = find_files(["photos/", "more/*.jpg"], IMAGE_SUFFIXES)  # [Found(path, relative), ...]
    targets = output_targets(found, Path("out"), ".fcb", force=False)   # out/<relative>.fcb, checked

Torch-free: the CLI resolves its inputs before it loads a model.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

GLOB_CHARS = frozenset("*?[")
STREAM_SUFFIX = ".fcb"


def expand_patterns(items: Sequence) -> list[str]:
    """Each item as given, or, when no such path exists and it holds *, ? or [, the paths its glob matches
    (sorted; `**` recurses). Patterns are quoted past the shell so that directories of any size work."""
    out: list[str] = []
    for item in items:
        text = str(item)
        if not Path(text).exists() and GLOB_CHARS & set(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise InputError(f"{text}: no file matches this pattern")
            out.extend(matches)
        else:
            out.append(text)
    return out


@dataclass(frozen=True)
class Found:
    """An input file and where its output goes below `-o DIR`: its path below the directory it was found
    in (so `photos/a/1.jpg` and `photos/b/1.jpg` do not collide), or its name (a file or glob match)."""

    path: Path
    relative: Path


def find_files(items: Sequence, suffixes: Sequence[str]) -> list[Found]:
    """Files (as given), directories (their files with one of `suffixes`, any case, recursively, sorted)
    and glob patterns → Found. In directories, hidden files and folders (a name starting with `.`:
    `._IMG.jpg` AppleDouble files, `.thumbnails/`, `.ipynb_checkpoints/`) are skipped."""
    suffixes = tuple(s.lower() for s in suffixes)
    found: list[Found] = []
    for text in expand_patterns(items):
        p = Path(text)
        if p.is_dir():
            for q in sorted(p.rglob("*")):
                relative = q.relative_to(p)
                if (
                    q.suffix.lower() in suffixes
                    and not any(part.startswith(".") for part in relative.parts)
                    and q.is_file()
                ):
                    found.append(Found(q, relative))
        elif p.exists():
            found.append(Found(p, Path(p.name)))
        else:
            raise InputError(f"{p}: no such file or directory")
    return found


def output_targets(found: Sequence[Found], output: Path, suffix: str, *, force: bool) -> list[Path]:
    """One output per input below the directory `output`, the input's relative path with `suffix`:
    two inputs that would write one file, or an existing output without `force`, are an InputError."""
    return check_targets(
        [output / f.relative.with_suffix(suffix) for f in found], force=force, inputs=[f.path for f in found]
    )


def check_targets(targets: list[Path], *, force: bool, inputs: Sequence[Path] | None = None) -> list[Path]:
    """One output per input, none of them already there (unless `force`): else InputError naming them."""
    first: dict[Path, int] = {}
    for i, target in enumerate(targets):
        j = first.setdefault(target, i)
        if j != i:
            which = f"{inputs[j]} and {inputs[i]}" if inputs is not None else "two inputs"
            raise InputError(f"{which} would both write {target}; rename one of them")
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise InputError(f"{existing[0]}: exists; pass --force to overwrite")
    return targets


def remaining(
    paths: Sequence[Path], targets: Sequence[Path], written_by_this_run: Callable[[Path], None]
) -> tuple[list[Path], list[Path]]:
    """`--resume`: the inputs whose output is not there yet. An existing output is complete (outputs are
    written atomically) and is kept once `written_by_this_run(target)` has checked it (raising InputError,
    naming the file, for one another codec wrote)."""
    todo: tuple[list[Path], list[Path]] = ([], [])
    for path, target in zip(paths, targets, strict=True):
        if target.exists():
            written_by_this_run(target)
        else:
            todo[0].append(path)
            todo[1].append(target)
    return todo
