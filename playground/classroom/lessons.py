"""Lessons: guided demos written as data, one small TOML file per lesson in `assets/lessons/` (format: the
README, "Teaching with it").

Gradio-free. A lesson is a title, a summary and steps; a step is a title, the one sentence to say to the room and
the page state to show (the shareable link's keys: tab, Decode prompt and knobs, adapter, Compare message and
settings), plus an optional action (start the lesson's quick training preset, or send the Compare message).
Every file is checked when it is read: a mistake becomes one sentence naming the file, the step and the key, so
the Lessons tab can list a broken file instead of failing. A step that shows the model's output (a Decode prompt
or a Compare message) runs on the base model unless its state names an adapter: a lesson's sentences quote one
model's numbers, and the adapter a browser happens to have active would make them false.

`last_good_adapter` and `trained_adapter_pick` decide which adapter an "after training" step shows when the
lesson's own run is still going, failed, or never ran on this page (the newest completed adapter of the same
recipe, named as someone's run, never as this lesson's), and the sentence that says so.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from playground.adapters.library import AdapterInfo
from playground.classroom.lesson_keys import check_state
from playground.classroom.links import BASE
from playground.fsutil import cut

LESSONS_DIR = Path(__file__).resolve().parents[2] / "assets" / "lessons"
ACTIONS = ("train", "compare")
LESSON_KEYS = ("title", "summary", "train", "steps")
TRAIN_KEYS = ("recipe", "quick")
STEP_KEYS = ("title", "say", "state", "action", "trained_adapter")
MAX_STEPS = 30
MAX_FILE_BYTES = 64_000

# (recipe id, quick settings) -> None, or a ValueError sentence (the UI passes the Train tab's own config check).
TrainCheck = Callable[[str, dict[str, Any]], None]


class LessonError(ValueError):
    """A lesson file that cannot be used; the message names the file (and the step and key) and is shown as is."""


@dataclass(frozen=True)
class Step:
    title: str
    say: str
    state: dict[str, Any]  # link keys -> TOML values (lesson_keys.STATE_KEYS)
    action: str | None = None  # "train" | "compare" | None
    trained_adapter: bool = False  # show the adapter this lesson trained (or the last good one of its recipe)

    @property
    def tab(self) -> str | None:
        return self.state.get("tab")

    def query(self, adapter: str | None = None) -> dict[str, Any]:
        """The state as a link's query (ui/links.py apply_query takes TOML values as they are); `adapter`
        replaces the state's adapter."""
        return {**self.state, "adapter": adapter} if adapter is not None else dict(self.state)


@dataclass(frozen=True)
class Lesson:
    id: str  # the file name without .toml
    title: str
    summary: str
    steps: tuple[Step, ...]
    recipe: str | None = None  # the [train] table: which bundled recipe the lesson trains
    quick: dict[str, Any] = field(default_factory=dict)  # flat training settings over the recipe's defaults

    def step_label(self, index: int) -> str:
        return f"{index + 1}. {self.steps[index].title}"


@dataclass(frozen=True)
class Shelf:
    """Every lesson that loaded, and one sentence per file that did not."""

    lessons: tuple[Lesson, ...]
    problems: tuple[str, ...] = ()

    def get(self, lesson_id: str) -> Lesson:
        for lesson in self.lessons:
            if lesson.id == lesson_id:
                return lesson
        known = ", ".join(lesson.id for lesson in self.lessons) or "none"
        raise LessonError(f"There is no lesson {lesson_id!r} (lessons: {known}).")


def _text(where: str, table: dict, key: str, required: bool = True) -> str:
    value = table.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise LessonError(f"{where}: '{key}' must be a non-empty text" + ("" if value is None else
                                                                         f"; got {value!r}") + ".")
    return value.strip()


def _unknown(where: str, table: dict, known: Iterable[str], what: str) -> None:
    extra = sorted(set(table) - set(known))
    if extra:
        raise LessonError(f"{where}: unknown {what} '{extra[0]}' (allowed: {', '.join(known)}).")


def _step(where: str, raw: Any, has_train: bool) -> Step:
    if not isinstance(raw, dict):
        raise LessonError(f"{where}: a step must be a [[steps]] table; got {raw!r}.")
    _unknown(where, raw, STEP_KEYS, "step key")
    title, say = _text(where, raw, "title"), _text(where, raw, "say")
    where = f"{where} ('{title}')"
    state = raw.get("state", {})
    if not isinstance(state, dict):
        raise LessonError(f"{where}: 'state' must be a table of page-state keys; got {state!r}.")
    try:
        check_state(state)
    except ValueError as err:
        raise LessonError(f"{where}: {err}") from None
    action = raw.get("action")
    if action is not None and action not in ACTIONS:
        raise LessonError(f"{where}: 'action' must be one of {', '.join(ACTIONS)}; got {action!r}.")
    trained = raw.get("trained_adapter", False)
    if not isinstance(trained, bool):
        raise LessonError(f"{where}: 'trained_adapter' must be true or false; got {trained!r}.")
    if (action == "train" or trained) and not has_train:
        key = "action = \"train\"" if action == "train" else "trained_adapter"
        raise LessonError(f"{where}: {key} needs a [train] table with the lesson's recipe.")
    if action == "compare" and not (state.get("message") or "").strip():
        raise LessonError(f"{where}: action = \"compare\" needs a 'message' in the state to send.")
    if trained and "adapter" in state:
        raise LessonError(f"{where}: a step with trained_adapter = true picks the adapter itself; remove 'adapter'.")
    if not trained and "adapter" not in state and ("prompt" in state or "message" in state):
        state = {**state, "adapter": BASE}  # its output is the base model's (module docstring)
    return Step(title, say, dict(state), action, trained)


def _train(where: str, raw: Any, check_train: TrainCheck | None) -> tuple[str | None, dict[str, Any]]:
    if raw is None:
        return None, {}
    if not isinstance(raw, dict):
        raise LessonError(f"{where}: [train] must be a table with 'recipe' and 'quick'; got {raw!r}.")
    _unknown(f"{where} [train]", raw, TRAIN_KEYS, "key")
    recipe = _text(f"{where} [train]", raw, "recipe")
    quick = raw.get("quick", {})
    if not isinstance(quick, dict):
        raise LessonError(f"{where} [train]: 'quick' must be a table of training settings; got {quick!r}.")
    if check_train is not None:
        try:
            check_train(recipe, dict(quick))
        except (ValueError, TypeError) as err:  # TypeError: a value no form holds (a TOML date), no crash at start
            raise LessonError(f"{where} [train]: {err}") from None
    return recipe, dict(quick)


def parse_lesson(lesson_id: str, text: str, where: str | None = None,
                 check_train: TrainCheck | None = None) -> Lesson:
    """One lesson from TOML text; `where` names it in error sentences (default: the id + .toml)."""
    where = where or f"{lesson_id}.toml"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise LessonError(f"{where} is not valid TOML: {err}.") from None
    _unknown(where, raw, LESSON_KEYS, "key")
    title, summary = _text(where, raw, "title"), _text(where, raw, "summary", required=False)
    recipe, quick = _train(where, raw.get("train"), check_train)
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        raise LessonError(f"{where}: a lesson needs at least one [[steps]] table.")
    if len(steps) > MAX_STEPS:
        raise LessonError(f"{where}: at most {MAX_STEPS} steps; got {len(steps)}.")
    parsed = tuple(_step(f"{where}, step {i + 1}", s, recipe is not None) for i, s in enumerate(steps))
    return Lesson(lesson_id, title, summary, parsed, recipe, quick)


def load_lesson(path: Path, check_train: TrainCheck | None = None) -> Lesson:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise LessonError(f"{path.name} is larger than {MAX_FILE_BYTES // 1000} kB; a lesson is a small file.")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LessonError(f"{path.name} cannot be read: {err}.") from None
    return parse_lesson(path.stem, text, path.name, check_train)


def load_lessons(folder: Path = LESSONS_DIR, check_train: TrainCheck | None = None) -> Shelf:
    """Every `*.toml` in `folder`, sorted by file name; a broken file becomes a sentence in `problems`."""
    lessons, problems = [], []
    for path in sorted(Path(folder).glob("*.toml")):
        try:
            lessons.append(load_lesson(path, check_train))
        except LessonError as err:
            problems.append(str(err))
    return Shelf(tuple(lessons), tuple(problems))


# ---------------------------------------------------------------- the adapter an "after training" step shows

def _created(info: AdapterInfo) -> datetime:
    try:
        when = datetime.fromisoformat(info.created_at)
    except (TypeError, ValueError):
        return datetime.min.replace(tzinfo=timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def last_good_adapter(infos: Iterable[AdapterInfo], recipe: str,
                      base_fingerprint: str | None = None) -> AdapterInfo | None:
    """The newest adapter trained to completion on `recipe` (playground.json: kind "trained", dataset name = the
    recipe, state "completed"), on the base with `base_fingerprint` when given; None when there is none."""
    good = [i for i in infos
            if i.kind == "trained" and i.dataset_name == recipe and i.meta.get("state", "completed") == "completed"
            and (base_fingerprint is None or i.base_fingerprint in (None, base_fingerprint))]
    return max(good, key=lambda i: (_created(i), i.name), default=None)


@dataclass(frozen=True)
class AdapterPick:
    name: str | None  # None: nothing to show yet
    sentence: str


RUN_WORDS = {"failed": "The run failed", "stopped": "The run was stopped", "interrupted": "The run was interrupted"}


def _facts(run_id: Any, steps: Any, started: str = "") -> str:
    """" (run R, N steps, started by …)": what is known of the run that made an adapter."""
    parts = [f"run {run_id}" if run_id else "", f"{int(steps)} steps" if isinstance(steps, (int, float)) else "",
             started]
    known = ", ".join(p for p in parts if p)
    return f" ({known})" if known else ""


def _too_short(steps: Any, lesson_steps: int | None) -> str:
    """A caveat for an adapter trained less than the lesson's run: the step's sentence may not hold for it."""
    if isinstance(steps, (int, float)) and lesson_steps and steps < lesson_steps:
        return (f" It trained only {int(steps)} steps, fewer than this lesson's {lesson_steps}: its answer may not "
                "show what the recipe teaches yet.")
    return ""


def trained_adapter_pick(run_state: str | None, run_adapter: str | None, fallback: AdapterInfo | None,
                         recipe: str, run_id: str | None = None, run_steps: int | None = None,
                         lesson_steps: int | None = None, started: str = "") -> AdapterPick:
    """Which adapter to show after the lesson's run, in a sentence that claims only what is known. `run_*`: the run
    this page's lesson started (`run_state` None: it started none, e.g. before a reload); `fallback`: the newest
    completed adapter of the recipe, whoever trained it (`started`: who, e.g. "started on another page")."""
    if run_state == "completed" and run_adapter:
        return AdapterPick(run_adapter, f"Showing '{run_adapter}', the adapter this lesson trained on this page"
                                        f"{_facts(run_id, run_steps)}." + _too_short(run_steps, lesson_steps))
    if run_state is None:
        head = "No run from this lesson on this page yet"
    elif run_state == "completed":  # but its adapter is gone (deleted since)
        head = "The adapter this lesson trained was deleted"
    else:
        head = RUN_WORDS.get(run_state, "The run is still going")
    if fallback is None:
        return AdapterPick(None, f"{head}, and no adapter of the '{recipe}' recipe has finished yet: "
                                 + ("press this step again when the run ends (the Train tab shows its progress)."
                                    if run_state not in (None, "completed", *RUN_WORDS) else
                                    "go back to the training step and start it."))
    steps = fallback.meta.get("steps")
    return AdapterPick(fallback.name, f"{head}: showing '{fallback.name}', the newest adapter trained from the "
                                      f"'{recipe}' recipe{_facts(fallback.meta.get('run_id'), steps, started)}, "
                                      "not one this lesson trained." + _too_short(steps, lesson_steps))


def switch_sentence(before: str | None, after: str | None) -> str:
    """What a step did to this page's adapter (None = the base model); "" when it stayed the same."""
    if before == after:
        return ""

    def named(adapter: str | None) -> str:
        return "the base model" if adapter is None else f"the adapter '{adapter}'"
    return (f"This step runs on {named(after)}, so this page now uses it instead of {named(before)} (the header "
            "names the model in use; the Adapters tab switches back).")


def run_sentence(state: str, step: int, total: int, loss: float | None, probe: str | None, adapter: str | None,
                 message: str = "") -> str:
    """One line about the lesson's run for the lesson bar: progress and the latest probe answer while it trains,
    then how it ended and what the next step will show."""
    if state == "completed":
        return f"✅ Done: adapter '{adapter}' after {step} steps. Press Next to ask it the same question."
    if state in RUN_WORDS:
        why = f" ({message.rstrip('.')})" if message else ""
        return (f"⚠️ {RUN_WORDS[state]} at step {step}{why}. The next step shows the last good adapter of this "
                "recipe instead.")
    if not total:
        return f"⏳ The run is {state or 'starting'}…"
    head = f"⏳ Training: step {step}/{total}" + (f", loss {loss:.2f}" if loss is not None else "")
    return head + (f" · the probe now answers: “{cut(probe, 120)}”"
                   if probe else "")
