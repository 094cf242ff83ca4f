"""One request check for every entry point: `validate`, the one-shot CLI and the daemon agree.

The whole bad-input corpus, plus a symlinked and a missing attachment, goes through all three; each
gives the same code, field and message for each file, and that code is the one the file is named for.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import DataRoot, RunOnce, cli, config_file, write_wav
from watcher.errors import RequestError
from watcher.oneshot import generate

CORPUS = Path(__file__).parent / "corpus"
#: the one-shot CLI runs any model folder its user names (engine.model_dirs is a daemon setting)
ONE_SHOT_ALLOWS = {"model_not_allowed--local-folder"}
Verdict = tuple[str, str | None, str]


def validate_verdicts(data: DataRoot, names: list[str]) -> dict[str, Verdict]:
    paths = [str(data.inbox / f"{name}.json") for name in names]
    result = cli("validate", "--config", str(config_file(data)), *paths)
    assert result.returncode == 1, result.stderr
    verdicts = {}
    for line in result.stdout.splitlines():
        match = re.fullmatch(r"invalid: (.+)\.json: ([a-z_]+)(?: \((\w+)\))?: (.*)", line)
        assert match, line
        verdicts[Path(match[1]).name] = (match[2], match[3], match[4])
    return verdicts


def one_shot_verdict(path: Path, tmp_path: Path) -> Verdict:
    with pytest.raises(RequestError) as caught:
        generate({}, tmp_path / "out.wav", device="cpu", request_file=path)
    error = caught.value
    return error.code.value, error.field, error.message


def test_validate_one_shot_and_daemon_agree(data: DataRoot, run_once: RunOnce, tmp_path: Path) -> None:
    cases = sorted(p.stem for p in CORPUS.glob("*.json"))
    assert len(cases) >= 60
    for path in CORPUS.iterdir():
        shutil.copy(path, data.inbox / path.name)
    write_wav(data.inbox / "hum.wav", 1.0)
    (data.inbox / "link.wav").symlink_to("/etc/passwd")
    keep = write_wav(data.root / "keep.wav", 0.5)  # what melody-up-one names: outside the inbox
    for i, name in enumerate(cases):
        os.utime(data.inbox / f"{name}.json", (1_000_000 + i, 1_000_000 + i))
    for i in range(5):  # good requests interleaved by mtime: bad input never stops the daemon
        good = data.drop(f"good{i}.json", {"prompt": f"good {i}", "duration": 0.2})
        os.utime(good, (1_000_000 + i * 12, 1_000_000 + i * 12))

    validated = validate_verdicts(data, cases)
    one_shot = {name: one_shot_verdict(data.inbox / f"{name}.json", tmp_path) for name in cases}
    run_once(watch={"attachment_wait": 1})

    for name in cases:
        assert data.where(name) == "failed", name
        error = data.error(name)["error"]
        daemon: Verdict = (error["code"], error.get("field"), error["message"])
        assert daemon[0] == name.split("--")[0], (name, daemon)
        assert validated[name] == daemon, name
        if name not in ONE_SHOT_ALLOWS:
            assert one_shot[name] == daemon, name
    assert one_shot["model_not_allowed--local-folder"][0] == "unknown_model"  # /tmp is no model folder
    assert keep.exists() and not (data.failed / "keep.wav").exists()  # a name that is not plain moves nothing
    for i in range(5):
        assert data.where(f"good{i}") == "done"
    assert [p for p in data.inbox.iterdir() if p.suffix == ".json"] == []


def test_no_message_has_an_unfilled_template(data: DataRoot, run_once: RunOnce) -> None:
    """Every error message in the corpus reads as a sentence: no `{name!r}` left from a template."""
    for path in CORPUS.glob("*.json"):
        shutil.copy(path, data.inbox / path.name)
    result = cli("validate", "--config", str(config_file(data)), *map(str, sorted(data.inbox.glob("*.json"))))
    messages = [line.split(": ", 3)[-1] for line in result.stdout.splitlines() if line.startswith("invalid:")]
    assert len(messages) >= 60
    for message in messages:
        assert not re.search(r"\{\w*(![rsa])?\}", message), message
        assert message.endswith("."), message
