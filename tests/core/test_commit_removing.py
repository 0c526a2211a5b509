"""``commit_removing``: the files of deleted rows go with the commit -- renamed aside into the dataset's root before
it (their emptied folders pruned), deleted after it, renamed back when it fails -- and never leave a temp name
behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event
from sqlmodel import Session

from georeg.core.db import make_engine
from georeg.core.registry.objects import commit_removing


@pytest.fixture
def session(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    with Session(engine) as open_session:
        yield open_session
    engine.dispose()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for path in ("a/b/one.txt", "a/two.txt", "c/three.txt"):
        (tmp_path / "root" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "root" / path).write_text(path)
    return tmp_path / "root"


def tree(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def test_removed_with_the_commit_and_emptied_folders_pruned(session, root):
    commit_removing(session, [root / "a" / "b" / "one.txt", root / "c", root / "missing.txt"], root=root)
    assert tree(root) == ["a", "a/two.txt"]


def test_a_failed_commit_puts_everything_back(session, root):
    before = {path: (root / path).read_text() for path in tree(root) if (root / path).is_file()}

    def refuse(_session) -> None:
        raise RuntimeError("commit refused")

    event.listen(session, "before_commit", refuse)
    with pytest.raises(RuntimeError, match="commit refused"):
        commit_removing(session, [root / "a" / "b" / "one.txt", root / "a"], root=root)
    assert {path: (root / path).read_text() for path in tree(root) if (root / path).is_file()} == before
    assert tree(root) == ["a", "a/b", "a/b/one.txt", "a/two.txt", "c", "c/three.txt"]
