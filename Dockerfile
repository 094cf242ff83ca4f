# musicgen-watcher: the watch-folder daemon around MusicGen (AudioCraft 1.3.0), for one NVIDIA GPU.
#
# Build (BuildKit, the default builder since Docker 23; amd64 only, as xformers ships no arm64 wheel):
#   docker build -t musicgen-watcher .
#   docker build -t musicgen-watcher:offline --build-arg MODELS="facebook/musicgen-small facebook/musicgen-melody" .
#
# Run the daemon (the default command: `run`):
#   docker run -d --gpus all --name musicgen -v "$PWD/data:/data" -v "$PWD/cache:/cache" \
#     -v "$PWD/config:/config:ro" -e MUSICGEN_WATCHER_DAEMON__ID=gpu0 musicgen-watcher
#   docker stop -t 30 musicgen      # daemon.shutdown_grace is 20 s: give it more than that before SIGKILL
#
# One file, as the original tool did (the first argument starting with `--` means `generate`):
#   docker run --rm --gpus all --no-healthcheck -v "$PWD/out:/out" musicgen-watcher \
#     --prompt "dark cinematic music" --duration 30 --output /out/output.wav
#
# Other commands: `docker exec musicgen musicgen-watcher status`, `... submit --prompt ...`, `... models`.
#
# Paths inside the container (no VOLUME is declared, see the end of the file: mount them with -v):
#   /data    the data root: inbox/ processing/ outbox/ done/ failed/ beneath (MUSICGEN_WATCHER_FOLDERS__ROOT)
#   /cache   model weights and caches: huggingface/ (HF_HOME), torch/ (TORCH_HOME, demucs), numba/
#   /config  config.toml, read when it exists (MUSICGEN_WATCHER_CONFIG_OPTIONAL), else the built-in defaults;
#            any key can also be set as MUSICGEN_WATCHER_<SECTION>__<KEY>, e.g. MUSICGEN_WATCHER_ENGINE__DEVICE=cuda:0
#
# Give each daemon a stable id (MUSICGEN_WATCHER_DAEMON__ID or --hostname): it claims work into
# processing/<id>/ and recovers only its own folder after a crash, and the default id is the container's
# hostname, which Docker makes up anew for every container.

# Base: plain Debian slim Python, not nvidia/cuda. torch 2.9.1 from PyPI (pinned in uv.lock) is the CUDA 12.8
# build and brings its own CUDA runtime, cuDNN, cuBLAS and NCCL as nvidia-* wheels; the host's NVIDIA
# container toolkit (`--gpus all`) mounts the driver (libcuda) into the container. A CUDA base image would only
# add a second, unused copy of the runtime. soundfile's wheel bundles libsndfile and av's bundles FFmpeg's
# libraries; the project never runs the ffmpeg binary, so no apt packages are needed at all.
# Python 3.11: the version the lock is tested with (requires-python is >=3.11,<3.14).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build stage: the locked virtual environment in /opt/venv ------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# The same uv as CI (.ci/run), installed the same way; it stays in this stage.
RUN python3 -m pip install --no-cache-dir uv==0.13.9

ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

WORKDIR /src

# Dependencies first, from the committed lock and nothing else (--locked fails if pyproject.toml and uv.lock
# disagree): this layer (torch and the CUDA wheels, about 8 GB) is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project --no-editable

# Then the project itself, installed as a regular (non-editable) package, so /src is not needed at run time.
COPY watcher ./watcher
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

# ---- run stage ------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="musicgen-watcher" \
      org.opencontainers.image.description="Watch-folder daemon that turns JSON request files into music with MusicGen" \
      org.opencontainers.image.licenses="MIT"

# XDG_CACHE_HOME: anything else that caches under ~/.cache lands in /cache too (the default HF_HOME and
# TORCH_HOME would be exactly the paths below). NUMBA_CACHE_DIR: librosa (imported by AudioCraft) compiles
# functions with numba's cache=True, which fails at import unless some cache folder is writable; the venv is
# root-owned and a `--user` uid has no home, so point numba at /cache.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/cache/huggingface \
    TORCH_HOME=/cache/torch \
    XDG_CACHE_HOME=/cache \
    NUMBA_CACHE_DIR=/cache/numba \
    MUSICGEN_WATCHER_FOLDERS__ROOT=/data \
    MUSICGEN_WATCHER_CONFIG_OPTIONAL=/config/config.toml

# User musicgen (1000:1000) owns /data, /cache and /config. /data and /cache are also mode 1777, like /tmp,
# so that `--user <uid>:<gid>` with any other uid (a NAS user, say) can create its folders and download
# weights there when they are not bind-mounted; the sticky bit keeps one uid from deleting or renaming
# another's entries. A bind mount (-v ./data:/data) replaces these modes with the host folder's: make the
# host folders writable by the uid the container runs as (mkdir -p data cache && chown 1000:1000 data cache).
RUN groupadd --gid 1000 musicgen \
    && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin musicgen \
    && mkdir -p /data /cache /config \
    && chown 1000:1000 /data /cache /config \
    && chmod 1777 /data /cache

COPY --from=builder /opt/venv /opt/venv

# Optional: bake model weights into the image for sites without internet access. MODELS is a space-separated
# list of hub ids (facebook/musicgen-small, -medium, -large, -melody, -stereo-*, ...). Loading each model once
# downloads everything it needs into /cache: the LM and EnCodec weights, the T5 text encoder and tokenizer,
# and for melody models the htdemucs checkpoint (torch hub). Loading runs on the build machine's CPU in
# float32, so musicgen-large needs about 16 GB of RAM while building.
# Run such an image with -e HF_HUB_OFFLINE=1 (no hub look-ups at all; without it demucs alone retries the hub
# for 40 s before falling back) and do NOT mount anything over /cache, which would hide the baked weights.
# a+rwX afterwards: torch hub writes its checkpoints 0600, and any runtime uid must be able to read the
# weights and add new models beside them. Download and chmod share one RUN so the weights exist in one layer.
ARG MODELS=""
SHELL ["/bin/bash", "-eu", "-o", "pipefail", "-c"]
RUN for model in ${MODELS}; do \
        echo "baking ${model}"; \
        python -c 'import sys; from audiocraft.models import MusicGen; MusicGen.get_pretrained(sys.argv[1], device="cpu")' "${model}"; \
    done \
    && chmod -R a+rwX /cache

# No VOLUME for /data or /cache: a VOLUME would give every `docker run` without -v its own anonymous copy of
# /cache (gigabytes once weights are baked), left behind unless run with --rm, and it would make later build
# steps in derived images (FROM musicgen-watcher, baking more models) silently lose their writes. Mount
# /data, /cache and /config with -v or compose's volumes instead.
WORKDIR /data

# Non-root by default; numeric so that Kubernetes' runAsNonRoot can check it. Overrides:
#   --user 1026:100            run as that uid:gid directly (the folders above are writable for it).
#   --user 0:0 -e PUID=1026 -e PGID=100 -e UMASK=002
#                              NAS style: PUID/PGID/UMASK apply only when the container starts as root; the
#                              program then drops to PUID:PGID itself and applies UMASK before touching files.
USER 1000:1000

# The daemon heartbeats every few seconds; `health` fails when the heartbeat is stale or a folder is not
# writable. start-period covers loading the model at start (about a minute; a first-time download of a large
# model can take longer, during which the container may show as unhealthy before it settles).
HEALTHCHECK --interval=30s --timeout=10s --start-period=2m --retries=3 \
    CMD ["musicgen-watcher", "health"]

# SIGTERM lets the daemon finish or re-queue the running request within daemon.shutdown_grace (20 s by default),
# so stop with a longer timeout: `docker stop -t 30` (compose: stop_grace_period: 30s).
STOPSIGNAL SIGTERM

# Exec form: musicgen-watcher is PID 1 and receives SIGTERM itself (no shell in between). `run` reads
# /config/config.toml when it exists (MUSICGEN_WATCHER_CONFIG_OPTIONAL) and uses the built-in defaults otherwise.
ENTRYPOINT ["musicgen-watcher"]
CMD ["run"]
