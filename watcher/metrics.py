"""Prometheus metrics: served on `metrics.port` and/or written as a node-exporter textfile."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
    write_to_textfile,
)

from . import __version__
from .config import MetricsConfig

_GENERATION_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16)


class Metrics:
    """The daemon's counters; cheap to update whether or not anything exports them."""

    def __init__(self, config: MetricsConfig) -> None:
        self.config = config
        self._loads = 0
        self._resident: str | None = None
        self._server: tuple[WSGIServer, threading.Thread] | None = None
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.info = Info("musicgen_watcher", "Version, daemon id, device and resident model", registry=r)
        self.requests = Counter("musicgen_watcher_requests", "Requests finished, by outcome and error code",
                                ["outcome", "error_code"], registry=r)
        self.waiting = Gauge("musicgen_watcher_requests_waiting", "Request files waiting in the inbox", registry=r)
        self.running = Gauge("musicgen_watcher_requests_running",
                             "Requests claimed into processing/ by every daemon on these folders", registry=r)
        self.generation_seconds = Histogram("musicgen_watcher_generation_seconds",
                                            "Seconds per generate call (one batch)", buckets=_GENERATION_BUCKETS,
                                            registry=r)
        self.audio_seconds = Counter("musicgen_watcher_audio_seconds", "Seconds of audio published", registry=r)
        self.model_loads = Counter("musicgen_watcher_model_loads", "Model loads, by model", ["model"], registry=r)
        self.model_resident = Gauge("musicgen_watcher_model_resident", "1 for the model held in memory",
                                    ["model"], registry=r)
        self.notifications = Counter("musicgen_watcher_notifications", "Notification tries, by outcome "
                                     "(sent, retry, gave_up)", ["outcome"], registry=r)
        self.batch_size = Histogram("musicgen_watcher_batch_size", "Requests per generate call",
                                    buckets=_BATCH_BUCKETS, registry=r)

    @property
    def exported(self) -> bool:
        """Whether anything reads these: a port or a textfile is configured."""
        return bool(self.config.port) or self.config.textfile is not None

    def start(self) -> None:
        """Serve /metrics when `metrics.port` is set."""
        if self.config.port:
            self._server = start_http_server(self.config.port, addr=self.config.address, registry=self.registry)

    def stop(self) -> None:
        if self._server is not None:
            server, thread = self._server
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            self._server = None

    def describe(self, *, daemon: str, device: str | None, model: str | None) -> None:
        """The `musicgen_watcher_info` labels."""
        self.info.info({"version": __version__, "daemon": daemon, "device": device or "starting",
                        "model": model or "none"})

    def observe_engine(self, resident: str | None, loads: int) -> None:
        """Catch up with the engine: loads since last time, and which model is resident now."""
        if loads > self._loads:
            self.model_loads.labels(resident or "none").inc(loads - self._loads)
            self._loads = loads
        if resident != self._resident:
            if self._resident is not None:
                self.model_resident.labels(self._resident).set(0)
            if resident is not None:
                self.model_resident.labels(resident).set(1)
            self._resident = resident

    def export(self, waiting: int, running: int) -> None:
        """Refresh the queue gauges and, when configured, the textfile (written atomically)."""
        self.waiting.set(waiting)
        self.running.set(running)
        if self.config.textfile is not None:
            write_to_textfile(str(self.config.textfile), self.registry)
