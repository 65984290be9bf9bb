"""The Decode tab's "More samplers" accordion, and the JS that turns a click on a beam-tree node into an event.

Layout only: the knobs' ranges and checks live in playground/decode/settings.py and decode/words.py.
"""

from __future__ import annotations

import gradio as gr

from playground.ui.inputs import Slider

# A click on a marker of the beam tree (plotly) becomes a `select` event with {node_id} on this gr.HTML.
# Plotly drops its listeners whenever Gradio redraws the tree, so after any change under the tree the one
# handler is (re)attached: removed first, so it is never there twice.
TREE_CLICK_JS = """
const onClick = (ev) => {
  const p = ((ev && ev.points) || []).find(q => Array.isArray(q.customdata) && q.customdata.length > 6);
  if (p) trigger('select', {node_id: Number(p.customdata[6])});
};
const bind = () => {
  const gd = document.querySelector('#decode-tree .js-plotly-plot');
  if (!gd || typeof gd.on !== 'function') return;
  if (typeof gd.removeListener === 'function') gd.removeListener('plotly_click', onClick);
  gd.on('plotly_click', onClick);
};
new MutationObserver(bind).observe(document.body, {childList: true, subtree: true});
bind();
"""


def more_samplers() -> tuple[list[gr.Slider], list[gr.Textbox]]:
    """The accordion: typical-p, epsilon and eta cutoffs, top-h, no-repeat n-gram (sliders, in KNOB_NAMES
    order) and sequence bias, banned words (text boxes). Everything starts off."""
    with gr.Accordion("More samplers: typical-p, ε / η cutoffs, top-h, no-repeat n-gram, sequence bias, "
                      "banned words", open=False, elem_id="decode-more"):
        with gr.Row():
            typical = Slider(0.01, 1, value=1.0, step=0.01, label="typical-p (1 = off)", elem_id="decode-typical",
                                info="keeps tokens whose surprise is close to the entropy, up to this mass")
            epsilon = Slider(0, 0.05, value=0.0, step=0.0001, label="epsilon cutoff (0 = off)",
                                elem_id="decode-epsilon", info="removes tokens below this probability")
            eta = Slider(0, 0.05, value=0.0, step=0.0001, label="eta cutoff (0 = off)", elem_id="decode-eta",
                            info="like epsilon, but the cutoff shrinks when the entropy is high")
            top_h = Slider(0, 1, value=0.0, step=0.05, label="top-h (0 = off)", elem_id="decode-top-h",
                              info="keeps top tokens while their entropy stays under this share")
            ngram = Slider(0, 10, value=0, step=1, label="no-repeat n-gram size (0 = off)",
                              elem_id="decode-no-repeat", info="bans a token that would repeat an n-gram")
        with gr.Row():
            bias = gr.Textbox(label="sequence bias (word=bias, …; Enter to apply)", elem_id="decode-bias",
                              placeholder="Paris=-5, London=3",
                              info="adds to the word's logit; each word as typed and with a leading space")
            banned = gr.Textbox(label="banned words (word, …; Enter to apply)", elem_id="decode-banned",
                                placeholder="Paris, London",
                                info="the word's last token can never follow the rest of it")
    return [typical, epsilon, eta, top_h, ngram], [bias, banned]
