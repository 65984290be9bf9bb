"""Presenter mode: large type and a high-contrast theme for a projector, the Decode tab's advanced controls
folded away, keyboard shortcuts on the Decode tab (with a legend), and charts that animate between states.

Everything happens in the browser: a class on the page root (`<html class="pg-presenter">`) switches the CSS
on, and one script (in the page's <head>) reads `?presenter=1|0`, keeps the class, handles the keys and draws
the plotly charts. The header's checkbox only runs JS (no server round trip).

Why the charts need the script: gradio 6's Plot wraps its plotly div in a `{#key}` block that changes with
every new figure, so each update lands on a *fresh* div and Plotly.react falls back to newPlot, which never
animates. In presenter mode the script wraps Plotly.react: on such a fresh div it first draws the figure that
was on screen, then reacts to the new one, so plotly runs the figure's `layout.transition` (set by the
Decode charts' builders) and the bars move (see `steps` for the y axes). It also scales every font, margin and the height by FONT_SCALE
through the layout (not CSS), so plotly lays out the bigger labels itself and nothing is clipped.
"""

from __future__ import annotations

import json

import gradio as gr

FONT_SCALE = 1.35
TOGGLE_ID = "pg-presenter-toggle"
# The Decode tab's advanced parts, hidden in presenter mode (they stay in the page: the values still apply).
FOLDED = ("#decode-more", "#decode-template-box", "#decode-top-n", "#decode-seed")
KEYS = (("g", "greedy step"), ("s", "sample"), ("u / ⌫", "undo"), ("r", "reset"), ("→ / n", "next example"),
        ("← / p", "previous example"), ("?", "hide these keys"))

# High contrast over the light theme: gradio's theme variables (declared on :root) overridden on the root,
# and on `.dark` so a dark system theme does not mix in pale text. Inline sizes (the token text) need !important.
CSS = """
html.pg-presenter, html.pg-presenter .dark {
  --text-xxs: 12px; --text-xs: 14px; --text-sm: 16px; --text-md: 19px; --text-lg: 22px; --text-xl: 30px;
  --text-xxl: 35px;
  --body-background-fill: #ffffff; --background-fill-primary: #ffffff; --background-fill-secondary: #f3f4f6;
  --block-background-fill: #ffffff; --panel-background-fill: #ffffff; --input-background-fill: #ffffff;
  --body-text-color: #000000; --body-text-color-subdued: #1f2937; --block-info-text-color: #1f2937;
  --block-label-text-color: #000000; --block-title-text-color: #000000; --block-label-background-fill: #ffffff;
  --accordion-text-color: #000000; --table-text-color: #000000; --checkbox-label-text-color: #000000;
  --link-text-color: #1d4ed8; --border-color-primary: #1f2937; --block-border-color: #1f2937;
  --block-border-width: 2px; --input-border-color: #1f2937; --input-border-width: 2px;
  --table-border-color: #1f2937; --checkbox-border-color: #1f2937; --checkbox-border-width: 2px;
  --button-secondary-background-fill: #e5e7eb; --button-secondary-text-color: #000000;
  --button-secondary-border-color: #1f2937; --button-border-width: 2px;
  --button-primary-background-fill: #1d4ed8; --button-primary-border-color: #1e3a8a;
}
html.pg-presenter body { background: #ffffff; color: #000000; }
html.pg-presenter .pg-decode-text { font-size: 24px !important; line-height: 1.8 !important; }
html.pg-presenter .pg-decode-text span[title=prompt] { color: #374151 !important; }
html.pg-presenter .pg-legend { font-size: 16px !important; color: #000000 !important; }
html.pg-presenter .pg-mono textarea { font-size: 16px !important; }
html.pg-presenter .pg-alts { font-size: 16px; }
html.pg-presenter th span.header { word-break: keep-all !important; overflow-wrap: normal !important; }
/* The distribution chart takes the full width, its stats and table go under it: the chart is what the room
   watches, and the table's headers fit at the large size. */
html.pg-presenter .row:has(> #decode-chart) { flex-direction: column; }
%FOLDED% { display: none !important; }
#pg-keys { display: none; position: fixed; right: 12px; bottom: 12px; z-index: 1000; max-width: 240px;
  background: #ffffff; color: #000000; border: 2px solid #000000; border-radius: 8px; padding: 8px 12px;
  font: 15px/1.5 ui-sans-serif, system-ui, sans-serif; box-shadow: 0 2px 10px rgba(0, 0, 0, 0.25); }
html.pg-presenter:not(.pg-keys-hidden) #pg-keys { display: block; }
#pg-keys kbd { display: inline-block; min-width: 3.2em; font-family: ui-monospace, monospace; font-weight: 700; }
"""

# %START_ON%: the server's default (--presenter); ?presenter=1|0 wins over it.
JS = """
(() => {
  const root = document.documentElement, SCALE = %SCALE%, KEYS = %KEYS%;
  const q = new URLSearchParams(location.search).get('presenter');
  const initial = q === null ? %START_ON% : ['1', 'true', 'on', 'yes'].includes(q.toLowerCase());
  const on = () => root.classList.contains('pg-presenter');
  const last = new Map();  // chart id -> the figure last drawn there (JSON): where the next animation starts
  let react = null;        // plotly's own Plotly.react

  // Fonts, margins and height scaled in the figure itself, so plotly makes room for the bigger labels.
  function enlarge(fig) {
    const walk = (o) => {
      if (!o || typeof o !== 'object') return;
      if (Array.isArray(o)) { if (o.length && typeof o[0] === 'object') o.forEach(walk); return; }
      for (const [k, v] of Object.entries(o)) {
        if (/font$/i.test(k) && v && typeof v === 'object' && !Array.isArray(v)) {
          if (typeof v.size === 'number') v.size = Math.round(v.size * SCALE);
          else if (Array.isArray(v.size)) v.size = v.size.map(s => Math.round(s * SCALE));
        }
        walk(v);
      }
    };
    walk(fig.data); walk(fig.layout);
    const L = fig.layout;
    L.font = L.font || {};
    if (typeof L.font.size !== 'number') L.font.size = Math.round(12 * SCALE);  // plotly's default, scaled
    for (const side of ['l', 'r', 't', 'b']) if (L.margin && typeof L.margin[side] === 'number')
      L.margin[side] = Math.round(L.margin[side] * SCALE);
    if (typeof L.height === 'number') L.height = Math.round(L.height * SCALE);
    return fig;
  }
  const chartId = (el) => {  // the gr.Plot's elem_id: the same for every div gradio makes there
    const host = el.parentElement && el.parentElement.closest('[id]');
    return host && host.id;
  };

  function wrapped(gd, data, layout, config) {
    const el = typeof gd === 'string' ? document.getElementById(gd) : gd;
    if (!el || !Array.isArray(data)) return react(gd, data, layout, config);
    el._pgFig = JSON.stringify({data, layout: layout || {}});  // as given, to redraw when the mode changes
    // gradio first hands the new figure to the old div, which it then throws away: a transition started
    // there dies with it (plotly raises on the removed div), so a div that already has a plot never animates.
    const fresh = !el._fullLayout;
    const shown = on() ? enlarge(JSON.parse(el._pgFig)) : {data, layout: Object.assign({}, layout)};
    if (!fresh || !on()) {
      delete shown.layout.transition;
      return react(el, shown.data, shown.layout, config);
    }
    const id = chartId(el), before = id && last.get(id);
    if (id) last.set(id, JSON.stringify(shown));
    if (before && shown.layout.transition) {  // draw what was on screen, then react to the new state
      const prev = JSON.parse(before);
      if (prev.data.length === shown.data.length) {
        // Later calls pass no config: plotly would rebuild its context and forget that the div had no
        // height of its own (`_hasZeroHeight`); gradio's Plots.resize then drops the layout's height and
        // the next redraw collapses the chart to 0 px.
        let done = Promise.resolve(react(el, prev.data, prev.layout, config));
        for (const step of steps(prev, shown))  // each resolves when its transition is over
          done = done.then(() => (el.isConnected ? react(el, step.data, step.layout) : null));
        return done;
      }
    }
    return react(el, shown.data, shown.layout, config);
  }
  // Plotly animates either the axes or the traces of a subplot, never both at once: with a new y range the
  // bars would only snap at the end. So the axes zoom out to hold both states, then the bars move (the
  // probability mass, at a fixed scale), then the axes zoom in; a step with nothing to do is left out.
  function steps(prev, next) {
    const wide = JSON.parse(JSON.stringify(next.layout));
    let grows = false, shrinks = false;
    for (const k of Object.keys(next.layout).filter(k => /^yaxis[0-9]*$/.test(k))) {
      const a = (prev.layout[k] || {}).range, b = next.layout[k].range;
      if (!Array.isArray(a) || !Array.isArray(b)) continue;
      const r = [Math.min(a[0], b[0]), Math.max(a[1], b[1])];
      wide[k].range = r;
      grows = grows || r[0] !== a[0] || r[1] !== a[1];
      shrinks = shrinks || r[0] !== b[0] || r[1] !== b[1];
    }
    const zoomOut = JSON.parse(JSON.stringify(prev.layout));
    for (const k of Object.keys(wide)) if (/^yaxis[0-9]*$/.test(k) && zoomOut[k]) zoomOut[k].range = wide[k].range;
    return [...(grows ? [{data: prev.data, layout: zoomOut}] : []), {data: next.data, layout: wide},
            ...(shrinks ? [next] : [])];
  }
  function patch(P) {
    if (!P || P.__pgPatched || typeof P.react !== 'function') return;
    react = P.react.bind(P);
    P.react = wrapped;
    P.__pgPatched = true;
  }
  // gradio loads plotly lazily and assigns window.Plotly: catch that moment (or patch it if already there).
  if (window.Plotly) patch(window.Plotly);
  else {
    let value;
    Object.defineProperty(window, 'Plotly', {configurable: true, get: () => value,
                                             set: (v) => { value = v; patch(v); }});
  }
  function redrawAll() {  // the charts already on screen, at the new size, without animating
    if (!react) return;
    last.clear();
    document.querySelectorAll('.js-plotly-plot').forEach((el) => {
      if (!el._pgFig || !el._fullLayout) return;
      const fig = JSON.parse(el._pgFig);
      const shown = on() ? enlarge(fig) : fig;
      const id = chartId(el);
      if (on() && id) last.set(id, JSON.stringify(shown));
      delete shown.layout.transition;
      react(el, shown.data, shown.layout);  // no config: see above
    });
  }
  function set(flag) {
    if (on() === !!flag) return;
    root.classList.toggle('pg-presenter', !!flag);
    redrawAll();
  }
  root.classList.toggle('pg-presenter', initial);

  // Keys: only in presenter mode, only while the Decode tab's buttons are on screen, never while typing.
  const visible = (sel) => { const e = document.querySelector(sel); return e && e.getClientRects().length ? e : null; };
  const typing = (t) => !!t && (t.isContentEditable || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' ||
    (t.tagName === 'INPUT' && !/^(range|checkbox|radio|button|submit|reset)$/i.test(t.type)));
  const BUTTONS = {g: '#decode-greedy', s: '#decode-sample', u: '#decode-undo', backspace: '#decode-undo',
                   r: '#decode-reset'};
  let current = 0;  // the example last loaded (by key or click)
  document.addEventListener('click', (ev) => {
    const b = ev.target.closest && ev.target.closest('button[id^="decode-example-"]');
    if (b) current = Number(b.id.split('-').pop());
  }, true);
  function example(step) {
    const all = [...document.querySelectorAll('button[id^="decode-example-"]')];
    if (!all.length || !all[0].getClientRects().length) return false;
    const box = document.querySelector('#decode-prompt textarea');
    const at = all.findIndex(b => box && b.textContent.trim() === box.value.trim());  // the prompt is one
    current = ((at >= 0 ? at : current) + step + all.length) % all.length;
    all[current].click();
    return true;
  }
  window.addEventListener('keydown', (ev) => {
    if (!on() || ev.ctrlKey || ev.metaKey || ev.altKey || ev.defaultPrevented) return;
    const t = document.activeElement, k = ev.key.toLowerCase();
    if (typing(t)) return;
    let acted = false;
    if (k === '?') { root.classList.toggle('pg-keys-hidden'); acted = true; }
    else if (BUTTONS[k]) { const b = visible(BUTTONS[k]); if (b && !b.disabled) { b.click(); acted = true; } }
    else if (['arrowright', 'n', 'arrowleft', 'p'].includes(k)) {
      if (k.startsWith('arrow') && t && t.tagName === 'INPUT') return;  // a focused slider keeps its arrows
      acted = example(k === 'arrowright' || k === 'n' ? 1 : -1);
    }
    if (acted) { ev.preventDefault(); ev.stopImmediatePropagation(); }
  }, true);
  // The legend lives inside the Decode tab (fixed to the corner, so it shows only while that tab does and
  // never covers another tab's content); Gradio renders the tab after this script runs, so look for it.
  function legend() {
    const tab = document.querySelector('#decode-greedy');
    const host = tab && (tab.closest('.tabitem') || tab.closest('[role="tabpanel"]') || tab.parentElement);
    if (!host) return;
    let d = document.getElementById('pg-keys');
    if (d && host.contains(d)) return;
    if (!d) {
      d = document.createElement('div');
      d.id = 'pg-keys';
      d.setAttribute('role', 'note');
      d.innerHTML = '<b>Decode tab keys</b><br>' +
        KEYS.map(([k, what]) => `<kbd>${k}</kbd> ${what}`).join('<br>');
    }
    host.appendChild(d);
  }
  setInterval(legend, 500);
  window.pgPresenter = {initial, set, on};
})();
"""


def presenter_head(start_on: bool) -> str:
    """The <style> and <script> for `launch(head=...)`; `start_on` is the mode when the URL does not say."""
    keys = json.dumps(KEYS)
    script = (JS.replace("%START_ON%", "true" if start_on else "false")
              .replace("%SCALE%", repr(FONT_SCALE)).replace("%KEYS%", keys))
    folded = ", ".join(f"html.pg-presenter {sel}" for sel in FOLDED)
    return f"<style>{CSS.replace('%FOLDED%', folded)}</style>\n<script>{script}</script>"


def toggle(demo: gr.Blocks, start_on: bool) -> gr.Checkbox:
    """The header's "Presenter mode" checkbox. Changing it only runs JS; on load it takes the mode the page
    opened in (`?presenter=` or the server's default), so it always matches what is shown."""
    box = gr.Checkbox(label="Presenter mode", value=start_on, elem_id=TOGGLE_ID, container=False, scale=0,
                      min_width=170)
    box.change(None, box, None, api_visibility="private",
               js="(on) => { if (window.pgPresenter) window.pgPresenter.set(on); "
                  "else document.documentElement.classList.toggle('pg-presenter', on); }")
    demo.load(None, None, box, api_visibility="private",
              js=f"() => window.pgPresenter ? window.pgPresenter.initial : {json.dumps(start_on)}")
    return box
