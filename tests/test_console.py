"""The web console in a real browser (Debian's Chromium, driven by Playwright) and its API over real HTTP.

One daemon serves the module with the console on 127.0.0.1; another listens on 0.0.0.0 with a token.
"""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile as sf
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import SAMPLE_RATE, DataRoot, running_daemon, wait_for, wav_bytes, write_wav

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)")
TOKEN = "a-token-long-enough-for-the-lan"
#: as the Playwright docs and this machine want it: no sandbox as root, no background network
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> DataRoot:
    return DataRoot(tmp_path_factory.mktemp("console") / "data")


@pytest.fixture(scope="module")
def console(standins: Path, root: DataRoot) -> Iterator[str]:
    port = free_port()
    with running_daemon(root, web={"enabled": True, "port": port, "max_upload_bytes": 2_000_000},
                        watch={"attachment_wait": 2}, limits={"attachment_bytes": 1_000_000},
                        engine={"max_batch": 1}):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, console: str) -> Iterator[Page]:
    opened = browser.new_page(viewport={"width": 1280, "height": 900})
    opened.goto(console)
    yield opened
    opened.close()


def submitted_id(page: Page) -> str:
    expect(page.locator("#submitted")).to_contain_text("Submitted as", timeout=30_000)
    return page.locator("#submitted").inner_text().removeprefix("Submitted as ").rstrip(".")


# -- in the browser -------------------------------------------------------------------------------


def test_submit_a_melody_through_the_form_and_play_the_result(page: Page, console: str, root: DataRoot,
                                                              tmp_path: Path) -> None:
    expect(page.locator("[data-testid=daemon]")).to_contain_text("test")
    page.fill("textarea[name=prompt]", "hummed into an orchestra")
    page.select_option("select[name=model]", "facebook/musicgen-melody")
    page.fill("input[name=duration]", "2")
    page.set_input_files("input[name=melody]", str(write_wav(tmp_path / "hum.wav", 1.5)))
    page.click("button[type=submit]")
    request_id = submitted_id(page)
    player = page.locator(f"[data-testid=done][data-id='{request_id}'] audio")
    expect(player).to_be_visible(timeout=120_000)
    audio = page.request.get(console + str(player.get_attribute("src")))
    assert audio.ok and audio.headers["content-type"] == "audio/wav"
    info = sf.info(io.BytesIO(audio.body()))
    assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1) and abs(info.frames - 2 * SAMPLE_RATE) <= 640
    [melody] = root.sidecar(request_id)["attachments"]
    assert melody["field"] == "melody" and melody["seconds"] == 1.5


def test_the_progress_bar_moves(page: Page) -> None:
    page.fill("textarea[name=prompt]", "a slow-building piece")
    page.fill("input[name=duration]", "40")
    page.click("button[type=submit]")
    request_id = submitted_id(page)
    shown: list[int] = []
    deadline = time.monotonic() + 120
    while not page.locator(f"[data-testid=done][data-id='{request_id}']").count() and time.monotonic() < deadline:
        value = page.evaluate("id => document.querySelector(`[data-testid=running][data-id='${id}'] progress`)"
                              "?.value ?? null", request_id)  # read at once: the bar goes when it is done
        if value is not None and (not shown or int(value) != shown[-1]):
            shown.append(int(value))
        time.sleep(0.1)
    moving = [v for v in shown if 0 < v < 100]
    assert len(moving) >= 2 and moving == sorted(moving), shown  # it moved, forward, without a reload


def test_a_failed_request_is_retried_after_the_fix(page: Page, root: DataRoot, tmp_path: Path) -> None:
    root.drop("late.json", {"prompt": "x", "model": "facebook/musicgen-melody", "melody": "late.wav",
                            "duration": 1})
    failed = page.locator("[data-testid=failed][data-id=late]")
    expect(failed.locator("[data-testid=code]")).to_have_text("missing_attachment", timeout=60_000)
    expect(failed.locator("[data-testid=message]")).to_contain_text("late.wav")
    write_wav(root.inbox / "late.wav", 1.0)  # the fix: the melody arrives after all
    failed.locator("[data-testid=retry]").click()
    expect(page.locator("[data-testid=done][data-id=late] audio")).to_be_visible(timeout=120_000)
    assert root.where("late") == "done"
    if os.environ.get("MUSICGEN_WATCHER_SCREENSHOT"):  # docs/images/console.png is taken here
        Path(os.environ["MUSICGEN_WATCHER_SCREENSHOT"]).write_bytes(page.screenshot(full_page=True))


def test_the_token_is_required_beyond_loopback(standins: Path, browser: Browser,
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    root = DataRoot(tmp_path_factory.mktemp("lan") / "data")
    port = free_port()
    with running_daemon(root, web={"enabled": True, "host": "0.0.0.0", "port": port, "token": TOKEN}):
        url = f"http://127.0.0.1:{port}"
        page = browser.new_page()
        page.goto(url)
        assert page.url.endswith("/login")
        page.fill("input[name=token]", "not-the-token-at-all")
        page.click("button[type=submit]")
        expect(page.locator(".error")).to_contain_text("not the one configured")
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        expect(page.locator("[data-testid=daemon]")).to_contain_text("test")
        cookie = next(c for c in page.context.cookies() if c["name"] == "musicgen_watcher_session")
        assert cookie["httpOnly"] and cookie["value"] != TOKEN
        page.close()
        assert call(url, "GET", "/api/status")[0] == 401
        assert call(url, "GET", "/api/status", token="wrong-token-of-some-length")[0] == 401
        assert call(url, "GET", "/api/status", token=TOKEN)[0] == 200


# -- the API over HTTP ------------------------------------------------------------------------------


def call(base: str, method: str, path: str, body: dict[str, Any] | None = None, *, token: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One request with urllib, as a script would send it; (status, parsed JSON body or raw bytes)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={
        **({"Content-Type": "application/json"} if body is not None else {}),
        **({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw


def wait_state(base: str, request_id: str, state: str) -> dict[str, Any]:
    wait_for(lambda: call(base, "GET", f"/api/requests/{request_id}")[1].get("state") == state, timeout=120,
             what=f"{request_id} to be {state}")
    found: dict[str, Any] = call(base, "GET", f"/api/requests/{request_id}")[1]
    return found


def test_submit_list_page_and_delete(console: str, root: DataRoot) -> None:
    status, created = call(console, "POST", "/api/requests", {"prompt": "lofi", "duration": 0.2, "name": "api-a"})
    assert (status, created) == (201, {"id": "api-a"})
    status, refused = call(console, "POST", "/api/requests", {"prompt": "lofi", "durration": 3})
    assert status == 422 and refused["error"]["code"] == "invalid_request" and refused["error"]["field"] == "durration"
    for name in ("api-b", "api-c"):
        assert call(console, "POST", "/api/requests", {"prompt": name, "duration": 0.2, "name": name})[0] == 201
    done = wait_state(console, "api-c", "done")
    assert done["sidecar"]["request"] == {"prompt": "api-c", "duration": 0.2}
    wait_state(console, "api-a", "done")
    first = call(console, "GET", "/api/requests?state=done&limit=2")[1]
    second = call(console, "GET", f"/api/requests?state=done&limit=2&cursor={first['next_cursor']}")[1]
    listed = [i["id"] for i in first["items"] + second["items"]]
    assert len(listed) == len(set(listed)) and {"api-a", "api-b", "api-c"} <= set(listed)
    assert call(console, "DELETE", "/api/requests/api-b")[0] == 204
    assert not (root.outbox / "api-b.wav").exists() and not (root.outbox / "api-b.json").exists()
    assert call(console, "GET", "/api/requests/api-b")[0] == 404
    assert call(console, "DELETE", "/api/requests/nobody")[0] == 404


def test_multipart_uploads_and_their_limits(console: str, root: DataRoot) -> None:
    clip = wav_bytes(1.0)
    form = {"prompt": "continue this", "duration": "2", "name": "api-up"}
    response = httpx.post(f"{console}/api/requests", data=form, files={"continuation": ("clip.wav", clip)})
    assert response.status_code == 201, response.text
    assert wait_state(console, "api-up", "done")["sidecar"]["attachments"][0]["bytes"] == len(clip)
    too_big = wav_bytes(20.0)  # 1.28 MB: over limits.attachment_bytes (1 MB), under web.max_upload_bytes
    response = httpx.post(f"{console}/api/requests", data=form, files={"continuation": ("big.wav", too_big)})
    assert response.status_code == 422 and response.json()["error"]["code"] == "attachment_too_large"
    huge = b"\0" * 2_100_000  # over web.max_upload_bytes (2 MB)
    response = httpx.post(f"{console}/api/requests", data=form, files={"continuation": ("huge.wav", huge)})
    assert response.status_code == 413
    assert not any(p.name.startswith(("big", "huge")) for p in root.inbox.iterdir())  # nothing left behind


def test_audio_is_served_only_for_known_results(console: str, root: DataRoot) -> None:
    assert call(console, "POST", "/api/requests", {"prompt": "x", "duration": 0.2, "name": "api-audio"})[0] == 201
    wait_state(console, "api-audio", "done")
    ranged = httpx.get(f"{console}/api/requests/api-audio/audio", headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.content) == 100 and ranged.content[:4] == b"RIFF"
    (root.outbox / "secret.txt").write_text("not a result")
    for attempt in ("..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "..", ".heartbeat", "secret.txt", "secret",
                    "api-audio.json", "api-audio%2F..%2F..%2Fconfig.toml"):
        response = httpx.get(f"{console}/api/requests/{attempt}/audio")
        assert response.status_code == 404, (attempt, response.status_code)


def test_retry_and_delete_rules_and_the_openapi(console: str, root: DataRoot) -> None:
    root.drop("api-bad.json", "{broken")
    failed = wait_state(console, "api-bad", "failed")
    assert failed["error"]["code"] == "invalid_json"
    assert call(console, "POST", "/api/requests/nobody/retry")[0] == 404
    assert call(console, "DELETE", "/api/requests/api-bad")[0] == 204
    assert not (root.failed / "api-bad.json").exists() and not (root.failed / "api-bad.error.json").exists()
    root.drop("api-wait.json", {"prompt": "x", "melody": "never.wav", "model": "facebook/musicgen-melody"})
    wait_state(console, "api-wait", "waiting")
    assert call(console, "DELETE", "/api/requests/api-wait")[0] == 409  # waiting: not the console's to delete
    spec = call(console, "GET", "/api/openapi.json")[1]
    assert {"/api/status", "/api/requests", "/api/requests/{request_id}", "/api/requests/{request_id}/retry",
            "/api/requests/{request_id}/audio", "/api/events"} <= set(spec["paths"])
    status = call(console, "GET", "/api/status")[1]
    assert "facebook/musicgen-melody" in status["models"] and set(status["counts"]) == {
        "waiting", "running", "done", "failed"}


def test_events_follow_a_request_through_its_life(console: str, root: DataRoot) -> None:
    seen: list[tuple[str, str]] = []

    def listen() -> None:
        with httpx.stream("GET", f"{console}/api/events", timeout=60) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    seen.append((event["event"], event["id"]))
                    if event == {"event": "done", "id": "api-live"}:
                        return

    listener = threading.Thread(target=listen)
    listener.start()
    time.sleep(2.5)  # the feed has looked at the folders once
    root.drop("api-live.json", {"prompt": "x", "continuation": "api-live.wav", "duration": 1.5})
    root.drop("api-dead.json", "{broken")
    time.sleep(1.5)  # the request waits for its clip: the feed sees it wait
    write_wav(root.inbox / "api-live.wav", 1.0)
    listener.join(timeout=90)
    assert not listener.is_alive()
    mine = [name for name, request_id in seen if request_id == "api-live"]
    assert mine[0] == "discovered" and mine[-1] == "done", seen
    assert ("failed", "api-dead") in seen


def test_a_page_that_rebinds_its_name_to_loopback_is_refused(console: str) -> None:
    status, body = call(console, "GET", "/api/status", headers={"Host": "evil.example:8080"})
    assert status == 403 and body["error"]["code"] == "wrong_host"
    assert call(console, "GET", "/api/status", headers={"Host": "localhost"})[0] == 200


def test_a_cross_origin_change_is_refused(console: str, root: DataRoot) -> None:
    status, body = call(console, "POST", "/api/requests", {"prompt": "x"},
                        headers={"Origin": "http://evil.example"})
    assert status == 403 and body["error"]["code"] == "cross_origin"
    host = console.removeprefix("http://")
    assert call(console, "POST", "/api/requests", {"prompt": "x", "duration": 0.1, "name": "api-same"},
                headers={"Origin": f"http://{host}"})[0] == 201
