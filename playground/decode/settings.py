"""The knobs of one sampling step (SamplingSettings) and the generate() options that apply exactly them.

Gradio-free. Every knob is checked once, here, with a sentence naming the field; the samplers beyond the
first five (typical-p, epsilon / eta cutoffs, top-h, no-repeat n-gram, sequence bias, banned words) are off
by default so the first five alone behave as before. Words are turned into token ids by decode/words.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playground.decode.checks import check_float, check_int

TokenSeq = tuple[int, ...]

# generate() fills every unset option from the model's generation_config; these pin the ones that would add
# processors we do not show, so a model whose config sets e.g. no_repeat_ngram_size cannot change the result.
NEUTRAL_GENERATE_KWARGS: dict[str, Any] = dict(
    typical_p=1.0, epsilon_cutoff=0.0, eta_cutoff=0.0, top_h=None, no_repeat_ngram_size=0,
    encoder_repetition_penalty=1.0, bad_words_ids=None, min_length=0, min_new_tokens=None,
    forced_bos_token_id=None, forced_eos_token_id=None, suppress_tokens=None, begin_suppress_tokens=None,
    sequence_bias=None, guidance_scale=None, exponential_decay_length_penalty=None,
    remove_invalid_values=False, renormalize_logits=False, num_beams=1, num_return_sequences=1,
)
MAX_NGRAM = 20
MAX_BIAS = 100.0
MAX_SEQUENCES = 64  # token sequences per list (each word gives up to two: as typed and with a leading space)

# (field, check): the one place the number knobs' ranges live; error sentences name the field.
_KNOBS: tuple[tuple[str, Any], ...] = (
    ("temperature", lambda v: check_float("temperature", v, 0.0, 100.0, hint=" (0 = greedy)")),
    ("top_k", lambda v: check_int("top_k", v, 0, 10_000_000, hint=" (0 = off)")),
    ("top_p", lambda v: check_float("top_p", v, 0.0, 1.0, low_open=True, hint=" (1 = off)")),
    ("min_p", lambda v: check_float("min_p", v, 0.0, 1.0, hint=" (0 = off)")),
    ("repetition_penalty", lambda v: check_float("repetition_penalty", v, 0.0, 100.0, low_open=True,
                                                 hint=" (1 = off)")),
    ("typical_p", lambda v: check_float("typical_p", v, 0.0, 1.0, low_open=True, hint=" (1 = off)")),
    ("epsilon_cutoff", lambda v: check_float("epsilon_cutoff", v, 0.0, 1.0, high_open=True, hint=" (0 = off)")),
    ("eta_cutoff", lambda v: check_float("eta_cutoff", v, 0.0, 1.0, high_open=True, hint=" (0 = off)")),
    ("top_h", lambda v: check_float("top_h", v, 0.0, 1.0, hint=" (0 = off)")),
    ("no_repeat_ngram_size", lambda v: check_int("no_repeat_ngram_size", v, 0, MAX_NGRAM, hint=" (0 = off)")),
)
FIVE = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty")
MORE = ("typical_p", "epsilon_cutoff", "eta_cutoff", "top_h", "no_repeat_ngram_size")


def _check_sequences(name: str, value: Any) -> tuple[TokenSeq, ...]:
    try:
        seqs = tuple(tuple(int(t) for t in seq) for seq in (value or ()))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of token-id sequences; got {value!r}.") from None
    if any(not seq or min(seq) < 0 for seq in seqs):
        raise ValueError(f"{name}: every token sequence must be non-empty token ids (≥ 0); got {value!r}.")
    if len(seqs) > MAX_SEQUENCES:
        raise ValueError(f"{name}: at most {MAX_SEQUENCES} token sequences; got {len(seqs)}.")
    return seqs


def _check_bias(value: Any) -> tuple[tuple[TokenSeq, float], ...]:
    pairs = tuple(value or ())
    if any(not isinstance(p, (tuple, list)) or len(p) != 2 for p in pairs):
        raise ValueError(f"sequence_bias must be (token ids, bias) pairs; got {value!r}.")
    seqs = _check_sequences("sequence_bias", [p[0] for p in pairs])
    biases = [check_float("sequence_bias", p[1], -MAX_BIAS, MAX_BIAS) for p in pairs]
    return tuple(zip(seqs, biases))


@dataclass(frozen=True)
class SamplingSettings:
    """The knobs of one sampling step. temperature 0 = greedy; top_k 0, top_p 1, min_p 0 = filter off; the
    "more samplers" are off at typical_p 1, epsilon_cutoff / eta_cutoff / top_h / no_repeat_ngram_size 0 and
    no sequence_bias / bad_words_ids (token-id sequences; see decode/words.py for typed words).

    Loose values (sliders send floats, the API may send strings) are checked and converted once, here:
    `SamplingSettings(top_k=40.0).top_k == 40`; a value out of range raises a ValueError naming the field."""

    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    typical_p: float = 1.0
    epsilon_cutoff: float = 0.0
    eta_cutoff: float = 0.0
    top_h: float = 0.0
    no_repeat_ngram_size: int = 0
    sequence_bias: tuple[tuple[TokenSeq, float], ...] = ()
    bad_words_ids: tuple[TokenSeq, ...] = ()

    def __post_init__(self) -> None:
        for name, check in _KNOBS:
            object.__setattr__(self, name, check(getattr(self, name)))
        object.__setattr__(self, "sequence_bias", _check_bias(self.sequence_bias))
        object.__setattr__(self, "bad_words_ids", _check_sequences("bad_words_ids", self.bad_words_ids))

    @classmethod
    def from_values(cls, temperature: Any, top_k: Any, top_p: Any, min_p: Any, repetition_penalty: Any,
                    **more: Any) -> "SamplingSettings":
        """From the five UI/API values in pipeline order (the Decode tab's first knobs), plus any of the
        "more samplers" fields by name."""
        return cls(temperature, top_k, top_p, min_p, repetition_penalty, **more)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def bias_dict(self) -> dict[TokenSeq, float]:
        """The biases as SequenceBiasLogitsProcessor keeps them (a repeated sequence: the last bias wins)."""
        return dict(self.sequence_bias)


def _bias_list(settings: SamplingSettings) -> list[list[Any]] | None:
    bias = settings.bias_dict
    return [[list(seq), float(b)] for seq, b in bias.items()] if bias else None


def generate_kwargs(settings: SamplingSettings) -> dict[str, Any]:
    """Keyword arguments that make generate() use exactly these settings (and nothing from the model's
    generation_config that we do not show)."""
    common = {**NEUTRAL_GENERATE_KWARGS, "repetition_penalty": float(settings.repetition_penalty),
              "no_repeat_ngram_size": int(settings.no_repeat_ngram_size), "sequence_bias": _bias_list(settings),
              "bad_words_ids": [list(s) for s in settings.bad_words_ids] or None}
    if settings.greedy:
        return {**common, "do_sample": False, "temperature": None, "top_k": None, "top_p": None, "min_p": None}
    return {**common, "do_sample": True, "temperature": float(settings.temperature), "top_k": int(settings.top_k),
            "top_p": float(settings.top_p), "min_p": float(settings.min_p) if settings.min_p > 0 else None,
            "typical_p": float(settings.typical_p), "epsilon_cutoff": float(settings.epsilon_cutoff),
            "eta_cutoff": float(settings.eta_cutoff), "top_h": float(settings.top_h) if settings.top_h > 0 else None}


def describe_more(settings: SamplingSettings) -> list[str]:
    """Short labels of the "more samplers" that are on, e.g. ["typical 0.9", "ε 0.0003"] (titles, rows)."""
    s = settings
    parts = [f"no-repeat {s.no_repeat_ngram_size}-gram"] if s.no_repeat_ngram_size else []
    parts += [f"{len(s.bias_dict)} biased sequence{'' if len(s.bias_dict) == 1 else 's'}"] if s.sequence_bias else []
    parts += [f"{len(s.bad_words_ids)} banned sequence{'' if len(s.bad_words_ids) == 1 else 's'}"] \
        if s.bad_words_ids else []
    if not s.greedy:
        parts += [f"top-h {s.top_h:g}"] if s.top_h > 0 else []
        parts += [f"typical {s.typical_p:g}"] if s.typical_p < 1 else []
        parts += [f"ε {s.epsilon_cutoff:g}"] if s.epsilon_cutoff > 0 else []
        parts += [f"η {s.eta_cutoff:g}"] if s.eta_cutoff > 0 else []
    return parts


def penalty_and_more(settings: SamplingSettings) -> list[str]:
    """describe_more with the repetition penalty first when it is on: at temperature 0, all that still shapes
    the scores before generate()'s argmax (a title or row says what greedy ran after)."""
    penalty = settings.repetition_penalty
    return ([f"repetition penalty {penalty:g}"] if penalty != 1 else []) + describe_more(settings)
