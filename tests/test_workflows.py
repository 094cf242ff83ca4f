"""Workflows on the folders: retention, requests as plain text, presets in subfolders, batches and takes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import soundfile as sf

from tests.conftest import DataRoot, RunOnce, cli, config_file, write_wav
from watcher.config import RetentionConfig
from watcher.folders import Layout
from watcher.housekeeping import sweep

DAY = 86400.0


def aged(path: Path, days: float, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    stamp = time.time() - days * DAY
    os.utime(path, (stamp, stamp))
    return path


def test_retention_sweeps_what_is_old_and_nothing_else(data: DataRoot, run_once: RunOnce) -> None:
    old = [aged(data.done / "old.json", 3), aged(data.done / "trailers" / "old.json", 3),
           aged(data.failed / "old.json", 8), aged(data.failed / "old.error.json", 8),
           aged(data.outbox / "old.wav", 3), aged(data.outbox / "old.json", 3)]
    kept = [aged(data.done / "recent.json", 0.5), aged(data.failed / "recent.json", 6),
            aged(data.inbox / "ancient.wav", 100), aged(data.outbox / "recent.wav", 1.5)]
    data.drop("fresh.json", {"prompt": "x", "duration": 0.2})
    result = run_once(retention={"done_days": 2, "failed_days": 7, "outbox_days": 2})
    assert [p for p in old if p.exists()] == []
    assert all(p.exists() for p in kept)
    assert data.where("fresh") == "done" and (data.outbox / "fresh.wav").exists()  # done now: not old
    logged = {json.loads(line)["path"] for line in result.stderr.splitlines() if '"retention_deleted"' in line}
    assert logged == {str(p) for p in old}


def test_retention_spares_an_output_still_being_published(data: DataRoot) -> None:
    layout = Layout(data.inbox, data.processing, data.outbox, data.done, data.failed, "test")
    publishing = aged(data.outbox / "late.wav", 30)
    aged(data.processing / "test" / ".late.json.journal", 30,
         json.dumps({"audio": "late.wav", "sidecar": "late.json", "content": {}}).encode())
    other = aged(data.outbox / "other.wav", 30)
    deleted = sweep(layout, RetentionConfig(outbox_days=1), time.time())
    assert [path for path, _ in deleted] == [other]
    assert publishing.exists() and (data.processing / "test" / ".late.json.journal").exists()


def test_subfolders_presets_and_text_requests(data: DataRoot, run_once: RunOnce, tmp_path: Path) -> None:
    inbox = data.inbox
    (inbox / "defaults.json").write_text(json.dumps({"duration": 0.5}))
    trailers = inbox / "trailers"
    trailers.mkdir()
    (trailers / "defaults.json").write_text(json.dumps({"model": "facebook/musicgen-stereo-small", "format": "flac",
                                                        "duration": 1}))
    (trailers / "intro.txt").write_text("epic intro with taiko drums\n")
    (trailers / "outro.json").write_text(json.dumps({"prompt": "outro", "duration": 0.4}))  # its own field wins
    write_wav(trailers / "hum.wav", 1.0)
    (trailers / "sung.json").write_text(json.dumps({"prompt": "x", "model": "facebook/musicgen-melody",
                                                    "melody": "hum.wav", "format": "wav"}))
    (inbox / "plain.txt").write_text("lofi beat")
    (inbox / "broken").mkdir()
    (inbox / "broken" / "defaults.json").write_text(json.dumps({"durration": 3}))
    (inbox / "broken" / "victim.txt").write_text("x")
    deep = inbox / "a" / "b" / "c" / "d" / "e"
    deep.mkdir(parents=True)
    (deep / "too-deep.json").write_text(json.dumps({"prompt": "x"}))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sneaky.json").write_text(json.dumps({"prompt": "x"}))
    (inbox / "link").symlink_to(outside)
    run_once(watch={"max_depth": 4})

    intro = json.loads((data.outbox / "trailers" / "intro.json").read_text())
    assert intro["request_id"] == "trailers/intro" and intro["request"] == {"prompt": "epic intro with taiko drums"}
    assert intro["presets"] == ["defaults.json", "trailers/defaults.json"]
    assert (intro["format"], intro["channels"], intro["duration_seconds"]) == ("flac", 2, 1.0)
    assert json.loads((data.outbox / "trailers" / "outro.json").read_text())["duration_seconds"] == 0.4
    sung = json.loads((data.outbox / "trailers" / "sung.json").read_text())
    assert sung["model"] == "facebook/musicgen-melody" and sung["attachments"][0]["name"] == "hum.wav"
    assert sorted(p.name for p in (data.done / "trailers").iterdir()) == ["hum.wav", "intro.txt", "outro.json",
                                                                          "sung.json"]
    assert json.loads((data.outbox / "plain.json").read_text())["duration_seconds"] == 0.5
    error = json.loads((data.failed / "broken" / "victim.error.json").read_text())
    assert error["error"]["code"] == "invalid_preset" and "broken/defaults.json" in error["error"]["message"]
    assert (data.failed / "broken" / "victim.txt").exists()
    assert (deep / "too-deep.json").exists() and (outside / "sneaky.json").exists()  # never taken
    assert (trailers / "defaults.json").exists() and (inbox / "broken" / "defaults.json").exists()


def test_validate_and_schema_cover_presets(data: DataRoot) -> None:
    folder = data.inbox / "jingles"
    folder.mkdir()
    (folder / "defaults.json").write_text(json.dumps({"duration": 5, "format": "mp3", "bitrate": 192}))
    (folder / "ok.txt").write_text("a short jingle")
    bad = data.inbox / "bad"
    bad.mkdir()
    (bad / "defaults.json").write_text(json.dumps({"format": "aiff"}))
    config = config_file(data)
    result = cli("validate", "--config", str(config), str(folder / "defaults.json"), str(folder / "ok.txt"),
                 str(bad / "defaults.json"))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"ok: {folder / 'defaults.json'}", f"ok: {folder / 'ok.txt'}"]
    assert lines[2].startswith(f"invalid: {bad / 'defaults.json'}: invalid_preset (format): The preset "
                               "bad/defaults.json is broken:")
    schema = json.loads(cli("schema", "--preset").stdout)
    assert schema["title"] == "musicgen-watcher preset (defaults.json)" and "duration" in schema["properties"]


def test_takes_are_versions_from_one_batch(data: DataRoot, run_once: RunOnce) -> None:
    data.drop("three.json", {"prompt": "a theme", "duration": 0.5, "takes": 3, "output": "theme"})
    data.drop("one.json", {"prompt": "a theme", "duration": 0.5})
    run_once(engine={"max_batch": 4})
    sidecars = [data.sidecar(f"theme-{n}") for n in (1, 2, 3)]
    assert [(s["take"], s["takes"], s["batch_size"], s["audio"]) for s in sidecars] == [
        (n, 3, 3, f"theme-{n}.wav") for n in (1, 2, 3)]
    assert len({s["seed"] for s in sidecars}) == 1  # one generate call, one seed: each take drew its own samples
    first, second = (sf.read(str(data.outbox / f"theme-{n}.wav"))[0] for n in (1, 2))
    assert len(first) == len(second) == 16000 and not (first == second).all()
    assert data.where("three") == "done" and data.sidecar("one")["batch_size"] == 1  # a multi-take request runs alone


def test_a_jsonl_batch_ends_when_its_lines_have(data: DataRoot, run_once: RunOnce) -> None:
    lines = [json.dumps({"prompt": "one", "duration": 0.2}), "",
             json.dumps({"prompt": "two", "duration": 0.2, "output": "second", "metadata": {"row": 3}}), "{broken"]
    (data.inbox / "set.jsonl").write_text("\n".join(lines) + "\n")
    (data.inbox / "bad.jsonl").write_text("{nope\n[1]\n")
    run_once()
    assert (data.done / "set.jsonl").exists() and (data.done / "set-1.json").exists()
    assert data.sidecar("set-1")["request"] == {"prompt": "one", "duration": 0.2}
    assert data.sidecar("second")["metadata"] == {"row": 3} and (data.done / "second.json").exists()
    assert data.error("set-4")["error"]["code"] == "invalid_json"
    summary = json.loads((data.outbox / "set.batch.json").read_text())
    assert (summary["status"], summary["done"], summary["failed"]) == ("done", 2, 1)
    assert [(line["line"], line["request_id"], line["status"]) for line in summary["lines"]] == [
        (1, "set-1", "done"), (3, "second", "done"), (4, "set-4", "failed")]
    assert (data.failed / "bad.jsonl").exists()
    error = json.loads((data.failed / "bad.error.json").read_text())
    assert error["error"]["code"] == "batch_failed" and error["failed"] == 2
    assert [p.name for p in data.inbox.iterdir()] == []
    assert sorted(p.name for p in (data.processing / "test").iterdir()) == [".heartbeat", ".lock"]


def test_more_takes_than_a_batch_holds_run_in_slices(data: DataRoot, run_once: RunOnce) -> None:
    data.drop("many.json", {"prompt": "x", "duration": 0.2, "takes": 3, "seed": 40})
    run_once(engine={"max_batch": 2})
    sidecars = [data.sidecar(f"many-{n}") for n in (1, 2, 3)]
    assert [(s["seed"], s["batch_size"]) for s in sidecars] == [(40, 2), (40, 2), (41, 1)]  # slices, seeded on


def test_batch_lines_get_names_that_are_requests(data: DataRoot, run_once: RunOnce, tmp_path: Path) -> None:
    (data.inbox / "names.jsonl").write_text("\n".join(json.dumps(fields) for fields in (
        {"prompt": "a", "duration": 0.2, "output": "defaults"},  # would be a preset for the whole folder
        {"prompt": "b", "duration": 0.2, "output": "x.error"},  # would look like an error file
        {"prompt": "c", "duration": 0.2, "output": "../up"}))  # not a plain name
        + "\n")
    outside = tmp_path / "secret.txt"
    outside.write_text("a secret, never a prompt")
    (data.inbox / "linked.txt").symlink_to(outside)
    run_once()
    summary = json.loads((data.outbox / "names.batch.json").read_text())
    assert [line["request_id"] for line in summary["lines"]] == ["names-1", "names-2", "names-3"]
    assert summary["failed"] == 1  # the third fails on its output name, on its own
    assert not (data.inbox / "defaults.json").exists()
    assert (data.inbox / "linked.txt").is_symlink()  # a request that is a link is never taken


def test_validate_checks_a_batch_line_by_line(data: DataRoot) -> None:
    batch = data.inbox / "set.jsonl"
    batch.write_text(json.dumps({"prompt": "fine"}) + "\n\n" + json.dumps({"prompt": "x", "durration": 1}) + "\n")
    result = cli("validate", "--config", str(config_file(data)), str(batch))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"invalid: {batch}: line 3: invalid_request (durration): Unknown field "
                                          "'durration'; see `musicgen-watcher schema` for the valid ones."]
