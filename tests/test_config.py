"""Configuration: the example file documents every key with its true default; errors name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.conftest import cli
from watcher.config import Settings, load_settings
from watcher.errors import FatalError

EXAMPLE = Path(__file__).parent.parent / "config.example.toml"


def test_example_documents_every_key_with_its_default() -> None:
    text = EXAMPLE.read_text()
    example = tomllib.loads(text)
    defaults = Settings().model_dump(mode="json")
    for section, values in defaults.items():
        for key, default in values.items():
            assert f"{key} =" in text, f"{section}.{key} is not documented"
            if key in example.get(section, {}):
                assert example[section][key] == default, f"{section}.{key}"
    assert load_settings(EXAMPLE).engine.max_batch == 4


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[watch]\nmode = "inotify"\n[engine]\nmax_batch = 2\n')
    monkeypatch.setenv("MUSICGEN_WATCHER_WATCH__MODE", "polling")
    settings = load_settings(config)
    assert (settings.watch.mode.value, settings.engine.max_batch) == ("polling", 2)


@pytest.mark.parametrize(("body", "key"), [
    ("[engine]\nmax_batch = 0\n", "engine.max_batch"),
    ("[watch]\nmode = \"sometimes\"\n", "watch.mode"),
    ("[engine]\nmax_batchh = 3\n", "engine.max_batchh"),
])
def test_invalid_config_names_the_key(tmp_path: Path, body: str, key: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(body)
    with pytest.raises(FatalError) as caught:
        load_settings(config)
    assert key in str(caught.value) and caught.value.exit_code == 2


def test_invalid_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[engine]\nmax_batch = -1\n")
    result = cli("run", "--config", str(config))
    assert result.returncode == 2 and "engine.max_batch" in result.stderr
    unwritable = tmp_path / "file"
    unwritable.write_text("")
    config.write_text(f'[folders]\nroot = "{unwritable}"\n')
    result = cli("run", "--config", str(config))
    assert result.returncode == 1 and "cannot be created" in result.stderr


def test_every_config_error_is_reported_at_once(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[engine]\nmax_batch = 0\ndevice = 3\n[watch]\nmode = "sometimes"\n[daemon]\nidd = "x"\n')
    with pytest.raises(FatalError) as caught:
        load_settings(config)
    message = str(caught.value)
    for key in ("engine.max_batch", "engine.device", "watch.mode", "unknown key daemon.idd"):
        assert key in message, message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(("folders", "problem"), [
    ({"outbox": "{root}/inbox"}, "folders.inbox and folders.outbox are the same folder"),
    ({"done": "{root}/inbox/done"}, "folders.done ({root}/inbox/done) is inside folders.inbox"),
    ({"root": "{root}", "failed": "{root}/outbox/failed"}, "folders.failed ({root}/outbox/failed) is inside"),
])
def test_overlapping_folders_are_refused(tmp_path: Path, folders: dict[str, str], problem: str) -> None:
    root = tmp_path / "data"
    config = tmp_path / "c.toml"
    config.write_text("[folders]\n" + f'root = "{root}"\n' + "".join(
        f'{key} = "{value.format(root=root)}"\n' for key, value in folders.items() if key != "root"))
    with pytest.raises(FatalError) as caught:
        load_settings(config)
    assert problem.format(root=root) in str(caught.value) and caught.value.exit_code == 2


def test_a_console_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[web]\nenabled = true\nhost = "0.0.0.0"\n')
    with pytest.raises(FatalError) as caught:
        load_settings(config)
    assert "web.host 0.0.0.0 reaches beyond this machine: set web.token" in str(caught.value)
    assert caught.value.exit_code == 2
    config.write_text('[web]\nenabled = true\nhost = "127.0.0.1"\n')
    assert load_settings(config).web.loopback
