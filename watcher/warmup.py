"""The engine, started on a second thread: import torch and AudioCraft, build it, preload the default model.

That takes seconds (about 5 s of imports on a 2-core CPU, then the load). The daemon need not wait:
meanwhile it claims the first batch, fails the invalid requests in it and keeps watching; only
generating waits for the engine (`Warmup.engine`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import structlog

from .config import EngineConfig
from .errors import FatalCode, FatalError, WatcherError
from .faults import FaultPoint, Faults
from .metrics import Metrics
from .models import ResolvedModel

if TYPE_CHECKING:
    from .engine import Engine

log = structlog.get_logger("watcher.warmup")


class Warmup:
    """Starts the engine in the background; hands it over once it is ready."""

    def __init__(self, config: EngineConfig, metrics: Metrics, resolve: Callable[[str], ResolvedModel],
                 faults: Faults, engine: Engine | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self.resolve = resolve
        self.faults = faults
        self._given = engine
        self._future: Future[Engine] | None = None
        #: when the preload finished (time.monotonic), or None
        self.loaded_at: float | None = None

    def start(self) -> None:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-start")
        self._future = pool.submit(self._build)
        pool.shutdown(wait=False)

    def join(self) -> None:
        """Wait for the start to end, well or not (at shutdown: no thread is left behind)."""
        if self._future is not None:
            self._future.exception()

    @property
    def done(self) -> bool:
        """Whether the start has ended, well or not."""
        return self._future is not None and self._future.done()

    @property
    def engine(self) -> Engine:
        """The engine; waits until it has started, and raises FatalError if it could not."""
        assert self._future is not None, "start() first"
        try:
            return self._future.result()
        except FatalError:
            raise
        except Exception as exc:
            raise FatalError(FatalCode.engine_failed,
                             f"The engine could not start: {type(exc).__name__}: {exc}") from exc

    def device(self) -> str | None:
        """The device generation runs on, once the engine has started."""
        return self.engine.device if self.done and self._future and not self._future.exception() else None

    @property
    def resident(self) -> str | None:
        """The loaded model's name; while the engine starts, the one it preloads (if any)."""
        if self.done:
            return self.engine.resident
        if not self.config.preload:
            return None
        try:
            return self.resolve(self.config.default_model).name
        except WatcherError:
            return None

    def _build(self) -> Engine:
        engine = self._given
        if engine is None:
            from .engine import DeviceUnavailable, Engine, no_gpu_reason

            try:
                engine = Engine(self.config.device, threads=self.config.threads)
            except DeviceUnavailable as exc:
                raise FatalError(FatalCode.invalid_config, f"engine.device: {exc}") from None
            if self.config.device == "auto" and engine.device == "cpu":
                log.warning("no_gpu", device="cpu", reason=no_gpu_reason(),
                            consequence="generation runs on the CPU, about 50 times slower")
        log.info("engine_ready", device=engine.device)
        if self.config.preload:
            self._preload(engine)
        return engine

    def _preload(self, engine: Engine) -> None:
        try:
            model = self.resolve(self.config.default_model)
            self.faults.reach(FaultPoint.model_load)
            seconds = engine.load(model)
            self.loaded_at = time.monotonic()
            self.metrics.observe_engine(engine.resident, engine.loads)
            log.info("model_loaded", model=model.name, seconds=round(seconds, 3), device=engine.device)
        except WatcherError as exc:
            log.warning("preload_failed", model=self.config.default_model, error_code=exc.code.value,
                        message=exc.message)
