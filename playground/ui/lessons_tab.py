"""The lesson bar: guided demos over the tabs. Pick a lesson, then press a step (or Previous / Next): its one
sentence shows in large type above the tabs, and the page switches to the tab and state the step describes,
through the same code that opens a shared link (ui/links.py apply_query). A step may also start the lesson's quick
training preset (as the /train_start API does) or send the Compare message (by pressing Compare's own buttons).

Layout and wiring only: lessons are files in assets/lessons/ read by playground/classroom/lessons.py (re-read on
every press, so an edited lesson shows without a restart). `?lesson=<file name>&step=<n>` opens a lesson (at
step n) when the page loads.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.classroom.lessons import (
    MAX_STEPS,
    AdapterPick,
    Lesson,
    LessonError,
    Shelf,
    last_good_adapter,
    load_lessons,
    run_sentence,
    switch_sentence,
    trained_adapter_pick,
)
from playground.services import Services
from playground.train.form import request_config
from playground.train.panel import Starter, TrainPanel
from playground.ui import links
from playground.ui.errors import USER_ERRORS, unseen_progress, warn
from playground.ui.session_adapter import adapter_of
from playground.ui.train_tab import starter

PRIVATE = dict(api_visibility="private")
MIN_BUTTONS = 12  # step buttons laid out (more if a lesson has more steps); a longer lesson's rest: Next
LIVE_SECONDS = 2.0
# After a step with action = "compare": clear Compare's conversation, wait until it is empty, then press Send
# (the message and settings were set by the step), exactly as a presenter would.
SEND_JS = """(action) => {
  if (action !== 'compare') return;
  const q = s => document.querySelector(s);
  q('#pg-compare-clear')?.click();
  const t0 = Date.now();
  const send = () => {
    if (q('#pg-compare-base .bot, #pg-compare-base .user') && Date.now() - t0 < 5000) return setTimeout(send, 100);
    q('#pg-compare-send')?.click();
  };
  setTimeout(send, 150);
}"""
CSS = """
#pg-lesson-step .pg-lesson-title {font-size: 1.05em; font-weight: 600; opacity: 0.8;}
#pg-lesson-step .pg-lesson-say {font-size: 1.55em; line-height: 1.4; padding: 4px 0;}
"""


def check_train(recipe: str, quick: dict[str, Any]) -> None:
    """A lesson's [train] table, checked as the Train tab would read it (a sentence for a mistake)."""
    request_config(recipe, json.dumps(quick))


def shelf() -> Shelf:
    return load_lessons(check_train=check_train)


def run_steps(lesson: Lesson) -> int | None:
    """How many steps the lesson's quick run trains (the recipe's default when the preset leaves it)."""
    try:
        return request_config(lesson.recipe, json.dumps(lesson.quick)).train.max_steps if lesson.recipe else None
    except ValueError:
        return None


def who_started(me: Starter, record: dict[str, Any]) -> str:
    """Who started a run, for the "after" step's sentence. Without logins a run records a browser session, and a
    reloaded page is a new one, so a session that is not this page's is "another page", not "someone else"."""
    if record.get("user"):
        return f"started by {me.name_of(record)}"
    if record.get("session"):
        return "started on this page" if record["session"] == me.session else "started on another page"
    return ""


@dataclass
class LessonBar:
    box: gr.Accordion
    pick: gr.Dropdown
    summary: gr.Markdown
    problems: gr.Markdown
    panel: gr.Column
    say: gr.HTML
    prev: gr.Button
    next: gr.Button
    steps: list[gr.Button]
    note: gr.Markdown
    live: gr.HTML
    index: gr.State
    run: gr.State
    timer: gr.Timer
    action: gr.Textbox

    def outputs(self) -> list[Any]:
        return [self.box, self.pick, self.summary, self.problems, self.panel, self.say, *self.steps, self.note,
                self.live, self.index, self.run, self.timer, self.action]


def _problems(found: Shelf) -> str:
    return "\n".join(f"⚠️ Not loaded: {html.escape(p)}" for p in found.problems)


def build(services: Services) -> LessonBar:
    """Lay out the lesson bar where it is called (app_ui: above the tabs); `wire` connects it."""
    found = shelf()
    count = min(MAX_STEPS, max([MIN_BUTTONS, *(len(lesson.steps) for lesson in found.lessons)]))
    with gr.Accordion("📚 Lessons: guided demos, one button per step", open=False, elem_id="pg-lessons") as box:
        gr.HTML(f"<style>{CSS}</style>", padding=False)
        with gr.Row():
            pick = gr.Dropdown([(lesson.title, lesson.id) for lesson in found.lessons], value=None, label="Lesson",
                               scale=2, elem_id="pg-lesson-pick")
            summary = gr.Markdown(elem_id="pg-lesson-summary")
        problems = gr.Markdown(_problems(found), elem_id="pg-lesson-problems")
        with gr.Column(visible=False) as panel:
            say = gr.HTML(elem_id="pg-lesson-say")
            with gr.Row():
                steps = [gr.Button(f"{i + 1}", size="sm", visible=False, elem_id=f"pg-lesson-step-{i}")
                         for i in range(count)]
            with gr.Row(equal_height=True):
                prev = gr.Button("◀ Previous", size="sm", scale=0, min_width=120, elem_id="pg-lesson-prev")
                nxt = gr.Button("Next ▶", size="sm", scale=0, min_width=120, variant="primary",
                                elem_id="pg-lesson-next")
                note = gr.Markdown(elem_id="pg-lesson-note")
            live = gr.HTML(elem_id="pg-lesson-live")
    action = gr.Textbox(visible=False)  # "compare" after a step that sends the Compare message (SEND_JS)
    return LessonBar(box, pick, summary, problems, panel, say, prev, nxt, steps, note, live, gr.State(-1),
                     gr.State(None), gr.Timer(LIVE_SECONDS, active=False), action)


def say_html(lesson: Lesson, index: int) -> str:
    if index < 0:
        return (f"<div id='pg-lesson-step'><div class='pg-lesson-say'>{html.escape(lesson.title)}: press a step, "
                "or Next to begin.</div></div>")
    step = lesson.steps[index]
    return (f"<div id='pg-lesson-step'><div class='pg-lesson-title'>Step {index + 1} of {len(lesson.steps)} · "
            f"{html.escape(step.title)}</div><div class='pg-lesson-say'>{html.escape(step.say)}</div></div>")


def wire(services: Services, demo: gr.Blocks, bar: LessonBar, targets: links.LinkTargets) -> None:
    """Connect the bar: a step applies its state through links.apply_query (one update per link output)."""
    panel = TrainPanel(services.trainer, services.store, services.data_dir)
    link_outs = links.link_outputs(targets)

    def opened(lesson: Lesson) -> dict[Any, Any]:
        """A lesson picked: its summary, one button per step, no step shown yet."""
        out: dict[Any, Any] = {bar.box: gr.Accordion(open=True), bar.pick: lesson.id, bar.summary: lesson.summary,
                               bar.panel: gr.Column(visible=True), bar.say: say_html(lesson, -1), bar.index: -1,
                               bar.note: "", bar.action: ""}
        for i, button in enumerate(bar.steps):
            out[button] = (gr.Button(lesson.step_label(i), visible=True, variant="secondary")
                           if i < len(lesson.steps) else gr.Button(visible=False))
        return out

    def after_pick(lesson: Lesson, run_id: str | None, request: gr.Request | None) -> AdapterPick:
        """The adapter an "after training" step shows: the run this page's lesson started, else the recipe's
        newest finished adapter, named as whose it is. Never another run of the recipe passed off as this
        lesson's: without this page's run id (a reload forgets it) nobody knows which run was the lesson's."""
        trainer, library = services.trainer, services.adapters.library
        state = made = steps = None
        try:
            if run_id and trainer.config(run_id).data.recipe == lesson.recipe:
                st = trainer.status(run_id)
                state, made, steps = st.state, st.adapter, st.step
        except (OSError, ValueError):  # a run folder deleted meanwhile, or an unreadable config
            run_id = None
        if made is not None and made not in library.names():
            made = None  # deleted since
        fallback = last_good_adapter(library.list(), lesson.recipe or "", services.store.current.fingerprint)
        made_by = fallback.meta.get("run_id") if fallback is not None else None
        started = who_started(starter(request), trainer.started_by(made_by)) if isinstance(made_by, str) else ""
        return trained_adapter_pick(state, made, fallback, lesson.recipe or "", run_id if state else None, steps,
                                    run_steps(lesson), started)

    def show(lesson: Lesson, index: int, run_id: str | None, session_value: Any, request: gr.Request | None,
             act: bool = True):
        """The step on screen; with `act`, also its action (start the quick run, send the Compare message). A
        link opening the page shows the step without acting: thirty students opening the presenter's link must
        not start thirty runs or thirty Compare sends."""
        step = lesson.steps[index]
        out = {bar.index: index, bar.say: say_html(lesson, index), bar.action: step.action if act else ""}
        for i, button in enumerate(bar.steps[:len(lesson.steps)]):  # the step on screen stands out
            # label and visible too: on a page opened from a link this update replaces opened()'s, which showed it
            out[button] = gr.Button(lesson.step_label(i), visible=True,
                                    variant="primary" if i == index else "secondary")
        notes, adapter = [], None
        if step.trained_adapter:
            out[bar.live] = ""  # the run's last line said "press Next": the note now says what is shown
            choice = after_pick(lesson, run_id, request)
            notes.append(choice.sentence)
            adapter = choice.name
            if adapter is None:
                out[bar.action] = ""  # nothing to ask yet
        before = adapter_of(services, session_value)
        shown = dict(zip(link_outs, links.apply_query(services, step.query(adapter), session_value)))
        chosen = shown[targets.session]  # gr.skip() (a dict without "follow") when the step sets no adapter
        if isinstance(chosen, dict) and "follow" in chosen:
            notes.append(switch_sentence(before, adapter_of(services, chosen)))  # the screen says it switched
        if step.action and not act:
            what = "start its training run" if step.action == "train" else "send its Compare message"
            notes.append(f"Opened from a link: press step {index + 1} to {what}.")
        elif step.action == "train":
            try:
                result = panel.start_request(lesson.recipe, json.dumps(lesson.quick), starter(request))
            except USER_ERRORS as err:
                notes.append(warn(err))
            else:
                if result.started:
                    out[bar.run], out[bar.timer] = result.run_id, gr.Timer(active=True)
                    notes.append(f"🚀 Started run `{result.run_id}` (the lesson's quick preset); the Train tab "
                                 "shows its loss and probe answers live.")
                else:
                    notes.append(f"⏳ {result.message}")
        out[bar.note] = "  \n".join(n for n in notes if n)
        out.update(shown)
        return out

    def go(lesson_id: str | None, target: int, run_id: str | None, session_value: Any,
           request: gr.Request | None) -> dict[Any, Any]:
        try:
            lesson = shelf().get(lesson_id or "")
        except LessonError as err:
            return {bar.note: warn(err)}
        if not 0 <= target < len(lesson.steps):
            return {bar.note: "That was the last step." if target >= len(lesson.steps) else ""}
        return show(lesson, target, run_id, session_value, request)

    def on_pick(lesson_id: str | None) -> dict[Any, Any]:
        if not lesson_id:
            return {bar.panel: gr.Column(visible=False), bar.summary: "", bar.index: -1}
        try:
            return opened(shelf().get(lesson_id))
        except LessonError as err:
            return {bar.note: warn(err)}

    def on_load(request: gr.Request, session_value: Any) -> dict[Any, Any]:
        """Fresh lesson list; `?lesson=ID[&step=N]` opens that lesson (at step N, counted from 1)."""
        found = shelf()
        out: dict[Any, Any] = {bar.pick: gr.Dropdown(choices=[(x.title, x.id) for x in found.lessons]),
                               bar.problems: _problems(found)}
        query = dict(getattr(request, "query_params", None) or {})
        if not query.get("lesson"):
            return out
        try:
            lesson = found.get(str(query["lesson"]))
        except LessonError as err:
            return {**out, bar.box: gr.Accordion(open=True), bar.note: warn(err)}
        out.update(opened(lesson))
        step = str(query.get("step", "")).strip()
        if step.isdigit() and 1 <= int(step) <= len(lesson.steps):
            out.update(show(lesson, int(step) - 1, None, session_value, request, act=False))
        return out

    def tick(run_id: str | None) -> dict[Any, Any]:
        if not run_id:
            return {bar.timer: gr.Timer(active=False)}
        try:
            st = services.trainer.status(run_id)
        except (OSError, ValueError):
            return {bar.timer: gr.Timer(active=False), bar.live: ""}
        loss = st.losses[-1].get("loss") if st.losses else None
        probe = st.probes[-1].get("answer") if st.probes else None
        text = run_sentence(st.state, st.step, st.total_steps, loss, probe, st.adapter, st.message)
        out = {bar.live: f"<div style='font-size:1.1em'>{html.escape(text)}</div>"}
        if not st.active:
            out[bar.timer] = gr.Timer(active=False)
        return out

    def stepper(target: Callable[[int], int]) -> Callable[..., dict[Any, Any]]:
        def handler(lesson_id: str | None, index: int, run_id: str | None, session_value: Any,
                    request: gr.Request) -> dict[Any, Any]:
            return go(lesson_id, target(int(index)), run_id, session_value, request)
        return handler

    every = [*bar.outputs(), *link_outs]
    step_inputs = [bar.pick, bar.index, bar.run, targets.session]
    events = [bar.prev.click(stepper(lambda i: max(i - 1, 0)), step_inputs, every, **PRIVATE),
              bar.next.click(stepper(lambda i: i + 1), step_inputs, every, **PRIVATE)]
    for n, button in enumerate(bar.steps):
        events.append(button.click(stepper(lambda i, n=n: n), step_inputs, every, **PRIVATE))
    for event in events:
        event.then(None, bar.action, None, js=SEND_JS, **PRIVATE)
    bar.pick.input(on_pick, bar.pick, every, **PRIVATE)
    demo.load(on_load, [targets.session], every, **PRIVATE).then(None, bar.action, None, js=SEND_JS, **PRIVATE)
    bar.timer.tick(tick, bar.run, [bar.live, bar.timer], **unseen_progress(bar.run), **PRIVATE)
