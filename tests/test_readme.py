"""The README is the manual: its commands are the ones CI and the code really use."""

from __future__ import annotations

import json
import re
from pathlib import Path

from watcher.errors import ErrorCode
from watcher.requests import validate_request

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command() -> None:
    [command] = [line for line in README.splitlines() if line.startswith("python3 -m pip install uv") and "pytest"
                 in line]
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_every_error_code_is_in_the_table() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", README, flags=re.M))
    assert {code.value for code in ErrorCode} <= documented


def test_request_examples_are_valid() -> None:
    blocks = re.findall(r"```json\n(\{.*?\})\n```", README, flags=re.S)
    examples = [json.loads(b) for b in blocks if '"status"' not in b]
    assert len(examples) == 6
    for example in examples:
        validate_request(example)


def test_committed_schema_is_current() -> None:
    from watcher.requests import request_schema

    committed = json.loads((ROOT / "docs" / "request.schema.json").read_text())
    assert committed == request_schema(), "run: musicgen-watcher schema > docs/request.schema.json"
    assert "docs/request.schema.json" in README
