"""The training method (SFT, DPO or GRPO) and its settings, declared once as dataclass fields (keys in
playground.train.schema): the form, the coercion, the API overrides and the recipe defaults follow from them.

* SFT imitates answers (TRL's SFTTrainer).
* DPO prefers a chosen answer over a rejected one for the same prompt (TRL's DPOTrainer).
* GRPO samples several answers per prompt, scores them with built-in reward rules and moves towards the
  better ones (TRL's GRPOTrainer). The rules are picked and weighted here; no user code runs.

Every method can start from an adapter of the library instead of a new LoRA ("Start from adapter"). The
reference model of DPO (and of GRPO's KL term) is then TRL's own choice for a PeftModel: a frozen copy of the
starting adapter ("ref"); for a new adapter it is the base model with the adapter switched off.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import regex

from playground.data.reward_rules import rules_from_settings, word_list
from playground.train.schema import check_fields

Method = Literal["sft", "dpo", "grpo"]
METHODS = [("SFT: imitate the answers", "sft"), ("DPO: prefer chosen over rejected", "dpo"),
           ("GRPO: sample, score by rules, reinforce", "grpo")]
# TRL 1.16 DPOConfig.loss_type values (trl/trainer/dpo_config.py)
DPO_LOSSES = ["sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm"]
# The rows of the form each method shows (the others are hidden); see ui/train_method.py.
METHOD_ROWS = {"dpo": ["dpo", "lengths"], "grpo": ["grpo", "lengths", "reward-pig", "reward-length",
                                                   "reward-regex", "reward-words"]}
MAX_REGEX_CHARS = 200
REFERENCE_NOTE = ("Reference model: a new adapter is compared with the base model (adapter switched off); an adapter "
                  "you start from is compared with a frozen copy of its starting weights (TRL's own 'ref' adapter).")


def method_field(default: object, label: str, help: str, row: str, **meta: object):
    """A DPO / GRPO setting: in the form's training section, on a row that only its method shows (METHOD_ROWS)."""
    return field(default=default, metadata=dict(label=label, help=help, section="train", row=row, **meta))


@dataclass
class MethodSettings:
    method: Method = field(default="sft", metadata=dict(
        label="Method", help="SFT imitates answers; DPO learns from chosen/rejected pairs; GRPO from rewarded samples.",
        widget="radio", choices=METHODS, error="Method must be sft, dpo or grpo (got {value!r}).", section="data",
        row="method"))
    start_adapter: str = field(default="", metadata=dict(
        label="Start from adapter", help="Continue an adapter of the library (its LoRA shape is kept; the LoRA "
        "boxes below are then ignored). Empty = a new adapter.", widget="dropdown", choices=[""], open=True,
        section="lora", sticky=True))
    # ---- DPO
    beta: float = method_field(0.1, "DPO beta", "How far the model may move from the reference: lower = further "
                               "(0.1 typical).", "dpo", gt=0)
    loss_type: str = method_field("sigmoid", "DPO loss type", "TRL's DPO losses; sigmoid is the original DPO. "
                                  "exo_pair and robust get their papers' label smoothing (1e-3, 0.1).",
                                  "dpo", widget="dropdown", choices=DPO_LOSSES,
                                  error="Unknown DPO loss type {value!r}.")
    sft_weight: float = method_field(0.0, "SFT loss weight on chosen", "Adds TRL's 'sft' loss (the chosen answer's "
                                     "NLL) to the DPO loss with this weight, keeping answers fluent (RPO); 0 = pure "
                                     "DPO.", "dpo", ge=0)
    # TRL 1.16's DPOConfig has one cap, max_length (prompt + answer): a pair is cut there, at its end.
    max_prompt_length: int = method_field(128, "Max prompt length", "DPO: added to the max answer length, the sum "
                                          "caps prompt + answer (cut at the end; a pair whose prompt alone fills it "
                                          "is dropped). Prompts are not cut on their own.", "lengths", ge=8)
    max_completion_length: int = method_field(64, "Max answer length", "DPO: added to the max prompt length, the "
                                              "sum caps prompt + answer; GRPO: tokens sampled per answer.",
                                              "lengths", ge=1)
    # ---- GRPO
    num_generations: int = method_field(4, "Generations per prompt", "Answers sampled per prompt and compared with "
                                        "each other (≥ 2); the batch size counts answers, so it must be a multiple "
                                        "of this.", "grpo", ge=2)
    kl_beta: float = method_field(0.02, "KL beta", "Penalty for drifting from the reference (0 = none, and no KL is "
                                  "measured).", "grpo", ge=0)
    temperature: float = method_field(1.0, "Sampling temperature", "Of the sampled answers: higher = more varied.",
                                      "grpo", gt=0)
    sample_every: int = method_field(5, "Show samples every N steps", "Sampled answers with their rewards in the "
                                     "live view.", "grpo", ge=1)
    reward_pig_latin: float = method_field(1.0, "Reward: Pig Latin rule", "Weight (0 = off). Word accuracy of the "
                                           "answer against the rule's translation of the prompt (0–1).",
                                           "reward-pig", ge=0)
    reward_length: float = method_field(0.0, "Reward: length near a target", "Weight (0 = off). 1 at the target "
                                        "word count, falling to 0 at zero or twice the target.", "reward-length",
                                        ge=0)
    length_target: int = method_field(20, "Target length in words", "The word count the length reward aims for.",
                                      "reward-length", ge=1)
    reward_regex: float = method_field(0.0, "Reward: matches a pattern", "Weight (0 = off). 1 if the answer matches "
                                       "the regular expression, else 0.", "reward-regex", ge=0)
    regex: str = method_field("", "Pattern (regular expression)", r"Searched in the answer, e.g. ^[A-Z ]+!$ or \d+.",
                              "reward-regex")
    reward_words: float = method_field(0.0, "Reward: required / banned words", "Weight (0 = off). Share of the "
                                       "required words present, minus the share of banned words present (clipped "
                                       "to 0–1).", "reward-words", ge=0)
    must_include: str = method_field("", "Words that must appear", "Comma-separated, case-insensitive.",
                                     "reward-words")
    must_exclude: str = method_field("", "Words that must not appear", "Comma-separated, case-insensitive.",
                                     "reward-words")

    def validate(self, batch_size: int = 1, grad_accum: int = 1) -> None:
        self.validate_rewards()
        if self.method == "grpo" and (batch_size * grad_accum) % self.num_generations:
            raise ValueError(f"GRPO: batch size × gradient accumulation ({batch_size} × {grad_accum}) must be a "
                             f"multiple of the generations per prompt ({self.num_generations}), so every prompt "
                             "gets all its answers in one batch.")

    def validate_rewards(self) -> None:
        """The settings' ranges and, for GRPO, the rewards (what scoring answers needs; no batch sizes)."""
        check_fields(self, "tuning")
        if self.method != "grpo":
            return
        if not rules_from_settings(dataclasses.asdict(self)):
            raise ValueError("GRPO needs at least one reward with a weight above 0.")
        if self.reward_regex > 0:
            check_regex(self.regex)
        if self.reward_words > 0 and not (word_list(self.must_include) or word_list(self.must_exclude)):
            raise ValueError("The word reward is on but no required or banned words are given.")

    def flat(self) -> dict[str, object]:
        """The settings that apply to this method (an adapter's playground.json records them)."""
        keep = {"sft": ("method", "start_adapter"),
                "dpo": ("method", "start_adapter", "beta", "loss_type", "sft_weight", "max_prompt_length",
                        "max_completion_length"),
                "grpo": tuple(f for f in self.__dataclass_fields__ if f not in ("beta", "loss_type", "sft_weight",
                                                                                   "max_prompt_length"))}
        return {k: getattr(self, k) for k in keep.get(self.method, ("method",))}


def check_regex(pattern: str) -> Any:
    """The pattern reward's regular expression, compiled; a ValueError naming the field if it is not one (re.error
    is not a ValueError). Compiled by `regex`, the engine that scores answers (reward_rules.score_regex), whose
    timeout stops a pattern that backtracks catastrophically, e.g. ^(a|aa)+$."""
    label = MethodSettings.__dataclass_fields__["regex"].metadata["label"]
    if not pattern.strip():
        raise ValueError(f"The pattern reward is on but the pattern is empty: fill in {label}.")
    if len(pattern) > MAX_REGEX_CHARS:
        raise ValueError(f"{label} is {len(pattern)} characters; at most {MAX_REGEX_CHARS}.")
    try:
        return regex.compile(pattern)
    except regex.error as err:
        raise ValueError(f"{label}: {pattern!r} is not a valid regular expression ({err}).") from None


def method_of(config: object) -> MethodSettings:
    """The method settings of a TrainJobConfig (SFT with defaults for configs written before methods existed)."""
    return getattr(config, "tuning", None) or MethodSettings()
