"""The pipeline's stages: transformers' own LogitsProcessor classes, in the order generate() applies them.

Gradio-free. The order is `GenerationMixin._get_logits_processor` of transformers 5.23 for a decoder-only
model with one sequence: sequence bias → repetition penalty → no-repeat n-gram → banned words, then (only
when sampling) temperature → top-h → top-k → top-p → min-p → typical → epsilon → eta. A stage whose knob is
off is left out, exactly as generate() leaves it out; with temperature 0 (greedy) generate adds no warpers.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import (
    EpsilonLogitsWarper,
    EtaLogitsWarper,
    LogitsProcessor,
    LogitsProcessorList,
    MinPLogitsWarper,
    NoBadWordsLogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    SequenceBiasLogitsProcessor,
    TemperatureLogitsWarper,
    TopHLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from playground.decode.settings import SamplingSettings

# Why a token was removed (index into REMOVED_BY is stored per vocab entry); the first five keep their values.
KEPT, BY_TOP_K, BY_TOP_P, BY_MIN_P, BY_GREEDY, BY_NO_REPEAT, BY_BANNED, BY_TOP_H, BY_TYPICAL, BY_EPSILON, BY_ETA = \
    range(11)
REMOVED_BY = ("", "top-k", "top-p", "min-p", "greedy", "no-repeat", "banned", "top-h", "typical", "epsilon", "eta")
FILTER_CODE = {name: code for code, name in enumerate(REMOVED_BY) if name and name != "greedy"}
# Every stage name in generate()'s order ("greedy" is generate's argmax, shown after the processors).
ORDER = ("bias", "penalty", "no-repeat", "banned", "temperature", "top-h", "top-k", "top-p", "min-p", "typical",
         "epsilon", "eta", "greedy")
STAGE_LABEL = {"bias": "sequence bias", "penalty": "repetition penalty", "no-repeat": "no-repeat n-gram",
               "banned": "banned words", "temperature": "temperature", "top-h": "top-h", "top-k": "top-k"}
TOP_P_OR_LATER = ("top-p", "min-p", "typical", "epsilon", "eta")


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: its short name and the transformers processor that does it."""

    name: str
    processor: LogitsProcessor

    @property
    def filters(self) -> bool:
        """Can set tokens to -inf (removes them) rather than only reshape the scores."""
        return self.name in FILTER_CODE


def pipeline_stages(settings: SamplingSettings) -> list[Stage]:
    """The stages generate() would run for these settings, in its order; no-op stages are left out."""
    s = settings
    stages: list[Stage] = []
    if s.sequence_bias:
        stages.append(Stage("bias", SequenceBiasLogitsProcessor(
            sequence_bias=[[list(seq), float(b)] for seq, b in s.bias_dict.items()])))
    if s.repetition_penalty != 1.0:
        stages.append(Stage("penalty", RepetitionPenaltyLogitsProcessor(float(s.repetition_penalty))))
    if s.no_repeat_ngram_size > 0:
        stages.append(Stage("no-repeat", NoRepeatNGramLogitsProcessor(int(s.no_repeat_ngram_size))))
    if s.bad_words_ids:  # words typed as text never hold a lone end-of-text token (decode/words.py refuses it),
        # so generate()'s eos filtering of bad_words_ids changes nothing and eos_token_id can stay None here
        stages.append(Stage("banned", NoBadWordsLogitsProcessor([list(seq) for seq in s.bad_words_ids])))
    if s.greedy:
        return stages
    if s.temperature != 1.0:
        stages.append(Stage("temperature", TemperatureLogitsWarper(float(s.temperature))))
    if s.top_h > 0:
        stages.append(Stage("top-h", TopHLogitsWarper(top_h=float(s.top_h))))
    if s.top_k:
        stages.append(Stage("top-k", TopKLogitsWarper(int(s.top_k))))
    if s.top_p < 1.0:
        stages.append(Stage("top-p", TopPLogitsWarper(float(s.top_p))))
    if s.min_p > 0:
        stages.append(Stage("min-p", MinPLogitsWarper(float(s.min_p))))
    if s.typical_p < 1.0:
        stages.append(Stage("typical", TypicalLogitsWarper(mass=float(s.typical_p))))
    if 0.0 < s.epsilon_cutoff < 1.0:
        stages.append(Stage("epsilon", EpsilonLogitsWarper(epsilon=float(s.epsilon_cutoff))))
    if 0.0 < s.eta_cutoff < 1.0:
        stages.append(Stage("eta", EtaLogitsWarper(epsilon=float(s.eta_cutoff))))
    return stages


def build_processors(settings: SamplingSettings) -> LogitsProcessorList:
    """The LogitsProcessorList generate() would build for these settings."""
    return LogitsProcessorList(stage.processor for stage in pipeline_stages(settings))


def cumulative_basis(settings: SamplingSettings) -> str:
    """Which distribution the cumulative line sums: the one top-p cuts on, i.e. after the stages that run
    before top-p (e.g. "after temperature + top-k"), or "raw" when none of them is on."""
    before = [STAGE_LABEL[stage.name] for stage in pipeline_stages(settings) if stage.name in STAGE_LABEL]
    return "after " + " + ".join(before) if before else "raw"


def reshaped_by(settings: SamplingSettings) -> list[str]:
    """The stages behind Distribution.scaled_probs, in order: those that reshape rather than filter. Sampling
    always counts temperature (at 1 it changes nothing); greedy applies none."""
    names = [stage.name for stage in pipeline_stages(settings) if not stage.filters]
    return names + ["temperature"] if not settings.greedy and "temperature" not in names else names


def scaled_basis(settings: SamplingSettings) -> tuple[str, str]:
    """(short column header, words) for the scaled probabilities, e.g. ("after penalty + temp.",
    "after repetition penalty + temperature"); greedy without penalty or bias: the raw probabilities."""
    names = reshaped_by(settings)
    if not names:
        return "no temp. (greedy)", "no temperature (greedy)"
    short = {"bias": "bias", "penalty": "penalty", "temperature": "temp."}
    return ("after " + " + ".join(short[n] for n in names),
            "after " + " + ".join(STAGE_LABEL[n] for n in names))
