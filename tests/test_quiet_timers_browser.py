"""Polling draws nothing: the live views' gr.Timer ticks (a room's presenter and student pages, the Train tab)
must not flash Gradio's progress text ("0.2s", "queue: 1/1") over their outputs every tick, which on a projector
reads as something loading. A Timer's event drew it even with show_progress="hidden"; show_progress_on a State
hides it (tiny random Llama: fast)."""

from __future__ import annotations

import time

import pytest

# Every visible progress text on the page, by the id of the component it covers.
PROGRESS_JS = """() => { const out = {}; for (const el of document.querySelectorAll('.progress-text, .eta-bar')) {
    const r = el.getBoundingClientRect(); if (r.width > 0 && r.height > 0) {
    const host = el.closest('[id]'); out[host ? host.id : '?'] = el.innerText; } } return out; }"""


@pytest.fixture(scope="module")
def quiet_url(start_app, tiny_llama_dir, tmp_path_factory) -> str:
    return start_app("--model", str(tiny_llama_dir), data_dir=tmp_path_factory.mktemp("quiet"))


def progress_seen(page, seconds: float = 5.0) -> dict[str, str]:
    """The progress texts shown at any moment over `seconds` (ticks are 0.5-1.5 s apart), polled every 50 ms."""
    seen: dict[str, str] = {}
    end = time.time() + seconds
    while time.time() < end:
        seen.update(page.evaluate(PROGRESS_JS))
        page.wait_for_timeout(50)
    return seen


@pytest.mark.browser
def test_room_polling_draws_no_progress_on_the_projector_or_the_students_page(quiet_url, page, browser):
    page.goto(quiet_url)
    page.get_by_role("tab", name="Guess the next token").click()
    page.locator("#room-open").click()
    page.wait_for_selector("#pg-room-code")
    code = page.locator("#pg-room-code").inner_text().strip()
    page.locator("#room-status").get_by_text(f"Room {code}, round 1").wait_for()
    page.wait_for_timeout(1000)  # the open click's own progress has ended
    assert progress_seen(page) == {}
    ctx = browser.new_context()
    try:
        student = ctx.new_page()
        student.goto(f"{quiet_url}?room={code}")
        student.locator("#room-join-btn").click()
        student.get_by_text("which token will the model put next?").wait_for()
        student.wait_for_timeout(1000)
        assert progress_seen(student) == {}
    finally:
        ctx.close()


@pytest.mark.browser
def test_the_train_tabs_live_view_polls_without_drawing_progress(quiet_url, page):
    page.goto(quiet_url)
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-status").wait_for()
    page.wait_for_timeout(2000)  # the page's own load events have ended
    assert progress_seen(page) == {}
