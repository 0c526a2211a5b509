"""Path normalization and atomic writes."""

from __future__ import annotations

import pytest

from georeg.core.errors import InvalidPath, PayloadTooLarge
from georeg.core.storage import normalize_entry_path, resolve_inside, write_atomically

HOSTILE_PATHS = [
    "../etc/passwd",
    "a/../../b",
    "a/..",
    "..",
    "/etc/passwd",
    "//server/share",
    "C:/Windows/win.ini",
    "c:evil",
    "a\\..\\b",
    "..\\..\\x",
    "a\x00b",
    "a/\nb",
    "x" * 1025,
    "a/.georeg-tmp-123",
    "a/ b /c",
    "a/" + "x" * 256,  # a file name longer than NAME_MAX (the OS would refuse it)
    "é" * 128,  # 256 bytes in UTF-8
]


@pytest.mark.parametrize("raw", HOSTILE_PATHS, ids=lambda raw: repr(raw)[:30])
def test_hostile_paths_are_rejected(raw):
    with pytest.raises(InvalidPath):
        normalize_entry_path(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a/b/c.tif", "a/b/c.tif"), ("./a//b/", "a/b"), ("a/./b", "a/b"), ("é/ü.txt", "é/ü.txt"), ("a..b/c", "a..b/c")],
)
def test_clean_paths_are_normalized(raw, expected):
    assert normalize_entry_path(raw) == expected


def test_root_only_when_allowed():
    assert normalize_entry_path("", allow_root=True) == ""
    with pytest.raises(InvalidPath):
        normalize_entry_path("")


def test_resolve_inside_refuses_symlink_escape(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(InvalidPath):
        resolve_inside(root, "link/outside.txt")
    assert resolve_inside(root, "a/b") == root.resolve() / "a" / "b"


def test_atomic_write_hashes_and_renames(tmp_path):
    stored = write_atomically([b"hello ", b"world"], tmp_path / "out" / "f.txt", tmp_dir=tmp_path / "tmp",
                              max_bytes=100)
    assert stored.path.read_bytes() == b"hello world"
    assert stored.size == 11
    assert stored.sha256 == "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    assert list((tmp_path / "tmp").iterdir()) == []


def test_oversize_write_leaves_nothing(tmp_path):
    with pytest.raises(PayloadTooLarge):
        write_atomically([b"x" * 60, b"x" * 60], tmp_path / "out.bin", tmp_dir=tmp_path / "tmp", max_bytes=100)
    assert not (tmp_path / "out.bin").exists()
    assert list((tmp_path / "tmp").iterdir()) == []
