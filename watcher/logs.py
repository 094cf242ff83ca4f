"""Logging: structlog events, readable lines on a terminal and JSON lines everywhere else.

Everything goes through it: our events, the standard library `logging` that transformers,
huggingface_hub and AudioCraft use, warnings, and exceptions (as structured tracebacks). Progress
bars of those libraries are turned off when stderr is not a terminal, so every line is JSON.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

#: set before huggingface_hub is imported; transformers follows it too ("Loading weights" bars)
_PROGRESS_BARS_ENV = "HF_HUB_DISABLE_PROGRESS_BARS"


def configure(level: str = "info") -> None:
    """Log to stderr at `level` (debug, info, warning, error, critical). Called once, by the CLI."""
    tty = sys.stderr.isatty()
    if not tty:
        os.environ.setdefault(_PROGRESS_BARS_ENV, "1")
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    rendering: list[structlog.typing.Processor] = (
        [structlog.dev.ConsoleRenderer()] if tty
        else [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()])
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*shared, *rendering],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering]))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(max(numeric, logging.WARNING))  # libraries' info lines are noise; their warnings are not
    logging.captureWarnings(True)


def adopt_library_loggers() -> None:
    """Send transformers' and huggingface_hub's records through the root logger, not handlers of their own.

    Both install a plain-text handler on import; left there, a hub warning would print twice, once not as JSON.
    """
    if not logging.getLogger().handlers:
        return  # logging was not configured (a library use of the engine): leave the libraries alone
    transformers_logging = sys.modules.get("transformers.utils.logging")
    if transformers_logging is not None:
        transformers_logging.disable_default_handler()
        transformers_logging.enable_propagation()
    hub = logging.getLogger("huggingface_hub")
    hub.handlers.clear()
    hub.propagate = True
