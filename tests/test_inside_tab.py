"""The Inside tab's handlers, called directly on a tab built around the tiny Llama (2 layers, 4 heads)."""

from __future__ import annotations

import gradio as gr

from playground.services import Services
from playground.ui import inside_tab


def test_moving_a_slider_past_a_shallower_model_moves_the_slider_too(tiny_store):
    """After a switch to a shallower model the sliders still offered the old range: a move clamped the layer
    for the figure but left the slider on the old value, so the two disagreed."""
    services = Services.create(tiny_store, tiny_store.settings.data_dir)
    with gr.Blocks() as demo:
        inside_tab.build(services, gr.State())
    on_slice = next(f.fn for f in demo.fns.values() if f.name == "on_slice")
    out = on_slice((None, "The capital of France is", False), 7, 9)  # a 7th layer and 9th head: gone now
    layer, head = out[4], out[5]
    assert isinstance(layer, gr.Slider) and (layer.maximum, layer.value) == (2, 2)
    assert isinstance(head, gr.Slider) and (head.maximum, head.value) == (4, 4)
