"""Every state is a link: "Copy link" on the Decode and Compare tabs, and opening a link (or a lesson step,
which is the same query) restores that state. The query format and its checks are classroom/links.py; this
module only turns a query into component updates and the components back into a URL.

`apply_query(services, query, session_value)` returns one update per component of `link_outputs(targets)`,
in that order: the top tabs, the notes line, this browser's adapter choice, then the Decode tab's controls
and views, then the Compare tab's message and settings. What a link does not touch is `gr.skip()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.classroom.links import (
    BASE,
    COMPARE_KEYS,
    SILENT,
    TEXT_KNOBS,
    PageState,
    from_query,
    steps_of,
)
from playground.decode.beam import BeamSettings
from playground.decode.session import DecodeService, StepState, chosen_from_distribution, context_limit
from playground.decode.views import KNOB_NAMES, beam_run, explorer_figures, settings_from_values, template_view
from playground.fsutil import markdown_literal
from playground.services import Services
from playground.ui.compare_tab import note_of_controls
from playground.ui.decode_handlers import view_updates
from playground.ui.errors import USER_ERRORS
from playground.ui.link_parts import CompareParts, DecodeParts
from playground.ui.session_adapter import adapter_of, decode_for, pick

PRIVATE = dict(api_visibility="private")
VIEW_OF_LABEL = {"Next token": "next", "Beam search": "beam", "Temperature & strategies": "explore"}
# Before the Decode copy handler: the selected sub-tab's label replaces the last input (the link box's value).
VIEW_LABEL_JS = """(...args) => {
  const tab = document.querySelector('#decode-views [role="tab"][aria-selected="true"]');
  args[args.length - 1] = tab ? tab.textContent.trim() : '';
  return args;
}"""


def copy_js(box_id: str) -> str:
    """After the handler: the link on this page's own address (proxies, root paths), to the clipboard when the
    browser allows it (not over plain http on a LAN), else selected in the box for Ctrl+C. Never fails."""
    return f"""(url) => {{
  if (!url) return url;
  const q = url.indexOf('?');
  const full = location.origin + location.pathname + (q >= 0 ? url.slice(q) : '');
  const select = () => {{
    const box = document.querySelector('#{box_id} textarea, #{box_id} input');
    if (!box) return;
    box.focus(); box.select();
    try {{ document.execCommand('copy'); }} catch (e) {{}}
  }};
  try {{
    if (navigator.clipboard && window.isSecureContext)
      navigator.clipboard.writeText(full).catch(() => setTimeout(select, 50));
    else setTimeout(select, 50);
  }} catch (e) {{ setTimeout(select, 50); }}
  return full;
}}"""


@dataclass
class LinkTargets:
    """Every component a link sets: the top gr.Tabs, the notes Markdown, the adapter State, and the
    parts decode_tab.build and compare_tab.build return."""

    tabs: gr.Tabs
    notes: gr.Markdown
    session: gr.State
    decode: DecodeParts
    compare: CompareParts


def decode_outputs(d: DecodeParts) -> list[Any]:
    return [d.prompt, d.chat, *d.knobs, d.seed, d.top_n, *d.view_out, d.notice, d.template, d.views, d.beams,
            d.beam_steps, d.length_penalty, *d.beam_out, *d.explore_out]


def link_outputs(t: LinkTargets) -> list[Any]:
    """The outputs of apply_query, in its order."""
    return [t.tabs, t.notes, t.session, *decode_outputs(t.decode), t.compare.message, *t.compare.settings,
            t.compare.note]


DECODE_OUTPUTS = 2 + len(KNOB_NAMES) + 2 + 7 + 2 + 1 + 3 + 5 + 2
COMPARE_OUTPUTS = len(COMPARE_KEYS) + 1  # the keys' controls, then the settings note


def vocab_size(svc: DecodeService) -> int:
    """How many token ids the model scores (its logits' length)."""
    lm = svc.store.current
    cfg = lm.base_model.config
    cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    size = getattr(cfg, "vocab_size", None)
    return int(size) if isinstance(size, int) and size > 0 else len(lm.tokenizer)


def _stepped(svc: DecodeService, page: PageState, chat: bool, settings: Any, notes: list[str]) -> StepState | None:
    """The prompt with the link's tokens appended, each recorded from its distribution exactly as stepping
    records it (same probabilities, so the same colours); None when the prompt itself cannot be shown."""
    try:
        st = StepState(prompt=svc.encode(page.prompt or "", chat))
    except USER_ERRORS as err:
        notes.append(f"The link's prompt could not be shown: {err}")
        return None
    steps = page.steps or ()
    limit = context_limit(svc.store.current)
    if len(st.ids) + len(steps) > limit:
        notes.append(f"The link's steps were ignored: the prompt ({len(st.ids)} tokens) plus {len(steps)} steps "
                     f"is more than the model's context of {limit} tokens.")
        return st
    grown, tokenizer = st, svc.tokenizer()
    try:
        for how, token_id in steps:
            dist = svc.distribution(grown.ids, settings, grown.session_id)
            if token_id >= dist.final_probs.numel():
                raise ValueError(f"token id {token_id} is outside this model's vocabulary of "
                                 f"{dist.final_probs.numel():,} tokens.")
            grown = grown.append(chosen_from_distribution(dist, tokenizer, token_id, how))
    except USER_ERRORS as err:
        notes.append(f"The link's steps were ignored: {err}")
        return st
    return grown


def _decode_updates(services: Services, page: PageState, session_value: Any, notes: list[str]) -> list[Any]:
    if not page.touches_decode:
        return [gr.skip()] * DECODE_OUTPUTS
    values = page.decode_values()
    knobs = list(page.knob_values())
    view: list[Any] = [gr.skip()] * 9
    beam: list[Any] = [gr.skip()] * 5
    explore: list[Any] = [gr.skip()] * 2
    if page.prompt is not None:
        svc = decode_for(services, session_value)
        try:
            settings = settings_from_values(svc, *knobs)
        except USER_ERRORS as err:  # the words in sequence_bias / banned_words: checked with this tokenizer
            notes.append(f"The link's sequence_bias and banned_words were ignored: {err}")
            for key in TEXT_KNOBS:
                knobs[KNOB_NAMES.index(key)] = ""
            settings = settings_from_values(svc, *knobs)
        st = _stepped(svc, page, values["chat"], settings, notes)
        if st is not None:
            view = [*view_updates(svc, settings, st, values["top_n"]), st.prompt.notice, template_view(svc, st)]
            try:
                if values["view"] == "beam":
                    summary, figure, rows, paths = beam_run(svc, st, BeamSettings.from_values(
                        values["beams"], values["beam_steps"], values["length_penalty"]))
                    beam = [summary, figure, rows, paths, gr.Dropdown(choices=paths.choices(), value=None)]
                elif values["view"] == "explore":
                    explore = list(explorer_figures(svc, st, settings))
            except USER_ERRORS as err:
                notes.append(f"The link's {values['view']} view could not be run: {err}")
    prompt = page.prompt if page.prompt is not None else gr.skip()
    return [prompt, values["chat"], *knobs, values["seed"], values["top_n"], *view,
            gr.Tabs(selected=f"decode-{values['view']}"), values["beams"], values["beam_steps"],
            values["length_penalty"], *beam, *explore]


def _compare_updates(page: PageState) -> list[Any]:
    if not page.touches_compare:
        return [gr.skip()] * COMPARE_OUTPUTS
    v = page.compare_values()
    settings = [v[k] for k in COMPARE_KEYS[1:]]  # in the tab's order: system, temperature, ..., seed
    # The note is set with the values, not left to their .change events: a control inside a closed accordion
    # may not fire one for a value set this way, and the note would then describe settings no longer shown.
    return [page.message if page.message is not None else gr.skip(), *settings, note_of_controls(settings)]


def apply_query(services: Services, query: Mapping[str, Any], session_value: Any) -> tuple[Any, ...]:
    """Restore the state a link (or a lesson step) describes: one update per component of link_outputs, in
    order. `query`: key -> value (strings from a URL; numbers and booleans are accepted too); `session_value`:
    this browser's adapter choice (the State's value). What was ignored is said in the notes line and
    as a gr.Warning; a bad link never raises."""
    page, notes = from_query(query, vocab_size(services.decode), services.adapters.library.names())
    session_out: Any = gr.skip()
    if page.adapter is not None:
        name = None if page.adapter == BASE else page.adapter
        try:
            session_value, _ = pick(services, name)
            session_out = session_value
        except USER_ERRORS as err:
            notes.append(f"The link's adapter '{name}' could not be activated: {err}")
    decode = _decode_updates(services, page, session_value, notes)
    tab = page.shown_tab
    text = " ".join(notes)
    if text:
        gr.Warning(text)
    # the notes quote what a link said, already HTML-escaped: a crafted key must not become a clickable link
    # or bold text in the notice line
    notice = f"⚠️ {markdown_literal(text)}" if text else ""
    return (gr.Tabs(selected=tab) if tab else gr.skip(), notice, session_out, *decode, *_compare_updates(page))


def _url(request: gr.Request | None, query: str) -> str:
    """The page's address with the query (the copy step puts it on window.location's own address)."""
    headers = getattr(request, "headers", None) or {}
    host = headers.get("x-forwarded-host") or headers.get("host") or "localhost"
    scheme = headers.get("x-forwarded-proto") or "http"
    return f"{scheme}://{host}/?{query}"


def wire(services: Services, demo: gr.Blocks, t: LinkTargets) -> None:
    """Opening the page applies its query; the two "Copy link" buttons write the current state as a link."""
    d, c = t.decode, t.compare

    def on_load(request: gr.Request, session_value: Any) -> tuple[Any, ...]:
        query = dict(getattr(request, "query_params", None) or {})
        if not set(query) - SILENT:  # a plain visit (or only other features' keys): nothing to restore
            return (gr.skip(),) * len(link_outputs(t))
        return apply_query(services, query, session_value)

    def on_copy_decode(request: gr.Request, session_value: Any, prompt: str, chat: bool, st: StepState | None,
                       seed: Any, top_n: Any, beams: Any, beam_steps: Any, lp: Any, *rest: Any) -> str:
        knobs, view_label = rest[:-1], rest[-1]  # the knobs, then the sub-tab's label (VIEW_LABEL_JS)
        named = {k: "" if v is None and k in TEXT_KNOBS else v for k, v in zip(KNOB_NAMES, knobs)}  # empty words
        text, use_chat = (st.prompt.text, st.prompt.chat) if st is not None else (prompt, bool(chat))
        page = PageState(tab="decode", prompt=text, chat=use_chat, **named, seed=seed,
                         top_n=top_n, steps=steps_of(st.chosen) if st is not None and st.chosen else None,
                         view=VIEW_OF_LABEL.get(view_label, "next"), beams=beams, beam_steps=beam_steps,
                         length_penalty=lp, adapter=adapter_of(services, session_value) or BASE)
        return _url(request, page.to_query())

    def on_copy_compare(request: gr.Request, session_value: Any, message: str, system: str, *values: Any) -> str:
        page = PageState(tab="compare", message=message or None, c_system=system or None,
                         **dict(zip(COMPARE_KEYS[2:], values)), adapter=adapter_of(services, session_value) or BASE)
        return _url(request, page.to_query())

    # No concurrency limit: a plain visit returns at once instead of queueing behind another page's restore
    # (the model calls inside take the store's lock anyway).
    demo.load(on_load, [t.session], link_outputs(t), concurrency_limit=None, **PRIVATE)
    d.copy.click(on_copy_decode, [t.session, d.prompt, d.chat, d.state, d.seed, d.top_n, d.beams, d.beam_steps,
                                  d.length_penalty, *d.knobs, d.link], d.link, js=VIEW_LABEL_JS, **PRIVATE).then(
        None, d.link, d.link, js=copy_js("decode-link"), **PRIVATE)
    c.copy.click(on_copy_compare, [t.session, c.message, *c.settings], c.link, **PRIVATE).then(
        None, c.link, c.link, js=copy_js("pg-compare-link"), **PRIVATE)
