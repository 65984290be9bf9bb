"""What the Beam search tab says about a BeamResult: the verdict sentence and the ranked table (Gradio-free).

Every number in one table column is on one scale: total probability and its log, and generate()'s ranking
score (sum of log-probs ÷ tokens^length_penalty) for the greedy row too.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any

from playground.decode.beam import BeamResult, RankedSequence

FINAL_HEADERS = ["rank", "sequence", "tokens", "total probability", "sum log-prob",
                 "score = sum log-prob ÷ tokens^lp (generate() ranks by this)"]
CONTEXT_CHARS = 400  # the continued text shown above the tree (its tail when longer)
# beam.py runs generate(num_beams=B, do_sample=False) with every processor off and expands the tree on raw
# log-softmax: the sliders above the tabs stay visible, so the tab must say they do nothing here.
RAW_SCORES = ("Beam search scores the model's raw log-probabilities: temperature, top-k, top-p, min-p, repetition "
              "penalty and *More samplers* are **not applied** here.")


def greedy_rank(result: BeamResult) -> int | None:
    """The rank of generate()'s beam with exactly greedy's tokens, or None when greedy's sequence is no beam."""
    if result.greedy is None:
        return None
    return next((i for i, seq in enumerate(result.final, start=1) if seq.token_ids == result.greedy.token_ids),
                None)


def listed_greedy(result: BeamResult) -> BeamResult:
    """`result` with greedy's sequence carrying its beam's numbers when it is one of generate()'s beams. One
    sequence has one probability: greedy's own pass and generate()'s batched beams can differ in the last bits
    (visibly in bf16: 0.000333 against 0.000347), which would read as two different results."""
    rank = greedy_rank(result)
    if rank is None:
        return result
    beam = result.final[rank - 1]
    assert result.greedy is not None
    return replace(result, greedy=replace(result.greedy, score=beam.score, sum_logprob=beam.sum_logprob))


def _distinct(a: float, b: float, spec: str, digits: int, different: bool) -> tuple[str, str]:
    """Format a and b with `digits` significant digits / decimals, more when they must read differently."""
    for d in range(digits, digits + 6):
        fa, fb = format(a, f".{d}{spec}"), format(b, f".{d}{spec}")
        if fa != fb or not different:
            break
    return fa, fb


def context_markdown(result: BeamResult, chosen: int = 0) -> str:
    """Which text the search continues, shown (its tail when long)."""
    text = result.context
    shown = text if len(text) <= CONTEXT_CHARS else "…" + text[-CONTEXT_CHARS:]
    source = (f"the prompt plus the {chosen} token{'' if chosen == 1 else 's'} chosen in *Next token*" if chosen
              else "the prompt")
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", shown)), default=0))
    b = result.settings  # said with the result: the sliders may have moved since the search ran
    used = f"beam width {b.num_beams}, {b.steps} steps, length penalty {b.length_penalty:g}"
    return f"**Continues** ({source}) · {used}:\n\n{fence}text\n{shown}\n{fence}"


def verdict_markdown(result: BeamResult) -> str:
    """Best beam vs greedy in total probability: better, equal (said as equal) or worse (and why)."""
    result = listed_greedy(result)
    verdict = result.beam_vs_greedy
    if verdict is None:
        return ""
    best, greedy = result.final[0], result.greedy
    assert greedy is not None
    lp = result.settings.length_penalty
    rank = greedy_rank(result)
    also = f" Greedy's sequence is beam {rank} in the table (marked “= greedy”)." if rank and rank > 1 else ""
    if verdict == "equal":
        p = f"{best.probability:.4g}"
        same = ("the best beam **is** greedy's sequence" if best.token_ids == greedy.token_ids
                else "the best beam and greedy's sequence differ but are **equally probable**")
        return (f"Best beam and greedy: total probability **{p}** (log-prob {best.sum_logprob:.4f}) each: {same}, "
                f"so beam search gains nothing over greedy here.{also}")
    pb, pg = _distinct(best.probability, greedy.probability, "g", 4, True)
    lb, lg = _distinct(best.sum_logprob, greedy.sum_logprob, "f", 4, True)
    head = (f"Best beam: total probability **{pb}** (log-prob {lb}); greedy: **{pg}** (log-prob {lg}). ")
    if verdict == "better":
        return head + (f"Beam search found a sequence **more probable** than greedy's "
                       f"(×{math.exp(best.sum_logprob - greedy.sum_logprob):.3g}).{also}")
    sb, sg = _distinct(best.score, greedy.score, "f", 4, True)
    if greedy.score <= best.score and lp != 0:
        why = (f"generate() ranks beams by score = sum log-prob ÷ tokens^{lp:g} (length penalty {lp:g}), not by "
               f"total probability, and the best beam scores {sb} against greedy's {sg}.")
    else:
        why = (f"greedy's sequence would even score higher ({sg} against {sb}), but beam search keeps only "
               f"{result.settings.num_beams} candidates per step and dropped the path greedy took.")
    return head + "Greedy's sequence is **more probable** than the best beam: " + why + also


def summary_markdown(result: BeamResult, chosen: int = 0) -> str:
    return context_markdown(result, chosen) + "\n\n" + RAW_SCORES + "\n\n" + verdict_markdown(result)


def cell_text(text: str) -> str:
    """A continuation for a table cell: newlines shown as ↵ (a table cell would swallow them)."""
    return text.replace("\r", "").replace("\n", "↵")


def _row(rank: Any, seq: RankedSequence) -> list[Any]:
    return [rank, cell_text(seq.text), len(seq.token_ids), f"{seq.probability:.4g}", round(seq.sum_logprob, 4),
            round(seq.score, 4)]


def final_rows(result: BeamResult) -> list[list[Any]]:
    """generate()'s beams best first, then the greedy path, every column on the same scale. The beam with
    greedy's tokens is marked "= greedy" and the greedy row repeats its numbers (listed_greedy)."""
    rank = greedy_rank(result)
    rows = [_row(f"{i} = greedy" if i == rank else i, seq) for i, seq in enumerate(result.final, start=1)]
    greedy = listed_greedy(result).greedy
    if greedy is not None:
        rows.append(_row("greedy", greedy))
    return rows
