"""Random-weight stand-ins for the MusicGen checkpoints, for tests and benchmarks.

The stand-ins are laid out where the production code looks for the real models, so
``MusicGen.get_pretrained('facebook/musicgen-small')`` runs AudioCraft's unmodified loading
path (hub cache lookup, T5 tokenizer and encoder, EnCodec, demucs for melody) with no network:

- ``<root>/huggingface/hub``: the Hugging Face hub cache (``models--ORG--NAME/blobs``,
  ``snapshots/<commit>`` symlinks and ``refs/main``) holding ``facebook/musicgen-small``,
  ``facebook/musicgen-stereo-small``, ``facebook/musicgen-melody``, ``t5-base`` and
  ``facebook/encodec_32khz``;
- ``<root>/torch/hub/checkpoints``: the htdemucs checkpoint the melody model's chroma
  conditioner fetches through torch hub.

Use the variables from :func:`standin_env` in a process that has not imported
huggingface_hub yet: it reads ``HF_HOME`` and ``HF_HUB_OFFLINE`` once, at import. For the
same reason this module imports the heavy libraries only inside the builders.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shlex
import shutil
import tempfile
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig
    from torch import Tensor, nn

from ._configs import (
    CARD,
    DEMUCS_SOURCES,
    ENCODEC_ID,
    HTDEMUCS_CHECKPOINT,
    RATIOS,
    T5_DIM,
    T5_NAME,
    TOKENIZER_CORPUS,
    encodec_config,
    lm_config,
)
from ._configs import SAMPLE_RATE as SAMPLE_RATE  # re-exported: tests and selftest read it
from ._configs import TINY_WINDOW_SECONDS as TINY_WINDOW_SECONDS  # re-exported for tests

STANDIN_MODELS: tuple[str, ...] = (
    "facebook/musicgen-small",
    "facebook/musicgen-stereo-small",
    "facebook/musicgen-melody",
)



def standin_env(root: Path) -> dict[str, str]:
    """The environment variables that point the production code at the stand-ins in root."""
    root = Path(root).absolute()  # the variables must survive a change of directory
    return {
        "HF_HOME": str(root / "huggingface"),
        # Set explicitly too: an inherited HF_HUB_CACHE would otherwise win over HF_HOME.
        "HF_HUB_CACHE": str(root / "huggingface" / "hub"),
        # Offline: no hub round trips, and demucs skips its 5 retries of the hub.
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TORCH_HOME": str(root / "torch"),
    }


def build_standins(root: Path, *, full_size: bool = False, models: Sequence[str] = STANDIN_MODELS) -> None:
    """Write stand-ins for models under root/huggingface and root/torch.

    t5-base is always written (every MusicGen, local folders included, loads it by name);
    facebook/encodec_32khz comes with musicgen-small and htdemucs with musicgen-melody.
    full_size makes musicgen-small, t5-base and encodec_32khz real-sized; the others stay tiny.
    Each artefact replaces any earlier copy, so rebuilding a root is fine.
    """
    models = (models,) if isinstance(models, str) else tuple(models)
    unknown = sorted(set(models) - set(STANDIN_MODELS))
    if unknown:
        raise ValueError(f"no stand-in for {unknown}; known: {list(STANDIN_MODELS)}")
    with _no_progress_bars():
        _build(Path(root), full_size, models)


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Quiet the libraries' progress bars ("Writing model shards") while building, then restore them."""
    from huggingface_hub.utils.tqdm import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as transformers_logging

    hub_was_off, transformers_was_on = are_progress_bars_disabled(), transformers_logging.is_progress_bar_enabled()
    disable_progress_bars()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not hub_was_off:
            enable_progress_bars()
        if transformers_was_on:
            transformers_logging.enable_progress_bar()


def _build(root: Path, full_size: bool, models: tuple[str, ...]) -> None:
    hub = Path(root) / "huggingface" / "hub"
    hub.mkdir(parents=True, exist_ok=True)
    _publish(hub, T5_NAME, partial(_write_t5, full_size=full_size))
    if "facebook/musicgen-small" in models:
        _publish(hub, ENCODEC_ID, partial(_write_hf_encodec, full_size=full_size))
    if "facebook/musicgen-melody" in models:
        _write_htdemucs(Path(root) / "torch" / "hub" / "checkpoints" / HTDEMUCS_CHECKPOINT)
    for model in models:
        big = full_size and model == "facebook/musicgen-small"
        _publish(hub, model, partial(_write_musicgen, model=model, full_size=big))


def write_local_model(dest: Path, *, model: str = "facebook/musicgen-small", full_size: bool = False) -> Path:
    """Write a local AudioCraft model folder that ``MusicGen.get_pretrained(str(dest))`` loads.

    It holds state_dict.bin and full AudioCraft-format EnCodec weights, so it needs no
    encodec_32khz from the hub. The T5 encoder (and demucs, for melody) still come from the
    caches by name, as with a real local checkpoint: build_standins provides them.
    """
    if model not in STANDIN_MODELS:
        raise ValueError(f"no stand-in for {model!r}; known: {list(STANDIN_MODELS)}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    _write_musicgen(dest, model, full_size=full_size, reference_encodec=False)
    return dest


@contextmanager
def _seeded(name: str) -> Iterator[None]:
    """Seed torch from the artefact's name, restoring the caller's RNG state afterwards.

    Seeding per artefact keeps each one reproducible whatever else is built with it.
    AudioCraft's EnCodec still uses torch's deprecated weight_norm: silence that here, so
    builds stay quiet (and pass under -W error); loading the models warns as with real ones.
    """
    import torch

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*weight_norm", category=FutureWarning)
        torch.manual_seed(zlib.crc32(name.encode()))
        yield


def _publish(hub: Path, repo_id: str, write: Callable[[Path], None]) -> None:
    """Lay out the files that write(folder) produces as repo_id in the hub cache.

    Blobs are named by their sha256 and the snapshot (a commit hash derived from the
    contents) links to them; refs/main names the snapshot. Any earlier copy is replaced.
    """
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    with tempfile.TemporaryDirectory(dir=hub, prefix=".staging-") as staging:
        write(Path(staging))
        if repo.exists():
            shutil.rmtree(repo)
        (repo / "blobs").mkdir(parents=True)
        digests: dict[str, str] = {}
        for file in sorted(Path(staging).iterdir()):
            digests[file.name] = _sha256(file)
            os.replace(file, repo / "blobs" / digests[file.name])
    listing = "".join(f"{name} {digest}\n" for name, digest in digests.items())
    commit = hashlib.sha1(listing.encode(), usedforsecurity=False).hexdigest()
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, digest in digests.items():
        (snapshot / name).symlink_to(Path("..", "..", "blobs", digest))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_t5(dest: Path, *, full_size: bool) -> None:
    """Write a t5-base stand-in: a T5 tokenizer and a T5 encoder 768 wide.

    Only the encoder is saved (T5EncoderModel is all AudioCraft loads). Tiny, the other
    dimensions shrink; full size, they are t5-base's (110M parameters).
    """
    from transformers import T5Config, T5EncoderModel

    tokenizer = _t5_tokenizer()
    tokenizer.save_pretrained(dest)
    if full_size:
        size: dict[str, int] = dict(vocab_size=32128, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
    else:
        vocab = -(-len(tokenizer) // 128) * 128  # room for every id, rounded like t5's
        size = dict(vocab_size=vocab, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    config = T5Config(
        d_model=T5_DIM,
        num_decoder_layers=size["num_layers"],
        feed_forward_proj="relu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        **size,
    )
    with _seeded(T5_NAME):
        encoder = T5EncoderModel(config).eval()
    encoder.save_pretrained(dest)


def _t5_tokenizer() -> Any:
    """Build a T5Tokenizer from a sentencepiece model trained here on TOKENIZER_CORPUS.

    T5's conventions: pad 0, eos 1, unk 2, no bos, then the pieces and 100 sentinels.
    """
    import sentencepiece
    from transformers import T5Tokenizer

    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(TOKENIZER_CORPUS.strip().splitlines()),
        model_writer=proto,
        model_type="unigram",
        vocab_size=256,
        hard_vocab_limit=False,  # the corpus is too small to fill 256 pieces
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,  # deterministic
        minloglevel=2,  # quiet
    )
    processor = sentencepiece.SentencePieceProcessor(model_proto=proto.getvalue())
    vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(len(processor))]
    return T5Tokenizer(vocab=vocab, extra_ids=100, model_max_length=512)


def _write_hf_encodec(dest: Path, *, full_size: bool) -> None:
    """Write a facebook/encodec_32khz stand-in in transformers' EncodecModel format.

    The 32 kHz layout: 50 Hz frames, one bandwidth of 2.2 kbps = 4 codebooks of 2048.
    """
    import torch
    from transformers import EncodecConfig, EncodecFeatureExtractor, EncodecModel

    if full_size:
        size = dict(hidden_size=128, num_filters=64, codebook_dim=128, num_lstm_layers=2)
    else:
        size = dict(hidden_size=16, num_filters=2, codebook_dim=16, num_lstm_layers=1)
    config = EncodecConfig(
        target_bandwidths=[2.2],
        sampling_rate=SAMPLE_RATE,
        audio_channels=1,
        normalize=False,
        upsampling_ratios=RATIOS,
        use_causal_conv=False,
        use_conv_shortcut=False,
        codebook_size=CARD,
        **size,
    )
    with _seeded(ENCODEC_ID):
        model = EncodecModel(config).eval()
        # transformers starts the codebooks at zero, which would decode every code alike.
        for layer in model.quantizer.layers:
            codebook = layer.codebook
            codebook.embed.copy_(torch.randn_like(codebook.embed))
            codebook.embed_avg.copy_(codebook.embed)
            codebook.cluster_size.fill_(1.0)
    model.save_pretrained(dest)
    extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE)
    extractor.save_pretrained(dest)


def _write_htdemucs(path: Path) -> None:
    """Write a tiny random htdemucs where torch hub caches the real one.

    It keeps the real sources, sample rate and segment, so demucs splits audio the same way.
    """
    from fractions import Fraction

    import torch
    from demucs.htdemucs import HTDemucs
    from demucs.states import serialize_model
    from omegaconf import OmegaConf

    with _seeded("htdemucs"):
        model = HTDemucs(
            sources=DEMUCS_SOURCES,
            channels=8,
            depth=4,
            dconv_comp=4,
            t_layers=1,
            t_heads=2,
            t_hidden_scale=1.0,
            segment=Fraction(39, 5),
            samplerate=44100,
        )
    package = serialize_model(model, OmegaConf.create({}))
    path.parent.mkdir(parents=True, exist_ok=True)
    unfinished = path.with_name(path.name + ".partial")  # never leave a torn checkpoint
    torch.save(package, unfinished)
    os.replace(unfinished, path)


def _write_musicgen(dest: Path, model: str, *, full_size: bool, reference_encodec: bool | None = None) -> None:
    """Write a MusicGen checkpoint folder: state_dict.bin and compression_state_dict.bin.

    As on the hub, musicgen-small's compression file only names facebook/encodec_32khz,
    while stereo and melody carry AudioCraft-format EnCodec weights.
    """
    import torch

    if reference_encodec is None:
        reference_encodec = model == "facebook/musicgen-small"
    torch.save(_lm_package(model, full_size=full_size), dest / "state_dict.bin")
    compression = _reference_package(ENCODEC_ID) if reference_encodec else _encodec_package(full_size=full_size)
    torch.save(compression, dest / "compression_state_dict.bin")


def _package(state: dict[str, Tensor], cfg: DictConfig) -> dict[str, Any]:
    """An exported AudioCraft checkpoint, as audiocraft.utils.export writes them."""
    import audiocraft
    from omegaconf import OmegaConf

    return {
        "best_state": state,
        "xp.cfg": OmegaConf.to_yaml(cfg),
        "version": audiocraft.__version__,
        "exported": True,
    }


def _reference_package(name: str) -> dict[str, Any]:
    """A compression checkpoint that only names a pretrained model to load instead."""
    import audiocraft

    return {"pretrained": name, "exported": True, "version": audiocraft.__version__}


def _lm_package(model: str, *, full_size: bool) -> dict[str, Any]:
    """Build a random LM for model and package it with its xp.cfg."""
    from audiocraft.models import builders

    cfg = lm_config(model, full_size=full_size)
    # AudioCraft's builder would load T5 (and demucs) from the caches this module is writing,
    # so build the LM without conditioners and add their saved weights separately.
    skeleton = cfg.copy()
    skeleton.conditioners = None
    skeleton.device = "cpu"
    with _seeded(model):
        lm = builders.get_lm_model(skeleton)
        state = lm.state_dict()
        for name, conditioner in _conditioner_weights(cfg).items():
            for key, value in conditioner.state_dict().items():
                state[f"condition_provider.conditioners.{name}.{key}"] = value
    return _package(state, cfg)


def _conditioner_weights(cfg: DictConfig) -> dict[str, nn.Module]:
    """Modules holding exactly what each conditioner saves in the checkpoint.

    T5 itself is not saved (it loads by name), only the projection to the LM's width; the
    chroma conditioner also saves its spectrogram window. Loading is strict, so a mismatch
    with AudioCraft's own conditioners fails loudly.
    """
    from audiocraft.modules.chroma import ChromaExtractor
    from audiocraft.modules.conditioners import BaseConditioner

    dim = int(cfg.transformer_lm.dim)
    modules: dict[str, nn.Module] = {}
    for name, spec in cfg.conditioners.items():
        if name == "args":
            continue
        if spec.model == "t5":
            modules[str(name)] = BaseConditioner(T5_DIM, dim)
        elif spec.model == "chroma_stem":
            chroma = spec.chroma_stem
            module = BaseConditioner(int(chroma.n_chroma), dim)
            module.chroma = ChromaExtractor(
                sample_rate=int(chroma.sample_rate),
                n_chroma=int(chroma.n_chroma),
                radix2_exp=int(chroma.radix2_exp),
                argmax=bool(chroma.argmax),
            )
            modules[str(name)] = module
        else:
            raise ValueError(f"unexpected conditioner {spec.model}")
    return modules












def _encodec_package(*, full_size: bool) -> dict[str, Any]:
    """A random mono 32 kHz EnCodec in AudioCraft's format, with its xp.cfg."""
    import torch
    from audiocraft.models import builders

    cfg = encodec_config(full_size=full_size)
    build_cfg = cfg.copy()
    build_cfg.device = "cpu"
    with _seeded("encodec"):
        model = builders.get_compression_model(build_cfg)
        # The codebooks start at zero, waiting for k-means on training data: fill them.
        for layer in model.quantizer.vq.layers:
            codebook = layer._codebook
            codebook.embed.copy_(torch.randn_like(codebook.embed))
            codebook.embed_avg.copy_(codebook.embed)
            codebook.cluster_size.fill_(1.0)
            codebook.inited.fill_(1.0)
    return _package(model.state_dict(), cfg)




def main(argv: Sequence[str] | None = None) -> int:
    """Build stand-ins under ROOT and print the shell lines that point at them."""
    parser = argparse.ArgumentParser(
        prog="python -m watcher.testing.standins",
        description="Build random-weight MusicGen stand-ins in the hub and torch caches.",
    )
    parser.add_argument("root", type=Path, help="folder to build in")
    parser.add_argument("--full-size", action="store_true", help="real-sized musicgen-small (~2.7 GB)")
    parser.add_argument(
        "--model",
        action="append",
        choices=STANDIN_MODELS,
        help="model to build (repeatable; default: all)",
    )
    args = parser.parse_args(argv)
    build_standins(args.root, full_size=args.full_size, models=args.model or STANDIN_MODELS)
    for key, value in standin_env(args.root).items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
