"""The public API is exactly the documented endpoint names: Gradio renames a clashing endpoint (`evaluate` →
`evaluate_1`) silently, which breaks every client, so the whole app's names are checked here."""

from __future__ import annotations

PUBLIC = {"load_model", "next_token", "generate", "beam_search", "logit_lens", "attention", "tokenize",
          "train_start", "train_status", "train_stop", "train_resume", "adapters", "adapter_activate",
          "adapter_delete", "adapter_mix", "compare", "evaluate", "evaluate_preference", "evaluate_rewards",
          "room_open", "room_join", "room_vote", "room_state", "room_reveal", "room_next", "room_close"}


def test_public_endpoints_keep_their_names(tiny_store):
    from playground.services import Services
    from playground.ui.app_ui import build_app

    demo = build_app(Services.create(tiny_store, tiny_store.settings.data_dir))
    public = {d["api_name"] for d in demo.get_config_file()["dependencies"]
              if d.get("api_name") and d.get("api_visibility") != "private"}
    assert public == PUBLIC
