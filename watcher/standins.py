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
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig
    from torch import Tensor, nn

STANDIN_MODELS: tuple[str, ...] = (
    "facebook/musicgen-small",
    "facebook/musicgen-stereo-small",
    "facebook/musicgen-melody",
)

# The tiny models' training window (`dataset.segment_duration`, which AudioCraft turns into
# `max_duration`). MusicGen needs it above the default extend_stride of 18 s; 20 s keeps
# tests that extend beyond the window cheap. The real models, and full_size, use 30 s.
TINY_WINDOW_SECONDS = 20
FULL_WINDOW_SECONDS = 30

SAMPLE_RATE = 32000
T5_NAME = "t5-base"
ENCODEC_ID = "facebook/encodec_32khz"
# demucs resolves the name 'htdemucs' to this file in torch hub's checkpoint folder.
HTDEMUCS_CHECKPOINT = "955717e8-8726e21a.th"

# The T5 conditioner sizes its projection from the model name: t5-base is 768 wide.
_T5_DIM = 768
_CARD = 2048  # EnCodec 32 kHz codebook size; the LM's default top_k of 250 needs >= 250.
_N_Q = 4  # EnCodec 32 kHz codebooks (2.2 kbps at 50 Hz, 11 bits each)
_RATIOS = [8, 5, 4, 4]  # 640 samples per frame: 50 Hz at 32 kHz
_DEMUCS_SOURCES = ["drums", "bass", "other", "vocals"]

# A few hundred words to train the stand-in T5 tokenizer on, so prompts tokenize to
# real pieces rather than all unknowns.
_TOKENIZER_CORPUS = """
ambient electronic music with soft pads and a slow steady beat
lofi hip hop with a dusty piano loop and mellow drums for studying
upbeat pop song with bright synths catchy hooks and claps
heavy metal riff with distorted guitars double kick drums and a fast tempo
calm classical piece for string quartet with violin viola and cello
epic cinematic trailer music with a big orchestra choir and taiko drums
smooth jazz trio with upright bass brushed snare and a warm saxophone solo
eighties synthwave with arpeggiated bass gated reverb drums and neon leads
acoustic folk tune with fingerpicked guitar harmonica and a gentle voice
deep house groove at one hundred twenty four bpm with a rolling bassline
reggae rhythm with offbeat guitar skank organ bubble and a heavy bass
funky disco track with slap bass wah guitar strings and four on the floor
dark techno with a pounding kick hypnotic hats and an acid line
sad piano ballad in a minor key with sparse chords and long sustain
happy ukulele melody with whistling handclaps and a sunny summer mood
country song with pedal steel banjo fiddle and a walking bass
blues shuffle with an electric guitar a hammond organ and harmonica
dreamy shoegaze with washed out guitars shimmering reverb and soft vocals
energetic drum and bass with chopped breaks and a deep sub bass
relaxing meditation music with bells drones flutes and ocean waves
retro video game chiptune with square waves and a bouncy melody
medieval folk dance with lute recorder and hand drums
latin salsa with congas timbales a brass section and a piano montuno
bossa nova with nylon guitar soft percussion and a quiet flute
orchestral waltz in three four time with a lush string section
"""


@dataclass(frozen=True)
class _LMSize:
    """The transformer dimensions of a MusicGen language model."""

    dim: int
    num_heads: int
    num_layers: int


# musicgen-small's real transformer ("300M", 420M parameters with embeddings and heads).
_SMALL_LM = _LMSize(dim=1024, num_heads=16, num_layers=24)
_TINY_LM = _LMSize(dim=32, num_heads=4, num_layers=2)


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
        d_model=_T5_DIM,
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
    """Build a T5Tokenizer from a sentencepiece model trained here on _TOKENIZER_CORPUS.

    T5's conventions: pad 0, eos 1, unk 2, no bos, then the pieces and 100 sentinels.
    """
    import sentencepiece
    from transformers import T5Tokenizer

    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_TOKENIZER_CORPUS.strip().splitlines()),
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
        upsampling_ratios=_RATIOS,
        use_causal_conv=False,
        use_conv_shortcut=False,
        codebook_size=_CARD,
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
            sources=_DEMUCS_SOURCES,
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

    cfg = _lm_config(model, full_size=full_size)
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
            modules[str(name)] = BaseConditioner(_T5_DIM, dim)
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


def _lm_config(model: str, *, full_size: bool) -> DictConfig:
    """The model-relevant part of a real MusicGen xp.cfg, with tiny dimensions unless full_size.

    The keys the loader deletes (merge_text_conditions_p, drop_desc_p, chroma cache_path) are
    kept, as in the real dumps, so that path runs too.
    """
    from omegaconf import OmegaConf

    size = _SMALL_LM if full_size else _TINY_LM
    stereo = model == "facebook/musicgen-stereo-small"
    melody = model == "facebook/musicgen-melody"
    n_q = 2 * _N_Q if stereo else _N_Q
    # Stereo interleaves the left and right codes of a mono EnCodec: codebook k of each
    # channel shares delay k.
    delays = [k // 2 for k in range(n_q)] if stereo else list(range(n_q))
    cfg: dict[str, Any] = {
        "device": "cuda",
        "dtype": "float32",
        "autocast": True,
        "autocast_dtype": "float16",
        "efficient_attention_backend": "torch",
        "solver": "musicgen",
        "sample_rate": SAMPLE_RATE,
        "channels": 2 if stereo else 1,
        "compression_model_checkpoint": f"//pretrained/{ENCODEC_ID}",
        "compression_model_n_q": None,
        "tokens": {"padding_with_special_token": False},
        "interleave_stereo_codebooks": {"use": stereo, "per_timestep": False},
        "dataset": {
            "segment_duration": FULL_WINDOW_SECONDS if full_size else TINY_WINDOW_SECONDS,
            "batch_size": 192,
            "num_workers": 10,
            "min_segment_ratio": 0.8,
            "return_info": True,
            "train": {"merge_text_p": 0.25, "drop_desc_p": 0.5, "drop_other_p": 0.5},
        },
        "lm_model": "transformer_lm",
        "codebooks_pattern": {
            "modeling": "delay",
            "delay": {"delays": delays, "flatten_first": 0, "empty_initial": 0},
        },
        "transformer_lm": _transformer_lm(size, n_q),
        **(_melody_conditioning() if melody else _text_conditioning()),
    }
    return OmegaConf.create(cfg)


def _transformer_lm(size: _LMSize, n_q: int) -> dict[str, Any]:
    """config/model/lm/musicgen_lm.yaml over lm/default.yaml, at the given size."""
    return {
        "dim": size.dim,
        "num_heads": size.num_heads,
        "num_layers": size.num_layers,
        "hidden_scale": 4,
        "n_q": n_q,
        "card": _CARD,
        "dropout": 0.0,
        "emb_lr": None,
        "activation": "gelu",
        "norm_first": True,
        "bias_ff": False,
        "bias_attn": False,
        "bias_proj": False,
        "past_context": None,
        "causal": True,
        "custom": False,
        "memory_efficient": True,
        "attention_as_float32": False,
        "layer_scale": None,
        "positional_embedding": "sin",
        "xpos": False,
        "checkpointing": "none",
        "weight_init": "gaussian",
        "depthwise_init": "current",
        "zero_bias_init": True,
        "norm": "layer_norm",
        "cross_attention": False,
        "qk_layer_norm": False,
        "qk_layer_norm_cross": False,
        "attention_dropout": None,
        "kv_repeat": 1,
        "two_step_cfg": False,
    }


def _t5_conditioner(word_dropout: float) -> dict[str, Any]:
    return {
        "model": "t5",
        "t5": {
            "name": T5_NAME,
            "finetune": False,
            "word_dropout": word_dropout,
            "normalize_text": False,
        },
    }


def _text_conditioning() -> dict[str, Any]:
    """config/conditioner/text2music.yaml: T5 descriptions through cross-attention."""
    return {
        "classifier_free_guidance": {"training_dropout": 0.3, "inference_coef": 3.0},
        "attribute_dropout": {},
        "fuser": {
            "cross_attention_pos_emb": False,
            "cross_attention_pos_emb_scale": 1,
            "sum": [],
            "prepend": [],
            "cross": ["description"],
            "input_interpolate": [],
        },
        "conditioners": {
            "args": {"merge_text_conditions_p": 0.25, "drop_desc_p": 0.5},
            "description": _t5_conditioner(0.3),
        },
    }


def _melody_conditioning() -> dict[str, Any]:
    """config/conditioner/chroma2music.yaml: demucs-stemmed chroma and T5, both prepended."""
    return {
        "classifier_free_guidance": {"training_dropout": 0.2, "inference_coef": 3.0},
        "attribute_dropout": {"args": {"active_on_eval": False}, "text": {}, "wav": {"self_wav": 0.5}},
        "fuser": {
            "cross_attention_pos_emb": False,
            "cross_attention_pos_emb_scale": 1,
            "sum": [],
            "prepend": ["self_wav", "description"],
            "cross": [],
            "input_interpolate": [],
        },
        "conditioners": {
            "args": {"merge_text_conditions_p": 0.25, "drop_desc_p": 0.5},
            "self_wav": {
                "model": "chroma_stem",
                "chroma_stem": {
                    "sample_rate": SAMPLE_RATE,
                    "n_chroma": 12,
                    "radix2_exp": 14,
                    "argmax": True,
                    "match_len_on_eval": False,
                    "eval_wavs": None,
                    "n_eval_wavs": 100,
                    "cache_path": None,
                },
            },
            "description": _t5_conditioner(0.2),
        },
    }


def _encodec_package(*, full_size: bool) -> dict[str, Any]:
    """A random mono 32 kHz EnCodec in AudioCraft's format, with its xp.cfg."""
    import torch
    from audiocraft.models import builders

    cfg = _encodec_config(full_size=full_size)
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


def _encodec_config(*, full_size: bool) -> DictConfig:
    """config/solver/compression/encodec_musicgen_32khz.yaml, tiny unless full_size."""
    from omegaconf import OmegaConf

    dimension, n_filters, lstm = (128, 64, 2) if full_size else (16, 2, 1)
    cfg = {
        "device": "cuda",
        "dtype": "float32",
        "solver": "compression",
        "sample_rate": SAMPLE_RATE,
        "channels": 1,
        "compression_model": "encodec",
        "encodec": {
            "autoencoder": "seanet",
            "quantizer": "rvq",
            "sample_rate": SAMPLE_RATE,
            "channels": 1,
            "causal": False,
            "renormalize": False,
        },
        "seanet": {
            "dimension": dimension,
            "channels": 1,
            "causal": False,
            "n_filters": n_filters,
            "n_residual_layers": 1,
            "ratios": _RATIOS,
            "activation": "ELU",
            "activation_params": {"alpha": 1.0},
            "norm": "weight_norm",
            "norm_params": {},
            "kernel_size": 7,
            "residual_kernel_size": 3,
            "last_kernel_size": 7,
            "dilation_base": 2,
            "pad_mode": "constant",
            "true_skip": True,
            "compress": 2,
            "lstm": lstm,
            "disable_norm_outer_blocks": 0,
            "decoder": {
                "trim_right_ratio": 1.0,
                "final_activation": None,
                "final_activation_params": None,
            },
            "encoder": {},
        },
        "rvq": {
            "n_q": _N_Q,
            "q_dropout": False,
            "bins": _CARD,
            "decay": 0.99,
            "kmeans_init": True,
            "kmeans_iters": 50,
            "threshold_ema_dead_code": 2,
            "orthogonal_reg_weight": 0.0,
            "orthogonal_reg_active_codes_only": False,
        },
        "no_quant": {},
    }
    return OmegaConf.create(cfg)


def main(argv: Sequence[str] | None = None) -> int:
    """Build stand-ins under ROOT and print the shell lines that point at them."""
    parser = argparse.ArgumentParser(
        prog="python -m watcher.standins",
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
