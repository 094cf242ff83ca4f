"""AudioCraft's own configuration literals for the stand-ins: the model-relevant parts of real xp.cfg dumps.

Data, not logic: `standins` builds random weights to these shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig

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
T5_DIM = 768

CARD = 2048  # EnCodec 32 kHz codebook size; the LM's default top_k of 250 needs >= 250.

N_Q = 4  # EnCodec 32 kHz codebooks (2.2 kbps at 50 Hz, 11 bits each)

RATIOS = [8, 5, 4, 4]  # 640 samples per frame: 50 Hz at 32 kHz

DEMUCS_SOURCES = ["drums", "bass", "other", "vocals"]


# A few hundred words to train the stand-in T5 tokenizer on, so prompts tokenize to
# real pieces rather than all unknowns.
TOKENIZER_CORPUS = """
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
class LMSize:
    """The transformer dimensions of a MusicGen language model."""

    dim: int
    num_heads: int
    num_layers: int


# musicgen-small's real transformer ("300M", 420M parameters with embeddings and heads).
SMALL_LM = LMSize(dim=1024, num_heads=16, num_layers=24)


TINY_LM = LMSize(dim=32, num_heads=4, num_layers=2)


def lm_config(model: str, *, full_size: bool) -> DictConfig:
    """The model-relevant part of a real MusicGen xp.cfg, with tiny dimensions unless full_size.

    The keys the loader deletes (merge_text_conditions_p, drop_desc_p, chroma cache_path) are
    kept, as in the real dumps, so that path runs too.
    """
    from omegaconf import OmegaConf

    size = SMALL_LM if full_size else TINY_LM
    stereo = model == "facebook/musicgen-stereo-small"
    melody = model == "facebook/musicgen-melody"
    n_q = 2 * N_Q if stereo else N_Q
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
        "transformer_lm": transformer_lm(size, n_q),
        **(melody_conditioning() if melody else text_conditioning()),
    }
    return OmegaConf.create(cfg)


def transformer_lm(size: LMSize, n_q: int) -> dict[str, Any]:
    """config/model/lm/musicgen_lm.yaml over lm/default.yaml, at the given size."""
    return {
        "dim": size.dim,
        "num_heads": size.num_heads,
        "num_layers": size.num_layers,
        "hidden_scale": 4,
        "n_q": n_q,
        "card": CARD,
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


def t5_conditioner(word_dropout: float) -> dict[str, Any]:
    return {
        "model": "t5",
        "t5": {
            "name": T5_NAME,
            "finetune": False,
            "word_dropout": word_dropout,
            "normalize_text": False,
        },
    }


def text_conditioning() -> dict[str, Any]:
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
            "description": t5_conditioner(0.3),
        },
    }


def melody_conditioning() -> dict[str, Any]:
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
            "description": t5_conditioner(0.2),
        },
    }


def encodec_config(*, full_size: bool) -> DictConfig:
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
            "ratios": RATIOS,
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
            "n_q": N_Q,
            "q_dropout": False,
            "bins": CARD,
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
