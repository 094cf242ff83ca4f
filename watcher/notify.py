"""Telling the world a request ended: signed webhooks and Apprise, sent beside the queue, never lost.

Every ending (done or failed) becomes one delivery per target, a JSON file in
`processing/<id>/.notify/`, written before the request leaves processing/ and named for the request's
ending, so writing it again after a crash replaces it instead of doubling it. A thread of its own
sends each once its request has left processing/, retries with a doubling pause, and drops it
(logged) after `notify.retries` more tries. A restart finds what was still pending and sends it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import structlog

from . import __version__, files
from .config import NotifyConfig
from .metrics import Metrics

log = structlog.get_logger("watcher.notify")

SIGNATURE_HEADER = "X-Musicgen-Signature"


def signature(secret: str, body: bytes) -> str:
    """The signature header's value for `body`: `sha256=` and the hex HMAC-SHA256, as GitHub's webhooks do."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Notifier:
    """Keeps the deliveries in a folder and sends them on a thread."""

    def __init__(self, config: NotifyConfig, folder: Path, metrics: Metrics) -> None:
        self.config = config
        self.folder = folder
        self.metrics = metrics
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)

    @property
    def enabled(self) -> bool:
        return bool(self.config.urls or self.config.apprise)

    def enqueue(self, outcome: str, base: str, body: dict[str, Any], claimed: Path) -> None:
        """Keep one delivery per target for an ending; they are sent once `claimed` has left processing/."""
        if not self.enabled:
            return
        self.folder.mkdir(exist_ok=True)
        targets = [("webhook", url) for url in self.config.urls] + [("apprise", url) for url in self.config.apprise]
        for n, (kind, target) in enumerate(targets):
            delivery = {"kind": kind, "target": target, "outcome": outcome, "body": body, "claimed": str(claimed),
                        "tries": 0, "next_at": 0.0}
            mark = hashlib.sha1(base.encode(), usedforsecurity=False).hexdigest()[:8]  # a/b and a--b differ
            name = f"{outcome}-{base.replace('/', '--')}-{mark}-{n}.json"
            files.replace_atomic(self.folder / name, json.dumps(delivery).encode())
        self._wake.set()

    def start(self) -> None:
        if self.enabled or any(self.folder.glob("*.json")):
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.config.timeout + 5)

    def _run(self) -> None:
        while not self._stopped.is_set():
            wait = self._send_due()
            self._wake.wait(timeout=wait)
            self._wake.clear()

    def _send_due(self) -> float:
        """Send every delivery that is due; the seconds until the next one is."""
        soonest = 60.0
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            if self._stopped.is_set():
                break
            try:
                delivery = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue
            if Path(delivery["claimed"]).exists():  # its request is still on its way out of processing/
                soonest = min(soonest, 0.2)
                continue
            wait = delivery["next_at"] - time.time()
            if wait > 0:
                soonest = min(soonest, wait)
                continue
            self._attempt(path, delivery)
            soonest = min(soonest, max(0.0, delivery["next_at"] - time.time()) if path.exists() else soonest)
        return soonest

    def _attempt(self, path: Path, delivery: dict[str, Any]) -> None:
        body = delivery["body"]
        fields = {"request_id": body.get("request_id"), "outcome": delivery["outcome"], "kind": delivery["kind"],
                  "target": _shown(delivery["target"])}
        try:
            self._send(delivery)
        except Exception as exc:
            delivery["tries"] += 1
            if delivery["tries"] > self.config.retries:
                files.remove(path)
                self.metrics.notifications.labels("gave_up").inc()
                log.error("notify_gave_up", **fields, tries=delivery["tries"], error=str(exc))
                return
            pause = self.config.backoff * 2 ** (delivery["tries"] - 1)
            delivery["next_at"] = time.time() + pause
            files.replace_atomic(path, json.dumps(delivery).encode())
            self.metrics.notifications.labels("retry").inc()
            log.warning("notify_failed", **fields, tries=delivery["tries"], retry_in=pause, error=str(exc))
            return
        files.remove(path)
        self.metrics.notifications.labels("sent").inc()
        log.info("notified", **fields, tries=delivery["tries"] + 1)

    def _send(self, delivery: dict[str, Any]) -> None:
        body = delivery["body"]
        if delivery["kind"] == "apprise":
            _apprise(delivery["target"], delivery["outcome"], body)
            return
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"musicgen-watcher/{__version__}",
                   "X-Musicgen-Event": delivery["outcome"]}
        if self.config.secret:
            headers[SIGNATURE_HEADER] = signature(self.config.secret, data)
        request = urllib.request.Request(delivery["target"], data=data, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
            if not 200 <= response.status < 300:
                raise urllib.error.HTTPError(delivery["target"], response.status, "not 2xx", response.headers, None)


def _apprise(url: str, outcome: str, body: dict[str, Any]) -> None:
    """One Apprise notification: a short title, and the output's file or the error as the message."""
    import apprise  # its many service modules load only when someone asks for Apprise

    request_id = body.get("request_id", "?")
    if outcome == "done":
        title, message = f"musicgen-watcher: {request_id} is done", f"outbox/{body.get('audio')}"
    else:
        error = body.get("error", {})
        title, message = f"musicgen-watcher: {request_id} failed", f"{error.get('code')}: {error.get('message')}"
    sender = apprise.Apprise()
    if not sender.add(url):
        raise ValueError(f"Apprise does not know the URL {_shown(url)}")
    if not sender.notify(title=title, body=message):
        raise OSError(f"Apprise could not notify {_shown(url)}")


def _shown(url: str) -> str:
    """A URL for the log, without what may be a secret in it (a webhook's path, an Apprise token)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/')[0].rpartition('@')[2]}/..."
