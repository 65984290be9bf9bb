"""What the step-through buttons do (Gradio-free): pick / sample / greedy one token, generate N, and which
text the beam search and strategy comparison continue.

Each takes the DecodeService and a StepState and returns the new state; the Decode tab only maps them onto
its components.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from playground.decode.checks import check_int
from playground.decode.sampling import SamplingSettings, greedy_token, sample_token
from playground.decode.session import DecodeService, StepState, chosen_from_distribution
from playground.decode.stream import GenerateRequest, stream_generate
from playground.fsutil import one_line

HOW = ("picked", "sampled", "greedy")
MAX_STEP_TOKENS = 200  # "Generate N tokens" in the tab (the /generate API allows more)
NO_STATE = "Show a next-token distribution first."
QUOTED = 40  # characters of a prompt quoted in a notice


@dataclass(frozen=True)
class Start:
    """Where a step button begins: the state to step from (None: the prompt box holds nothing usable, so
    nothing may be drawn) and the sentence for the tab's notice line ('' when there is nothing to say)."""

    state: StepState | None
    note: str = ""


def _quoted(text: str) -> str:
    return f"“{one_line(text, QUOTED)}”"


def start_from_box(svc: DecodeService, st: StepState | None, prompt_text: Any, chat: Any) -> Start:
    """The state Greedy / Sample / Generate / Reset continue. The text built so far while it was built from the
    prompt box as the box is now (same text, same chat flag); otherwise the box's prompt afresh: a learner who
    presses Greedy on a fresh page, or after editing the prompt, expects it to step from the prompt they see,
    and the note says when tokens built on an older prompt were dropped. A prompt that cannot be used (empty,
    no chat template) gives no state and the reason, for the notice line instead of an error over every view."""
    if st is not None and st.prompt.text == prompt_text and st.prompt.chat == bool(chat):
        current, note = for_current_model(svc, st)
        return Start(current, note or current.prompt.notice)
    try:
        fresh = StepState(prompt=svc.encode(prompt_text, chat))
    except ValueError as err:
        return Start(None, str(err))
    notes = [fresh.prompt.notice] if fresh.prompt.notice else []
    if st is not None:
        n = len(st.chosen)
        dropped = (f"; the {n} token{'s' * (n != 1)} chosen after {_quoted(st.prompt.text)} "
                   f"{'were' if n != 1 else 'was'} dropped" if n else "")
        what = "prompt was edited" if st.prompt.text != fresh.prompt.text else "chat box was switched"
        notes.insert(0, f"The {what}: this starts from the prompt {_quoted(fresh.prompt.text)} as it is now"
                        f"{dropped}.")
    return Start(fresh, " ".join(notes))


def state_for_prompt(svc: DecodeService, st: StepState | None, prompt_text: str, chat: bool) -> StepState:
    """The step-through state when it was built from this prompt box (same text, same chat flag), so beam
    search and the comparison continue the text built so far; otherwise a fresh state for the box's text."""
    if st is not None and st.prompt.text == prompt_text and st.prompt.chat == bool(chat):
        return for_current_model(svc, st)[0]
    return StepState(prompt=svc.encode(prompt_text, chat))


def for_current_model(svc: DecodeService, st: StepState) -> tuple[StepState, str]:
    """`st` as the model loaded now reads it, and a sentence when that changed it. Token ids mean text only under
    the tokenizer that made them: after a switch to a model that tokenizes the prompt differently, the old ids
    would be fed as other words, so the prompt is encoded again and the chosen tokens are dropped. An adapter
    change (same tokenizer) keeps everything: only the probabilities are drawn again."""
    again = svc.encode(st.prompt.text, st.prompt.chat)
    vocab = len(svc.tokenizer())
    if again.ids == st.prompt.ids and all(c.token_id < vocab for c in st.chosen):
        return st, ""
    n = len(st.chosen)
    dropped = f"; the {n} token{'s' * (n != 1)} chosen under the previous model dropped" if n else ""
    return StepState(prompt=again), f"The model changed: the prompt was tokenized again for it{dropped}."


def choose(svc: DecodeService, st: StepState | None, settings: SamplingSettings, how: str,
           token_id: Any = None, seed: Any = 0) -> StepState:
    """Append one token: `picked` (token_id), `sampled` (seeded per step) or `greedy` (argmax)."""
    if st is None:
        raise ValueError(NO_STATE)
    if how not in HOW:
        raise ValueError(f"how must be one of {', '.join(HOW)}; got {how!r}.")
    dist = svc.distribution(st.ids, settings, st.session_id)
    if how == "picked":
        token = check_int("token id", token_id, 0, dist.final_probs.numel() - 1)
    elif how == "sampled":
        token = sample_token(dist, check_int("seed", seed, 0, 2**32 - 1), len(st.chosen))
    else:
        token = greedy_token(dist)
    return st.append(chosen_from_distribution(dist, svc.tokenizer(), token, how))


def generate_states(svc: DecodeService, st: StepState | None, settings: SamplingSettings, count: Any,
                    seed: Any) -> Iterator[StepState]:
    """Stream 'Generate N tokens': the state grows with every token generate() produces (so an Undo during
    the stream acts on what is shown); the last state yielded holds all of them."""
    if st is None:
        raise ValueError(NO_STATE)
    request = GenerateRequest(st.ids, settings, check_int("N", count, 1, MAX_STEP_TOKENS),
                              check_int("seed", seed, 0, 2**32 - 1))
    for tokens in stream_generate(svc.store, request):
        yield st.extend(tokens)
