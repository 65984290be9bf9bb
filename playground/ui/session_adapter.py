"""A browser page's own adapter (adapters.session): the gr.State that holds it (another browser, e.g. the
projector, has its own), the header that shows it, and the services as that page sees them. Tabs take the
state and ask here, never the server."""

from __future__ import annotations

from typing import Any

import gradio as gr

from playground.adapters.library_ops import weights_stamp
from playground.adapters.session import AdapterChoice, AdapterView
from playground.decode.session import DecodeService
from playground.services import Services


def new_state() -> gr.State:
    """The page's adapter choice: follows the server's default until this page activates one. A gr.State, so
    it lasts as long as the page (a reload follows the server again); gr.BrowserState would keep it across
    reloads, but Gradio 6 re-sends its `change` every time the page re-renders it."""
    return gr.State(as_json(AdapterChoice()))


def as_json(choice: AdapterChoice) -> dict[str, Any]:
    return {"name": choice.name, "follow": choice.follow}


def session_value(value: Any) -> AdapterChoice:
    """The choice from the browser's stored value; anything unreadable (an old or edited value) = follow."""
    if isinstance(value, AdapterChoice):
        return value
    if isinstance(value, dict) and isinstance(value.get("follow", True), bool):
        name = value.get("name")
        return AdapterChoice(name=name if isinstance(name, str) and name else None, follow=value.get("follow", True))
    return AdapterChoice()


def view_for(services: Services, value: Any) -> AdapterView | None:
    """The model as this browser sees it; None when it follows the server (no switch needed)."""
    choice = session_value(value)
    if choice.follow:
        return None
    return services.adapters.view(choice.name)


def decode_for(services: Services, value: Any) -> DecodeService:
    return services.decode.seen_by(view_for(services, value))


# What an adapter dropdown's empty value means there, shown as its label (a bare "" showed as an empty "✓" row)
THIS_BROWSERS = "(this browser's adapter)"  # the evaluations: the adapter this browser runs
NO_THIRD = "(none)"                         # Compare's third column: no third column
NEW_ADAPTER = "(a new adapter)"             # Train's Start from adapter: train a new one


def empty_choice(label: str) -> list[tuple[str, str]]:
    return [(label, "")]


def adapter_list(names: list[str], current: str | None, empty: str = THIS_BROWSERS) -> Any:
    """An adapter dropdown's update: "" (labelled `empty`) and the library's `names`. A pick that still
    exists is left alone, because the user may have changed it since the event that redraws the list fired; a
    removed one is cleared."""
    choices = [*empty_choice(empty), *names]
    return gr.update(choices=choices) if current in ("", *names) else gr.update(choices=choices, value="")


def adapter_of(services: Services, value: Any) -> str | None:
    """The adapter this browser runs (None = the base)."""
    return session_value(value).resolve(services.adapters.active())


def own_adapter(services: Services, value: Any, picked: str | None, nothing: str) -> str:
    """`picked` (a form's own adapter field) when filled in, else this browser's adapter: never the server's
    default when this browser chose the base. A ValueError saying `nothing` when there is neither."""
    name = (picked or "").strip() or adapter_of(services, value)
    if not name:
        raise ValueError(nothing)
    return name


def model_key(services: Services, value: Any) -> str:
    """What this browser's model answers with: the base model's fingerprint and the adapter this browser runs (its
    own pick, or the server's it follows) with its weights file's stamp (a retrained one changes it). Views
    redraw when it changes."""
    name = adapter_of(services, value)
    stamp: Any = ""
    if name:
        try:
            stamp = weights_stamp(services.adapters.library.folder(name))
        except (OSError, ValueError):  # deleted meanwhile: still_there sends the browser back to the base
            stamp = "gone"
    return f"{services.store.current.fingerprint}|{name}|{stamp}"


def header_text(services: Services, value: Any) -> str:
    return services.store.header_markdown(session_value(value).label(services.adapters.active()))


def still_there(services: Services, value: Any) -> tuple[Any, str]:
    """After a library or model change: a session whose own adapter was renamed follows the new name; one whose
    adapter was deleted (by anyone) or no longer fits the loaded base (a Model-tab switch) goes back to the base.
    Either way the user is told. Returns (the new choice, or gr.skip() when it stands: writing back the value
    read when this event started would undo an activation that finished meanwhile; the header)."""
    choice = session_value(value)
    if choice.follow or not choice.name:
        return gr.skip(), header_text(services, choice)
    name, adapters = choice.name, services.adapters
    if name not in adapters.library.names():
        new = adapters.renamed_to(name)
        if new is not None:
            gr.Info(f"The adapter '{name}' this browser is using was renamed to '{new}': this browser uses it "
                    "under its new name.")
            return _moved(services, AdapterChoice.pick(new))
        gr.Warning(f"The adapter '{name}' this browser was using was deleted from the library: "
                   "this browser is back on the base model.")
        return _moved(services, AdapterChoice.pick(None))
    problem = adapters.unfit(name)
    if problem is not None:
        gr.Warning(f"The adapter '{name}' this browser was using does not fit the loaded base model ({problem}): "
                   "this browser is back on the base model.")
        return _moved(services, AdapterChoice.pick(None))
    return gr.skip(), header_text(services, choice)


def _moved(services: Services, choice: AdapterChoice) -> tuple[dict[str, Any], str]:
    return as_json(choice), header_text(services, choice)


def pick(services: Services, name: str | None) -> tuple[dict[str, Any], str]:
    """This browser activates `name` (None = base): checked and loaded, the server's default untouched.
    Returns (the value to store in the browser, a status sentence)."""
    if not name:
        return as_json(AdapterChoice.pick(None)), "Base model only in this browser: no adapter is active here."
    return as_json(AdapterChoice.pick(name)), services.adapters.activate(name, session_only=True)
