"""codec.inputs: files, directories and globs → inputs, and the output each writes below -o DIR."""

import pytest

from codec.errors import InputError
from codec.inputs import find_files, output_targets


def _touch(root, *names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")


def test_a_directory_is_mirrored_so_equal_names_in_subfolders_do_not_collide(tmp_path):
    _touch(tmp_path / "photos", "a/1.jpg", "b/1.JPG", "top.png", "notes.txt")
    found = find_files([tmp_path / "photos"], (".jpg", ".png"))
    assert [str(f.relative) for f in found] == ["a/1.jpg", "b/1.JPG", "top.png"]
    targets = output_targets(found, tmp_path / "out", ".fcb", force=False)
    assert targets == [tmp_path / "out" / t for t in ("a/1.fcb", "b/1.fcb", "top.fcb")]


def test_hidden_names_are_skipped_in_directories_but_a_named_hidden_file_is_taken(tmp_path):
    _touch(tmp_path / "d", "._IMG.jpg", ".thumbnails/t.jpg", "IMG.jpg", "sub/.cache/x.jpg")
    assert [f.relative.as_posix() for f in find_files([tmp_path / "d"], (".jpg",))] == ["IMG.jpg"]
    assert [f.path.name for f in find_files([tmp_path / "d" / "._IMG.jpg"], (".jpg",))] == ["._IMG.jpg"]


def test_files_and_glob_matches_write_by_name_and_a_collision_names_both_inputs(tmp_path):
    _touch(tmp_path, "x/1.jpg", "y/1.png")
    found = find_files([str(tmp_path / "x" / "*.jpg"), tmp_path / "y" / "1.png"], (".jpg",))
    assert [f.relative.as_posix() for f in found] == ["1.jpg", "1.png"]  # a named file: any suffix
    with pytest.raises(InputError, match=r"x/1\.jpg and .*y/1\.png would both write .*1\.fcb"):
        output_targets(found, tmp_path / "out", ".fcb", force=False)


def test_missing_inputs_and_existing_outputs_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="nope: no such file"):
        find_files([tmp_path / "nope"], (".jpg",))
    with pytest.raises(InputError, match=r"\*\.jpg: no file matches"):
        find_files([str(tmp_path / "*.jpg")], (".jpg",))
    _touch(tmp_path, "in/a.jpg", "out/a.fcb")
    found = find_files([tmp_path / "in"], (".jpg",))
    with pytest.raises(InputError, match="exists; pass --force"):
        output_targets(found, tmp_path / "out", ".fcb", force=False)
    assert output_targets(found, tmp_path / "out", ".fcb", force=True) == [tmp_path / "out" / "a.fcb"]
