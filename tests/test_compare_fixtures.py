"""The app the Compare browser tests share (one per test module): its data dir holds a random (non-identity)
LoRA adapter for the bundled model; and the page helpers those tests use."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import BUNDLED_DATA_DIR

ADAPTER = "random-lora"


def bundled_data_dir(prefix: str) -> Path:
    """A fresh data dir that reuses the bundled model's converted weights (symlinked, not converted again)."""
    data = Path(tempfile.mkdtemp(prefix=prefix))
    (data / "models").mkdir(parents=True)
    for d in (BUNDLED_DATA_DIR / "models").glob("*"):
        if d.is_dir() and not d.name.startswith("."):
            os.symlink(d, data / "models" / d.name)
    return data


def add_random_lora(data: Path, checkpoint: Path, name: str, seed: int = 0, scale: float = 1.0,
                    **meta: object) -> None:
    """A random (non-identity) q/v LoRA of the bundled model in <data>/adapters/<name>, built on a separate copy
    (the shared bundled store's model is never touched); `scale` multiplies its B matrices, `meta` adds to its
    playground.json."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from playground.model.sources import BUNDLED_NAME
    from playground.model.store import fingerprint_model

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    fingerprint = fingerprint_model(model)
    torch.manual_seed(seed)
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    with torch.no_grad():
        for param_name, param in peft.named_parameters():
            if "lora_B" in param_name:
                param.mul_(scale)
    folder = data / "adapters" / name
    peft.save_pretrained(folder)
    (folder / "playground.json").write_text(json.dumps({
        "name": name, "kind": "trained", "base_model": BUNDLED_NAME, "base_source": "bundled",
        "base_fingerprint": fingerprint, "dataset": {"name": "pig-latin", "rows": 694, "sha256": "0" * 64},
        "settings": {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}, **meta}))


@pytest.fixture(scope="module")
def adapter_data(bundled_checkpoint) -> Path:
    """A data dir with one random LoRA for the bundled model in <data>/adapters/, strong enough that the
    answers visibly differ."""
    data = bundled_data_dir("pg-compare-data-")
    add_random_lora(data, bundled_checkpoint, ADAPTER, scale=4.0,
                    loss_history=[{"step": i, "loss": 2.0 / i, "learning_rate": 2e-4, "grad_norm": 1.0}
                                  for i in (1, 2, 3)],
                    eval_history=[{"step": 3, "eval_loss": 1.1}], final_train_loss=0.67, final_eval_loss=1.1,
                    duration_s=12.0, created_at="2025-01-01T00:00:00+00:00", run_id="test")
    return data


@pytest.fixture(scope="module")
def adapter_app(start_app, adapter_data) -> str:
    return start_app(data_dir=adapter_data)


# Words of a table's header cells that the browser broke over two lines ("stat e", "ran k").
BROKEN_HEADER_WORDS = """el => {
  const bad = [];
  for (const th of el.querySelectorAll('th')) {
    const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      for (const m of n.data.matchAll(/\\S+/g)) {
        const r = document.createRange();
        r.setStart(n, m.index); r.setEnd(n, m.index + m[0].length);
        if ([...r.getClientRects()].filter(x => x.width > 0).length > 1) bad.push(m[0]);
      }
    }
  }
  return bad;
}"""


def last_answer(page, column: str, timeout: float = 60_000) -> str:
    """The last answer in a Compare column once the chatbot has drawn it: until the event ends the message shows
    Gradio's "Loading content" placeholder, which the diff (another component) may outrun."""
    sel = f"#{column} .bot"
    page.wait_for_function("""s => { const b = [...document.querySelectorAll(s)].pop();
        const t = b ? b.innerText.trim() : ''; return t !== '' && !t.includes('Loading content'); }""",
                           arg=sel, timeout=timeout)
    return page.locator(sel).last.inner_text().strip()


def pick(page, elem_id: str, option: str) -> None:
    """Choose an option of a Gradio dropdown the way a user does."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def wait_text(page, selector: str, text: str, present: bool = True, timeout: float = 60_000) -> None:
    """Wait until the element's visible text does (or does not) contain `text`."""
    page.wait_for_function("([s, t, p]) => (document.querySelector(s)?.innerText || '').includes(t) === p",
                           arg=[selector, text, present], timeout=timeout)


def options(page, elem_id: str) -> list[str]:
    """A dropdown's option names, read by opening it as a user does. A click that lands while the list is being
    redrawn (a library change reaching it) can leave it closed: close and open it again, up to 5 times."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(5):
        page.locator(f"#{elem_id} input").click()
        try:
            page.get_by_role("option").first.wait_for(timeout=12_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            if attempt == 4:
                raise
    names = [o.strip() for o in page.get_by_role("option").all_inner_texts()]
    page.keyboard.press("Escape")
    return names
