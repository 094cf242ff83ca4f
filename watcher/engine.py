"""The resident MusicGen engine: load once, keep, generate in every mode through AudioCraft's public API."""

from __future__ import annotations

import gc
import random
import secrets
import time
from collections.abc import Sequence
from typing import cast

import torch
from audiocraft.data.audio_utils import convert_audio
from audiocraft.models import MusicGen
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

from .audio import Audio
from .errors import ErrorCode, OutOfMemory, RequestError, TransientError
from .jobs import Generated, Job, ProgressCallback, check_continuation
from .logs import adopt_library_loggers
from .models import ResolvedModel, melody_refused
from .options import Mode, Sampling

#: the conditioner through which melody models take a chroma
_MELODY_CONDITIONER = "self_wav"

adopt_library_loggers()  # AudioCraft imported transformers just now


class DeviceUnavailable(ValueError):
    """The device asked for is not there (cuda with no GPU visible to torch)."""


def pick_device(device: str) -> str:
    """`auto` is cuda when a GPU is visible, else cpu; cuda without a GPU raises DeviceUnavailable."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceUnavailable(f"{device} was asked for, but torch sees no CUDA GPU ({no_gpu_reason()})")
    return device


def no_gpu_reason() -> str:
    """Why torch sees no GPU, in words a user can act on."""
    if torch.version.cuda is None:
        return "this torch is a CPU-only build"
    return ("no NVIDIA driver or GPU is visible to this process; in Docker, start the container with "
            "--gpus all and the NVIDIA container toolkit")


def planned_steps(duration: float, max_duration: float, frame_rate: float, stride: float,
                  prompt_seconds: float = 0.0) -> int:
    """Decoding steps AudioCraft will take, window by window (mirrors `_generate_tokens`)."""
    total = int(duration * frame_rate)
    stride_tokens = int(stride * frame_rate)
    prompt_len = int(prompt_seconds * frame_rate)
    if duration <= max_duration:
        return max(total - prompt_len, 1)
    steps, offset = 0, 0
    while offset + prompt_len < total:
        window = int(min(duration - offset / frame_rate, max_duration) * frame_rate)
        steps += window - prompt_len
        prompt_len = window - stride_tokens
        offset += stride_tokens
    return max(steps, 1)


class Engine:
    """Holds at most one MusicGen model on one device and runs batches on it."""

    def __init__(self, device: str = "auto", *, threads: int = 0) -> None:
        self.device = pick_device(device)
        self.threads = threads
        self._model: MusicGen | None = None
        self._name: str | None = None
        self.loads = 0

    @property
    def resident(self) -> str | None:
        """The name of the loaded model, if any."""
        return self._name

    @property
    def dtype(self) -> str:
        """The dtype generation runs in: AudioCraft autocasts to float16 off the CPU."""
        if self._model is None:
            return "none"
        if self._model.device.type != "cpu":
            return "float16"
        return str(next(self._model.lm.parameters()).dtype).removeprefix("torch.")

    def load(self, model: ResolvedModel) -> float:
        """Make `model` resident, swapping out another; returns the seconds it took (0 if kept)."""
        if self._name == model.name and self._model is not None:
            return 0.0
        self.unload()
        started = time.perf_counter()
        try:
            self._model = MusicGen.get_pretrained(model.name, device=self.device)
        except (RepositoryNotFoundError, GatedRepoError) as exc:
            raise RequestError(ErrorCode.unknown_model, f"The hub has no model {model.name}.",
                               field="model") from exc
        except OSError as exc:
            if model.local:
                raise RequestError(ErrorCode.model_load_failed,
                                   f"The model folder {model.name} could not be read: {exc}.",
                                   field="model") from exc
            raise TransientError(
                ErrorCode.model_unavailable,
                f"{model.name} could not be fetched from the Hugging Face hub "
                f"(no network, or not in the cache with HF_HUB_OFFLINE=1): {exc}.",
            ) from exc
        except Exception as exc:  # a pickle can raise anything
            raise RequestError(ErrorCode.model_load_failed,
                               f"The checkpoint of {model.name} is broken: {type(exc).__name__}: {exc}.",
                               field="model") from exc
        self._name = model.name
        self.loads += 1
        return time.perf_counter() - started

    def unload(self) -> None:
        """Free the model and, on CUDA, the cached memory it held."""
        self._model = None
        self._name = None
        self._free_cache()

    def takes_melody(self) -> bool:
        """Whether the resident model has a melody (chroma) conditioner."""
        assert self._model is not None, "load a model first"
        return _MELODY_CONDITIONER in self._model.lm.condition_provider.conditioners

    def generate(
        self,
        model: ResolvedModel,
        jobs: Sequence[Job],
        *,
        duration: float,
        sampling: Sampling = Sampling(),
        seed: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[Generated]:
        """Run `jobs` as one batch: one AudioCraft call, one output each, in order."""
        modes = {job.mode for job in jobs}
        if len(modes) != 1:
            raise ValueError(f"a batch must share one mode, got {sorted(modes)}")
        mode = modes.pop()
        load_seconds = self.load(model)
        musicgen = self._model
        assert musicgen is not None
        self._check_mode(model, mode, duration, sampling, jobs)
        seed = secrets.randbelow(2**31) if seed is None else seed
        musicgen.set_generation_params(
            use_sampling=True, top_k=sampling.top_k, top_p=sampling.top_p,
            temperature=sampling.temperature, duration=duration, cfg_coef=sampling.cfg_coef,
            two_step_cfg=sampling.two_step_cfg, extend_stride=sampling.extend_stride,
        )
        prompt_seconds = max((j.continuation.seconds for j in jobs if j.continuation), default=0.0)
        steps = planned_steps(duration, musicgen.max_duration, musicgen.frame_rate,
                              sampling.extend_stride, prompt_seconds)
        musicgen.set_custom_progress_callback(_StepCounter(steps, progress))
        if self.threads:  # set here, in the thread that generates (the daemon builds the engine in another)
            torch.set_num_threads(self.threads)  # several daemons on one CPU host crawl fighting over cores
        torch.manual_seed(seed)  # seeds every device; AudioCraft has no seed argument
        random.seed(seed)  # demucs (melody chroma) draws its time shift from Python's random
        started = time.perf_counter()
        try:
            wavs = cast(torch.Tensor, self._run(musicgen, mode, jobs))
        except torch.OutOfMemoryError as exc:
            self._free_cache()
            raise OutOfMemory(f"The GPU ran out of memory generating a batch of {len(jobs)}.") from exc
        except (RuntimeError, ValueError, AssertionError, IndexError) as exc:
            raise RequestError(ErrorCode.generation_failed,
                               f"AudioCraft failed while generating: {type(exc).__name__}: {exc}.") from exc
        finally:
            musicgen.set_custom_progress_callback(None)
        seconds = time.perf_counter() - started
        if progress is not None:
            progress(1.0)
        rate = musicgen.sample_rate
        return [
            Generated(Audio(wav.detach().to("cpu", torch.float32), rate), model.name, seed, self.device,
                      self.dtype, load_seconds, seconds, len(jobs))
            for wav in wavs
        ]

    def _check_mode(self, model: ResolvedModel, mode: Mode, duration: float, sampling: Sampling,
                    jobs: Sequence[Job]) -> None:
        musicgen = self._model
        assert musicgen is not None
        if mode is Mode.melody and not self.takes_melody():
            raise melody_refused(model.requested)
        if sampling.extend_stride >= musicgen.max_duration:
            raise RequestError(ErrorCode.invalid_request,
                               f"extend_stride must be shorter than the model's {musicgen.max_duration:g} s "
                               "window.", field="extend_stride")
        for job in jobs:
            if job.continuation is not None:
                check_continuation(job.continuation, duration, musicgen.max_duration)

    def _run(self, musicgen: MusicGen, mode: Mode, jobs: Sequence[Job]) -> object:
        rate, channels = musicgen.sample_rate, musicgen.audio_channels

        def prepared(audio: Audio) -> torch.Tensor:
            wav: torch.Tensor = convert_audio(audio.wav, audio.sample_rate, rate, channels)
            return wav.to(musicgen.device)

        descriptions = [job.prompt or None for job in jobs]
        if mode is Mode.unconditional:
            return musicgen.generate_unconditional(len(jobs), progress=True)
        if mode is Mode.text:
            return musicgen.generate([job.prompt or "" for job in jobs], progress=True)
        if mode is Mode.melody:
            melodies = [prepared(job.melody) for job in jobs if job.melody is not None]
            return musicgen.generate_with_chroma(descriptions, melodies, rate,
                                                 progress=True)
        prompts = [prepared(job.continuation) for job in jobs if job.continuation is not None]
        if len({p.shape[-1] for p in prompts}) != 1:
            raise ValueError("continuation prompts in one batch must have the same length")
        return musicgen.generate_continuation(torch.stack(prompts), rate, descriptions=descriptions,
                                              progress=True)

    def _free_cache(self) -> None:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class _StepCounter:
    """Turns AudioCraft's per-window (generated, total) calls into one monotonic 0..1."""

    def __init__(self, planned: int, progress: ProgressCallback | None) -> None:
        self.planned = planned
        self.progress = progress
        self.steps = 0
        self.last = 0.0

    def __call__(self, generated: int, total: int) -> None:
        self.steps += 1
        value = min(self.steps / self.planned, 0.999)
        if self.progress is not None and value > self.last:
            self.last = value
            self.progress(value)
