"""Model weights baked into the Docker image, found without the network and without /cache.

The image bakes weights (`--build-arg MODELS=...`) under /opt/musicgen-watcher/models rather than
/cache: users are told to mount /cache, and a mount would hide anything the image put there. The
libraries look for weights through environment variables that they read once, at import, so
:func:`use_baked_models` must run before anything imports huggingface_hub, transformers or torch.

The image sets no HF_HOME or TORCH_HOME of its own (XDG_CACHE_HOME=/cache gives both their /cache
defaults), so any of these variables present here was set by the user, and the user's choice wins.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path

#: where the image bakes weights: huggingface/ (the hub cache) and torch/ (torch hub: htdemucs)
BAKED_ROOT = Path("/opt/musicgen-watcher/models")
#: written by the bake step, one hub id a line; its presence is what "baked" means
MARKER = "baked.txt"

#: any of these means the user chose a hub cache of their own
_HUB_LOCATION = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")
#: any of these means the user chose online or offline themselves
_OFFLINE = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def use_baked_models(environ: MutableMapping[str, str], root: Path = BAKED_ROOT) -> bool:
    """Point the model caches at the baked weights, offline, where the user has not chosen otherwise.

    Offline because the baked weights are complete: without it, each load asks the hub for updates
    first, and demucs retries an unreachable hub for 40 s. Each group of variables (hub location,
    TORCH_HOME, offline) is left alone as a whole when the user set any variable of it, so that a
    half-set pair never points two libraries at different caches.

    Returns whether the image has baked weights (and so whether anything may have been set).
    """
    if not (root / MARKER).is_file():
        return False
    if not any(name in environ for name in _HUB_LOCATION):
        environ["HF_HOME"] = str(root / "huggingface")
        environ["HF_HUB_CACHE"] = str(root / "huggingface" / "hub")
    environ.setdefault("TORCH_HOME", str(root / "torch"))
    if not any(name in environ for name in _OFFLINE):
        for name in _OFFLINE:
            environ[name] = "1"
    return True


def baked_models(root: Path = BAKED_ROOT) -> list[str]:
    """The hub ids the image was built with (`--build-arg MODELS`); empty when none were baked."""
    marker = root / MARKER
    if not marker.is_file():
        return []
    return [line.strip() for line in marker.read_text().splitlines() if line.strip()]
