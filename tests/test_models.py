"""The catalog, the old aliases, and the allow-list (the one place that decides what loads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.errors import ErrorCode, RequestError
from watcher.models import CATALOG, resolve_model


def test_catalog_knows_every_official_model() -> None:
    assert len(CATALOG) == 10
    assert CATALOG["facebook/musicgen-stereo-melody-large"].channels == 2
    assert CATALOG["facebook/musicgen-stereo-melody-large"].melody
    assert not CATALOG["facebook/musicgen-small"].melody


def test_alias_resolves_to_the_real_id_and_says_so() -> None:
    resolved = resolve_model("facebook/musicgen-small-stereo")
    assert resolved.name == "facebook/musicgen-stereo-small" and resolved.aliased
    assert resolved.info is not None and resolved.info.channels == 2
    assert not resolve_model("facebook/musicgen-stereo-small").aliased


def test_unknown_model_lists_valid_ids() -> None:
    with pytest.raises(RequestError) as caught:
        resolve_model("musicgen-huge")
    assert caught.value.code is ErrorCode.unknown_model
    assert "facebook/musicgen-small" in caught.value.message


def test_outside_the_allow_list_is_not_allowed() -> None:
    with pytest.raises(RequestError) as caught:
        resolve_model("someone/musicgen-finetune")
    assert caught.value.code is ErrorCode.model_not_allowed
    with pytest.raises(RequestError) as caught:
        resolve_model("facebook/musicgen-large", allowed=["facebook/musicgen-small"])
    assert caught.value.code is ErrorCode.model_not_allowed


def test_star_allows_any_hub_id() -> None:
    assert resolve_model("someone/musicgen-finetune", allowed=["*"]).info is None


def test_model_folders_only_under_model_dirs(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "mine"
    folder.mkdir(parents=True)
    for name in ("state_dict.bin", "compression_state_dict.bin"):
        (folder / name).write_bytes(b"")
    assert resolve_model(str(folder), model_dirs=[tmp_path / "models"]).local
    with pytest.raises(RequestError) as caught:
        resolve_model(str(folder), model_dirs=[tmp_path / "elsewhere"])
    assert caught.value.code is ErrorCode.model_not_allowed
    with pytest.raises(RequestError) as caught:
        resolve_model(str(tmp_path), model_dirs=[tmp_path])
    assert caught.value.code is ErrorCode.unknown_model
