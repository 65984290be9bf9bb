"""The Decode tab's named API endpoints for gradio_client: /next_token, /generate, /beam_search.

Registration only; the payloads are built in playground/decode/views.py (documented in the README).
New parameters go last, with "off" defaults, so positional calls written for earlier versions still work.
"""

from __future__ import annotations

import gradio as gr

from playground.classroom.rooms import RoomHub
from playground.decode.beam import BeamSettings
from playground.decode.checks import check_int
from playground.decode.session import DecodeService
from playground.decode.views import api_beam_search, api_generate, api_next_token, settings_from_values
from playground.ui.errors import api_errors
from playground.ui.turns import presenter_first


def register_api(svc: DecodeService, rooms: RoomHub) -> None:
    """Named endpoints for gradio_client: /next_token, /generate, /beam_search (the presenter's go first)."""

    @api_errors
    def next_token(prompt: str, chat: bool = False, temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0,
                   min_p: float = 0.0, repetition_penalty: float = 1.0, top_n: int = 20, typical_p: float = 1.0,
                   epsilon_cutoff: float = 0.0, eta_cutoff: float = 0.0, top_h: float = 0.0,
                   no_repeat_ngram_size: int = 0, sequence_bias: str = "", banned_words: str = "") -> dict:
        """Next-token distribution: rows of token, id, prob (raw), after_temperature, top_p_input, final_prob,
        cumulative (running sum of top_p_input: what top-p cuts on), rank, kept, removed_by; plus
        cumulative_basis, entropy_bits, effective_choices, mass_kept, and `stages`: the waterfall, one entry
        per active stage in generate()'s order (name, description, kept_count, mass, raw_mass, removed_count,
        removed_ids, top). sequence_bias: "word=bias, …"; banned_words: "word, …"."""
        settings = settings_from_values(svc, temperature, top_k, top_p, min_p, repetition_penalty, typical_p,
                                        epsilon_cutoff, eta_cutoff, top_h, no_repeat_ngram_size, sequence_bias,
                                        banned_words)
        return api_next_token(svc, prompt, chat, settings, check_int("top_n", top_n, 1, 1000))

    @api_errors
    def generate(prompt: str, chat: bool = False, temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0,
                 min_p: float = 0.0, repetition_penalty: float = 1.0, max_new_tokens: int = 20,
                 seed: int = 0, typical_p: float = 1.0, epsilon_cutoff: float = 0.0, eta_cutoff: float = 0.0,
                 top_h: float = 0.0, no_repeat_ngram_size: int = 0, sequence_bias: str = "",
                 banned_words: str = "") -> dict:
        """Generate with these settings (same as model.generate with the seed): text and per-token probabilities."""
        settings = settings_from_values(svc, temperature, top_k, top_p, min_p, repetition_penalty, typical_p,
                                        epsilon_cutoff, eta_cutoff, top_h, no_repeat_ngram_size, sequence_bias,
                                        banned_words)
        return api_generate(svc, prompt, chat, settings, check_int("max_new_tokens", max_new_tokens, 1, 512),
                            check_int("seed", seed, 0, 2**32 - 1))

    @api_errors
    def beam_search(prompt: str, num_beams: int = 3, steps: int = 5, length_penalty: float = 1.0,
                    chat: bool = False) -> dict:
        """Beam search: generate()'s ranked sequences with scores, the greedy path, beam_vs_greedy
        (better / equal / worse in total probability), the text continued, and the search tree."""
        return api_beam_search(svc, prompt, chat, BeamSettings.from_values(num_beams, steps, length_penalty))

    gr.api(presenter_first(rooms, next_token), api_name="next_token")
    gr.api(presenter_first(rooms, generate), api_name="generate")
    gr.api(presenter_first(rooms, beam_search), api_name="beam_search")
