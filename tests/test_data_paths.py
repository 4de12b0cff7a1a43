from __future__ import annotations

from pathlib import Path

import pytest

from ragprune.data import data_root


def test_env_var_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGPRUNE_DATA", str(tmp_path))
    assert data_root() == tmp_path


def test_env_var_pointing_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGPRUNE_DATA", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError) as error:
        data_root()
    assert str(error.value) == (
        f"$RAGPRUNE_DATA points to {tmp_path / 'missing'}, which is not a directory; fix or unset it"
    )


def test_default_is_shared_data_next_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "project").mkdir()
    monkeypatch.delenv("RAGPRUNE_DATA", raising=False)
    monkeypatch.chdir(tmp_path / "project")
    assert data_root() == (tmp_path / "shared" / "data").resolve()
