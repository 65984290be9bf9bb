"""What the Train tab does, without Gradio: form values -> a run's config, the data preview with its cache, the
live view's change detection, start / stop / resume / export of the picked run, and the model facts the form
needs. The tab (playground.ui.train_tab) only lays out components and wires them to these methods.

Every method raises ValueError with a user-facing sentence for a mistake; the tab shows it. A Start while another
run trains is no mistake: training stays one run at a time for the whole server, so Start answers with that run
(whose it is, what it trains, how far it is) and leaves the form as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playground.model.inspect import linear_layer_names
from playground.model.store import ModelStore
from playground.train.charts import length_histogram, loss_figure
from playground.train.config import TrainJobConfig
from playground.train.export import ExportedScript, export_script
from playground.train.form import config_from_form, request_config
from playground.train.manager import RunInProgressError, TrainingManager
from playground.train.status import RunStatus
from playground.train.views import probe_header, probe_rows, progress_html, status_markdown

LATEST = "(latest run)"  # the run picker's first choice: the active run, else the newest
START_LABEL = "Start training"
BUSY_LABEL = "Training in progress (one run at a time)"  # Start stays clickable: it then says whose run it is


def selected_run(choice: str | None) -> str | None:
    """The run picker's value -> a run id (None = the active / newest run)."""
    return None if not choice or choice == LATEST else choice


@dataclass(frozen=True)
class Starter:
    """Who presses Start: the login name with --auth, else the browser session. Gradio's session_hash is the key
    to that session's event stream, so only a short hash of it is stored with the run and compared."""

    user: str | None = None
    session: str | None = None

    @classmethod
    def of(cls, username: str | None, session_hash: str | None) -> Starter:
        session = hashlib.sha256(session_hash.encode()).hexdigest()[:12] if session_hash else None
        return cls(username or None, session)

    def as_dict(self) -> dict[str, str | None]:
        return {"user": self.user, "session": self.session}

    def name_of(self, starter: dict[str, Any]) -> str:
        """How this viewer names a run's starter (a STARTER_FILE record); "" when nobody was recorded."""
        user, session = starter.get("user"), starter.get("session")
        if user:
            return "you" if user == self.user else str(user)
        if session:
            return "you" if session == self.session else "another browser session"
        return ""


@dataclass
class StartResult:
    """What Start did: a new run, or (`started` False) nothing, because `run_id` is training; `message` says which."""

    run_id: str
    started: bool
    message: str


@dataclass
class DataPreviewView:
    summary: str
    headers: list[str]
    rows: list[list[Any]]
    lengths_figure: Any
    mask: list[tuple[str, str | None]]  # (text, "loss" | None) for a highlighted-text view
    mask_info: str
    columns: list[str]  # the source's columns, for the column-role pickers


@dataclass
class LiveView:
    """One refresh of the run view. Only `status` and `progress` are filled when nothing else changed."""

    status: str
    progress: str
    changed: bool
    key: tuple
    figure: Any = None
    probes: list[list[str]] = field(default_factory=list)
    probe_title: str = ""
    runs: list[str] = field(default_factory=list)
    stoppable: bool = False  # the shown run is active
    resumable: bool = False  # the shown run can be resumed (status.resume_refusal says "")
    busy: bool = False  # some run is active: Start is refused
    reward_figure: Any = None  # DPO / GRPO: the reward chart (playground.train.method_views); None for SFT
    samples: list[list[str]] = field(default_factory=list)  # GRPO: sampled answers with their rewards
    method_note: str = ""


class TrainPanel:
    def __init__(self, trainer: TrainingManager, store: ModelStore, data_dir: Path,
                 check_path: Callable[[str, str], Any] | None = None):
        self.trainer, self.store, self.data_dir = trainer, store, Path(data_dir)
        # Where a data file may come from (the app's PathPolicy: uploads, data dir, --allow-path); None = anywhere.
        self.check_path = check_path
        self._raw: dict[tuple, Any] = {}  # the last previewed source -> its raw rows (another row is instant)
        self._longest: dict[tuple, int] = {}  # GRPO: data settings + model -> the longest prompt's tokens

    # ------------------------------------------------------------ the model
    def model_targets(self) -> list[str]:
        with self.store.use() as lm:
            return linear_layer_names(lm.base_model)

    def device_type(self) -> str:
        """The app model's device, read without the model lock (a recipe pick must not wait behind a generation)."""
        return self.store.current.device.type

    # ------------------------------------------------------------ settings
    def config(self, values: dict[str, Any]) -> TrainJobConfig:
        """The form's values as a run config for the app's current model."""
        cfg = config_from_form(values)
        return dataclasses.replace(cfg, base=self.trainer.base_ref(), data_dir=str(self.data_dir))

    def describe(self, values: dict[str, Any]) -> str:
        cfg = self.config(values)
        prompt_tokens = self._longest_prompt(cfg) if cfg.tuning.method == "grpo" else None
        return self.trainer.describe_settings(cfg, prompt_tokens)

    def _longest_prompt(self, cfg: TrainJobConfig) -> int | None:
        """GRPO's memory depends on the prompts' length, which is no setting: the longest of the data's first 500
        prompts, as the run tokenizes them. A hub dataset is read only once the preview has fetched it (no
        download on every settings change); data that cannot be read yet gives None (the preview names why)."""
        from playground.data.prompts import format_prompts
        from playground.train.method_views import prompt_lengths

        d = cfg.data
        if d.kind == "hub" and self._source_key(d) not in self._raw:
            return None
        key = (self._source_key(d), d.format, tuple(sorted(d.columns.items())), d.use_chat_template, d.max_rows,
               self.store.current.fingerprint)
        if key not in self._longest:
            try:
                raw = self._read(self._allowed(cfg).data)
                with self.store.use() as lm:
                    tokenizer = lm.tokenizer
                mapped, _, _ = format_prompts(raw, d, bool(getattr(tokenizer, "chat_template", None)))
                longest = max(prompt_lengths(tokenizer, mapped))
            except Exception:  # noqa: BLE001 — the estimate then says what it assumed; the preview names the error
                return None
            if len(self._longest) > 32:
                self._longest.clear()
            self._longest[key] = longest
        return self._longest[key]

    @staticmethod
    def _source_key(d: Any) -> tuple:
        return (d.kind, d.recipe, d.path, d.hub_id, d.hub_split)

    def _read(self, d: Any) -> Any:
        """The source's raw rows, read once while the same source stays picked."""
        from playground.data.loading import load_raw

        key = self._source_key(d)
        if key not in self._raw:
            self._raw.clear()
            self._raw[key] = load_raw(d)
        return self._raw[key]

    def preview(self, values: dict[str, Any], mask_row: Any) -> DataPreviewView:
        from playground.data.preview import build_preview

        cfg = self._allowed(config_from_form(values))  # the preview reads the file too: same path policy
        d = cfg.data
        raw = self._read(d)
        with self.store.use() as lm:
            tokenizer = lm.tokenizer
        if cfg.tuning.method == "dpo":  # preference pairs, shown side by side
            from playground.train.method_views import preference_view

            return preference_view(cfg, tokenizer, raw, mask_row)
        if cfg.tuning.method == "grpo":  # prompts, and what the data's own answers score under the rewards
            from playground.train.method_views import prompts_view

            return prompts_view(cfg, tokenizer, raw)
        p = build_preview(d, tokenizer, cfg.train.max_seq_length, int(mask_row or 1), cfg.train.seed,
                          raw=raw)
        return DataPreviewView(summary=p.summary, headers=p.headers, rows=p.rows,
                               lengths_figure=length_histogram(p.lengths, cfg.train.max_seq_length),
                               mask=p.mask.highlighted(), mask_info=f"Row {p.mask_row}: {p.mask.summary()}",
                               columns=p.columns)

    # ------------------------------------------------------------ runs
    def start(self, values: dict[str, Any], who: Starter | None = None) -> StartResult:
        return self._start(lambda: self._allowed(self.config(values)), who or Starter())

    def start_request(self, recipe: str, settings_json: str, who: Starter | None = None) -> StartResult:
        """The scripting API's start: a recipe's defaults plus flat JSON overrides."""
        def make() -> TrainJobConfig:
            config = request_config(recipe, settings_json, self.device_type())
            return self._allowed(dataclasses.replace(config, base=self.trainer.base_ref()))

        return self._start(make, who or Starter())

    def _start(self, make_config: Callable[[], TrainJobConfig], who: Starter) -> StartResult:
        # The busy answer comes before the settings are read: whoever presses Start sees the run in the way first.
        training = self._training_run()
        if training is not None:
            return self._refused(training, who)
        try:
            run_id = self.trainer.start(make_config(), started_by=who.as_dict())
        except RunInProgressError:  # another session's Start got in between
            active = self.trainer.active_run_id()
            if active is None:
                raise
            return self._refused(active, who)
        return StartResult(run_id, True, f"Started run `{run_id}`.")

    def _refused(self, run_id: str, who: Starter) -> StartResult:
        st, cfg = self.trainer.status(run_id), self.trainer.config(run_id)
        starter = who.name_of(self.trainer.started_by(run_id))
        progress = f"step {st.step}/{st.total_steps}" if st.total_steps else st.state  # e.g. still loading
        loss = st.losses[-1].get("loss") if st.losses else None
        progress += f", loss {loss:.3g}" if loss is not None else ""
        head = "Your run is training" if starter == "you" else "Another run is training"
        by = f", started by {starter}" if starter else ""
        return StartResult(run_id, False, f"{head}: `{run_id}`, {cfg.tuning.method.upper()}, adapter "
                                          f"'{cfg.adapter_name}'{by} — {progress}. Training runs one at a time: "
                                          "your settings are kept; Start again when it finishes.")

    def _allowed(self, cfg: TrainJobConfig) -> TrainJobConfig:
        """A data file named by the user must pass the path policy before the run copies it."""
        if cfg.data.kind == "file" and cfg.data.path and self.check_path is not None:
            self.check_path(cfg.data.path, "Data file path")
        return cfg

    def stop(self, choice: str | None) -> str:
        return self.trainer.stop(selected_run(choice))

    def resume(self, choice: str | None) -> str:
        return self.trainer.resume(self.trainer.status(selected_run(choice)).run_id)

    def export(self, choice: str | None, values: dict[str, Any]) -> ExportedScript:
        """The picked run's settings as a script; with no run yet, the form's settings."""
        run_id = selected_run(choice) or self.trainer.status(None).run_id or None
        cfg = self.trainer.config(run_id) if run_id else self.config(values)
        return export_script(cfg, run_id or "")

    def busy(self) -> bool:
        """A run is training (a finished run whose worker is only exiting does not count: Start waits for it)."""
        return self._training_run() is not None

    def _training_run(self) -> str | None:
        active = self.trainer.active_run_id()
        return active if active is not None and self.trainer.status(active).active else None

    def live(self, choice: str | None, log_scale: bool, overlays: list[str] | None, last_key: Any) -> LiveView:
        """The picked run's view; the chart and lists only when something they show changed since `last_key`."""
        try:
            st: RunStatus = self.trainer.status(selected_run(choice))
        except ValueError:  # a run folder deleted meanwhile
            st = self.trainer.status(None)
        runs = self.trainer.list_runs()
        busy = st.active or self.busy()
        overlays = list(overlays or [])
        # Counts alone miss a resume that replaced rows with as many others: the last row of each list counts too
        # (repr, so a NaN loss compares equal to itself and a failed run is not redrawn every tick).
        shown = (st.losses, st.evals, st.probes, st.rewards, st.eval_rewards, st.samples)
        key = (st.run_id, st.state, log_scale, tuple(overlays), tuple(runs), busy, st.resumable,
               *((len(rows), repr(rows[-1:])) for rows in shown))
        view = LiveView(status=status_markdown(st), progress=progress_html(st), changed=key != last_key, key=key)
        if not view.changed:
            return view
        lines = {r: self.trainer.loss_history(r) for r in overlays if r != st.run_id and r in runs}
        view.figure = loss_figure(st.losses, st.evals, log_scale=log_scale, overlays=lines,
                                  total_steps=st.total_steps)
        view.probes, view.probe_title, view.runs = probe_rows(st), probe_header(st), runs
        view.stoppable, view.busy, view.resumable = st.active, busy, st.resumable
        from playground.train.method_views import method_markdown, reward_figure, sample_rows

        view.reward_figure, view.samples, view.method_note = reward_figure(st), sample_rows(st), method_markdown(st)
        return view
