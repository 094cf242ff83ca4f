"""Helpers for testing with musicgen-watcher: random-weight stand-ins that the real loading code accepts.

As `structlog.testing` does for structlog: shipped with the package, so tests and `selftest` never
need a mock of AudioCraft or torch.
"""
