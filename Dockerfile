# musicgen-watcher: the watch-folder daemon around MusicGen (AudioCraft 1.3.0), for one NVIDIA GPU.
# The manual is docs/docker.md; this file says why each step is the way it is.
#
# Build with BuildKit (`RUN --mount`): the default builder since Docker 23. Docker 20.10's default builder
# fails on this file; use `DOCKER_BUILDKIT=1 docker build` or `docker buildx build` there. amd64 only, as
# xformers ships no arm64 wheel.
#   DOCKER_BUILDKIT=1 docker build -t musicgen-watcher .
#   DOCKER_BUILDKIT=1 docker build -t musicgen-watcher:offline --build-arg MODELS="facebook/musicgen-small" .
#
# Paths inside the container (no VOLUME is declared, see the end of the file: mount them with -v):
#   /data    the data root: inbox/ processing/ outbox/ done/ failed/ beneath (folders.root in the base config)
#   /cache   downloaded weights and caches: huggingface/ and torch/ (through XDG_CACHE_HOME), numba/
#   /config  config.toml, read when it exists (MUSICGEN_WATCHER_CONFIG_OPTIONAL); it overrides the image's
#            defaults in /etc/musicgen-watcher/base.toml (MUSICGEN_WATCHER_BASE_CONFIG), and
#            MUSICGEN_WATCHER_<SECTION>__<KEY> variables override both
#   /opt/musicgen-watcher/models   weights baked at build time (MODELS), outside /cache so a mount can't hide them

# Base: plain Debian slim Python, not nvidia/cuda. torch 2.9.1 from PyPI (pinned in uv.lock) is the CUDA 12.8
# build and brings its own CUDA runtime, cuDNN, cuBLAS and NCCL as nvidia-* wheels; the host's NVIDIA
# container toolkit (`--gpus all`) mounts the driver (libcuda) into the container. A CUDA base image would only
# add a second, unused copy of the runtime. soundfile's wheel bundles libsndfile and av's bundles FFmpeg's
# libraries; the project never runs the ffmpeg binary. The one apt package is tini.
# Python 3.11: the version the lock is tested with (requires-python is >=3.11,<3.14).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: the locked dependencies in /opt/venv, and nothing of the project ---------------------------------
FROM ${PYTHON_IMAGE} AS builder
SHELL ["/bin/bash", "-eu", "-o", "pipefail", "-c"]

# The same uv as CI (.ci/run), installed the same way; it never reaches the final image (that stage only
# mounts it, to install the project).
RUN python3 -m pip install --no-cache-dir uv==0.13.9 && test -x /usr/local/bin/uv

ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

WORKDIR /src

# From the committed lock and nothing else (--locked fails if pyproject.toml and uv.lock disagree). No README.md,
# no code: this venv (torch and the CUDA wheels, about 8.6 GB) is rebuilt only when the lock changes, and the
# final image's copy of it stays the same layer, byte for byte, across changes to the code or the README (on a
# builder that kept its cache; docs/docker.md shows the layer ids of two such builds).
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project --no-editable

# ---- project: the package as a wheel ------------------------------------------------------------------------------
FROM builder AS project
COPY README.md ./
COPY watcher ./watcher
RUN --mount=type=cache,target=/root/.cache/uv \
    uv build --wheel --out-dir /dist

# ---- run stage ----------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
SHELL ["/bin/bash", "-eu", "-o", "pipefail", "-c"]

LABEL org.opencontainers.image.title="musicgen-watcher" \
      org.opencontainers.image.description="Watch-folder daemon that turns JSON request files into music with MusicGen" \
      org.opencontainers.image.licenses="MIT"

# XDG_CACHE_HOME=/cache puts the hub cache in /cache/huggingface and torch hub in /cache/torch, their defaults
# under it. HF_HOME and TORCH_HOME stay unset on purpose: then any value of them was set by the user, and
# watcher.baked leaves it alone when it points the libraries at baked weights. NUMBA_CACHE_DIR: librosa
# (imported by AudioCraft) compiles functions with numba's cache=True, which fails at import unless some cache
# folder is writable; the venv is root-owned and a `--user` uid has no home, so point numba at /cache.
# Settings of the program go in the base config file, never here: a variable would beat the user's config file.
# TINI_SUBREAPER: under `docker run --init` (or compose's init: true) tini is not PID 1; registered as a
# subreaper it still reaps, and it does not print a warning that is no JSON log line.
# NVIDIA_*: what the CUDA images set. Under the NVIDIA runtime without --gpus (--runtime=nvidia, or that runtime
# as the default), an image without NVIDIA_VISIBLE_DEVICES gets no GPU at all; these ask for the GPUs and for
# the driver parts CUDA (compute) and nvidia-smi (utility) need. `--gpus all` works as with the CUDA images.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    XDG_CACHE_HOME=/cache \
    NUMBA_CACHE_DIR=/cache/numba \
    MUSICGEN_WATCHER_BASE_CONFIG=/etc/musicgen-watcher/base.toml \
    MUSICGEN_WATCHER_CONFIG_OPTIONAL=/config/config.toml \
    TINI_SUBREAPER=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# tini as PID 1: it forwards SIGTERM and SIGINT to the program and reaps zombies. Without it the program is
# PID 1, which the kernel shields from every signal it has no handler for: the one-shot CLI has none, so
# `docker stop` waited out its whole timeout and then killed it.
# User musicgen (1000:1000) owns /data, /cache and /config. /data and /cache are also mode 1777, like /tmp,
# so that `--user <uid>:<gid>` with any other uid (a NAS user, say) can create its folders and download
# weights there when they are not bind-mounted; the sticky bit keeps one uid from deleting or renaming
# another's entries. A bind mount (-v ./data:/data) replaces these modes with the host folder's: create the
# host folders as the uid the container runs as (docs/docker.md).
# apt-get clean: without the official image's docker-clean hook, apt leaves 80 MB of package caches behind.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 musicgen \
    && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin musicgen \
    && mkdir -p /data /cache /config \
    && chown 1000:1000 /data /cache /config \
    && chmod 1777 /data /cache

# The dependencies alone: the big layer, the same for every build of the same uv.lock.
COPY --from=builder /opt/venv /opt/venv

# Optional: bake model weights into the image for sites without internet access. MODELS is a space-separated
# list of hub ids (facebook/musicgen-small, -medium, -large, -melody, -stereo-*, ...). Loading each model once
# downloads everything it needs: the LM and EnCodec weights, the T5 text encoder and tokenizer, and for melody
# models the htdemucs checkpoint (torch hub). They land in /opt/musicgen-watcher/models, not /cache, which users
# mount; baked.txt lists them, and its presence makes the program use them, offline (watcher/baked.py).
# Loading runs on the build machine's CPU in float32, so musicgen-large needs about 16 GB of RAM while building.
# Before the project's layer, so that a code change does not download and store the weights again.
# Download caches go to /tmp/bake and are deleted in the same step: hf_xet's chunk cache (HF_HOME/xet by default)
# would otherwise store every file a second time in the layer. a+rX: torch hub writes its checkpoints 0600, and
# any runtime uid must read them.
ARG MODELS=""
RUN for model in ${MODELS}; do \
        echo "baking ${model}"; \
        mkdir -p /opt/musicgen-watcher/models; \
        HF_HOME=/opt/musicgen-watcher/models/huggingface TORCH_HOME=/opt/musicgen-watcher/models/torch \
            HF_XET_CACHE=/tmp/bake/xet XDG_CACHE_HOME=/tmp/bake NUMBA_CACHE_DIR=/tmp/bake/numba \
            python -c 'import sys; from audiocraft.models import MusicGen; MusicGen.get_pretrained(sys.argv[1], device="cpu")' "${model}"; \
        echo "${model}" >>/opt/musicgen-watcher/models/baked.txt; \
    done \
    && rm -rf /tmp/bake \
    && if [ -d /opt/musicgen-watcher/models ]; then chmod -R a+rX /opt/musicgen-watcher/models; fi

# The image's defaults for the program's settings, beneath the user's /config/config.toml.
COPY docker/base.toml /etc/musicgen-watcher/base.toml

# The project last, in a layer of its own (755 kB): the wheel from the project stage, installed with
# the builder's uv, which is only mounted. --no-deps: the dependencies above are exactly the lock's. Its bytecode
# is compiled here because no runtime uid can write to the root-owned venv.
RUN --mount=type=bind,from=project,source=/dist,target=/dist \
    --mount=type=bind,from=builder,source=/usr/local/bin/uv,target=/usr/local/bin/uv \
    uv pip install --python /opt/venv/bin/python --no-deps --no-cache --link-mode=copy /dist/*.whl \
    && python -m compileall -q /opt/venv/lib/python3*/site-packages/watcher

# No VOLUME for /data or /cache: a VOLUME would give every `docker run` without -v its own anonymous copy of
# /cache, left behind unless run with --rm, and it would make later build steps in derived images
# (FROM musicgen-watcher) silently lose their writes there. Mount /data, /cache and /config with -v instead.
WORKDIR /data

# Non-root by default; numeric so that Kubernetes' runAsNonRoot can check it. Overrides:
#   --user "$(id -u):$(id -g)"  run as that uid:gid directly (the folders above are writable for it).
#   --user 0:0 -e PUID=1026 -e PGID=100
#                              NAS style: PUID/PGID apply only when the container starts as root; the program
#                              then drops to PUID:PGID itself before touching files (otherwise: puid_ignored).
#   -e UMASK=002               applies either way: the umask of every file and folder the program creates.
USER 1000:1000

# The daemon heartbeats every few seconds; `health` fails when the heartbeat is stale or a folder is not
# writable. start-period covers loading the model at start (about a minute; a first-time download of a large
# model can take longer, during which the container may show as unhealthy before it settles).
# The web console's port, when it is on (web.enabled; bind it to 0.0.0.0 with a web.token to reach it from outside).
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=10s --start-period=2m --retries=3 \
    CMD ["musicgen-watcher", "health"]

# SIGTERM lets the daemon finish or re-queue the running request within daemon.shutdown_grace (20 s by default),
# so stop with a longer timeout: `docker stop -t 30` (compose: stop_grace_period: 30s).
STOPSIGNAL SIGTERM

# Exec form, no shell: tini is PID 1 and passes signals on to musicgen-watcher. `run` reads
# /config/config.toml when it exists and uses the image's defaults otherwise; arguments starting with `--`
# mean the one-shot `generate` (`docker run IMAGE --prompt ... --output /out/x.wav`).
ENTRYPOINT ["/usr/bin/tini", "--", "musicgen-watcher"]
CMD ["run"]
