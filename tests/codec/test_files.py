import pytest

from codec.files import atomic_write, atomic_write_bytes, sha256_file


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")

    def half_write(tmp):
        with open(tmp, "wb") as f:
            f.write(b"ne")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_write)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_sha256_file_matches_hashlib(tmp_path):
    import hashlib

    (tmp_path / "f").write_bytes(b"x" * 3_000_000)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(b"x" * 3_000_000).hexdigest()
