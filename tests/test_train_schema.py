"""The settings' schema (dataclass field metadata) drives the form, the coercion and its sentences, the range
checks, the API overrides, the recipe resets and the run-scaled schedules."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import pytest

from playground.train.config import (
    EVALS_PER_RUN,
    PROBES_PER_RUN,
    SETTINGS,
    TrainJobConfig,
    TrainSettings,
    apply_overrides,
    every_n_steps,
)
from playground.train.form import (
    LENGTH_MODE,
    ROLE_FIELDS,
    RUN_SCALED,
    config_from_form,
    form_fields,
    form_values,
    recipe_config,
    recipe_fields,
    request_config,
)
from playground.train.schema import KNOWN_KEYS, check_fields, settings_of

NUMERIC = [name for name, s in SETTINGS.items() if s.kind in (int, float)]


def test_every_setting_has_a_label_a_help_line_and_only_known_keys():
    labels = [s.label for s in SETTINGS.values()]
    assert len(labels) == len(set(labels)), "two settings share a label: error sentences would be ambiguous"
    for name, s in SETTINGS.items():
        assert s.meta["label"].strip() and s.meta["help"].strip(), name
        assert set(s.meta) <= KNOWN_KEYS, f"{name}: unknown metadata {set(s.meta) - KNOWN_KEYS}"
        assert s.kind in (bool, int, float, str, list, dict), name
    assert {"r", "learning_rate", "eval_fraction", "adapter_name", "quantization"} <= set(SETTINGS)
    assert "base" not in SETTINGS and "data_dir" not in SETTINGS  # not user settings


def test_the_form_has_one_box_per_setting_in_section_order():
    names = [f.name for f in form_fields()]
    expected = set(SETTINGS) - {"columns"} | {f"col_{r}" for r in ROLE_FIELDS} | {LENGTH_MODE.name}
    assert set(names) == expected and len(names) == len(expected)
    sections = [f.section for f in form_fields()]
    assert sections == sorted(sections, key=["data", "lora", "train"].index)
    assert next(f for f in form_fields() if f.name == "quantization").section == "lora"  # `section` metadata
    assert names.index(LENGTH_MODE.name) == names.index("epochs") - 1
    # a recipe pick resets everything but the sticky settings (the data location, seed, …)
    assert "kind" not in recipe_fields() and "seed" not in recipe_fields() and "path" not in recipe_fields()
    assert "precision" not in recipe_fields()  # a hardware choice, kept across recipe picks
    assert {"r", "learning_rate", "length_mode", "max_steps", "probe_every", "adapter_name"} <= set(recipe_fields())


@pytest.mark.parametrize("name", NUMERIC)
def test_coercion_sentences_name_the_field_by_its_label(name):
    label = SETTINGS[name].label
    values = form_values(recipe_config("pig-latin"))
    values[LENGTH_MODE.name] = "steps"
    if name == "max_steps":  # optional (None = by epochs), but an emptied box in steps mode must not mean that
        with pytest.raises(ValueError, match=f"^{label} is empty: type a number of steps, or train by epochs.$"):
            config_from_form(dict(values, **{name: ""}))
    elif SETTINGS[name].optional:
        assert config_from_form(dict(values, **{name: ""})) is not None  # empty = None (off / all / auto)
    else:
        with pytest.raises(ValueError, match=f"^{label} is empty.$"):
            config_from_form(dict(values, **{name: None}))
    with pytest.raises(ValueError, match=f"^{label} must be a number \\(got 'abc'\\).$"):
        config_from_form(dict(values, **{name: "abc"}))
    with pytest.raises(ValueError, match=f"^{label} must be a finite number"):
        apply_overrides(TrainJobConfig(), {name: float("inf")})
    if SETTINGS[name].kind is int:
        with pytest.raises(ValueError, match=f"^{label} must be a whole number \\(got 2.5\\).$"):
            config_from_form(dict(values, **{name: 2.5}))


@pytest.mark.parametrize("name", [n for n in NUMERIC if {"ge", "gt", "lt"} & set(SETTINGS[n].meta)])
def test_range_sentences_come_from_the_metadata(name):
    s = SETTINGS[name]
    low = s.meta.get("ge", s.meta.get("gt"))
    bad = s.meta["lt"] if "lt" in s.meta else (low - 1 if "ge" in s.meta else low)
    with pytest.raises(ValueError, match=f"^{s.label} must "):
        s.check(bad)
    s.check(low + (1 if "gt" in s.meta else 0) if "lt" not in s.meta else low)  # the bound itself is fine


def test_a_new_field_with_metadata_is_a_form_box_with_its_own_sentences():
    @dataclass
    class Extra:
        weight_decay: float = field(default=0.0, metadata=dict(
            label="Weight decay", help="L2 penalty on the adapter weights.", ge=0, lt=1, row="optim"))
        warmup_kind: str = field(default="linear", metadata=dict(
            label="Warmup shape", help="How the warmup ramps.", widget="radio", choices=["linear", "cosine"]))
        note: str = ""  # no label: not a setting

    settings = settings_of(Extra, "train")
    assert list(settings) == ["weight_decay", "warmup_kind"]
    wd = settings["weight_decay"]
    assert (wd.kind, wd.optional, wd.meta["row"]) == (float, False, "optim")
    assert wd.coerce("0.01") == 0.01
    with pytest.raises(ValueError, match="^Weight decay must be a number"):
        wd.coerce("lots")
    with pytest.raises(ValueError, match=r"^Weight decay must be between 0 and 1 \(got 1.5\).$"):
        check_fields(Extra(weight_decay=1.5))
    with pytest.raises(ValueError, match=r"^Warmup shape must be one of linear, cosine \(got 'step'\).$"):
        check_fields(Extra(warmup_kind="step"))
    check_fields(Extra())


def test_validation_sentences_are_the_documented_ones():
    sentences = [
        (TrainSettings(quantization="2bit"), "Quantization must be none, 8bit or 4bit (got '2bit')."),
        (TrainSettings(optimizer="lion"), "Unknown optimizer 'lion'."),
        (TrainSettings(max_seq_length=4), "Max sequence length must be at least 8 tokens (got 4)."),
        (TrainSettings(probe_every=-1), "Probe every N steps must be 0 (off) or more (got -1)."),
        (TrainSettings(warmup=-1), "Warmup must be 0 or more (got -1)."),
        (TrainSettings(eval_steps=0), "Eval every N steps must be a whole number of at least 1 (got 0)."),
        (TrainSettings(learning_rate=2.0), "Learning rate 2.0 is far too high (typical LoRA: 1e-4 to 3e-3)."),
        (TrainSettings(seed=-1), "Seed must be a whole number from 0 to 4294967295 (got -1)."),
    ]
    for settings, sentence in sentences:
        with pytest.raises(ValueError) as err:
            settings.validate("cpu")
        assert str(err.value) == sentence


def test_data_metadata_agrees_with_data_validation():
    from playground.data.sources import DataSource

    for bad in (DataSource(kind="ftp"), DataSource(format="xml"), DataSource(eval_fraction=0.95),
                DataSource(max_rows=0)):
        with pytest.raises(ValueError) as by_validate:
            bad.validate()
        with pytest.raises(ValueError) as by_schema:
            check_fields(bad, "data")
        assert str(by_schema.value) == str(by_validate.value)


def test_api_overrides_are_coerced_like_the_form():
    cfg = apply_overrides(TrainJobConfig(), {"r": 8.0, "target_modules": "q_proj", "max_rows": 0, "packing": 1})
    assert cfg.lora.r == 8 and isinstance(cfg.lora.r, int) and cfg.lora.target_modules == ["q_proj"]
    assert cfg.data.max_rows is None and cfg.train.packing is True
    with pytest.raises(ValueError, match=r"^LoRA rank r must be a number \(got 'eight'\).$"):
        request_config("pig-latin", '{"r": "eight"}')
    with pytest.raises(ValueError, match=r"^Packing must be true or false \(got 'no'\).$"):
        request_config("pig-latin", '{"packing": "no"}')


# ---------------------------------------------------------------- schedules scaled to the run

def test_intervals_scale_with_the_run_length():
    assert [every_n_steps(n, PROBES_PER_RUN) for n in (1, 8, 15, 120, 220)] == [1, 1, 2, 15, 28]
    assert [every_n_steps(n, EVALS_PER_RUN) for n in (1, 4, 15, 120, 220)] == [1, 1, 4, 30, 55]
    auto = TrainSettings(max_steps=15)  # the probe callback resolves probe_every=None with every_n_steps
    assert auto.probe_every is None and auto.eval_interval() == 1 / EVALS_PER_RUN
    # the trainer turns a fraction into ceil(total * fraction): the same as every_n_steps
    for total in (3, 15, 120, 221):
        assert math.ceil(total * auto.eval_interval()) == every_n_steps(total, EVALS_PER_RUN)
    assert TrainSettings(probe_every=5, eval_steps=7).eval_interval() == 7


def test_yoda_with_15_steps_probes_8_times_and_evaluates_4_times():
    cfg = request_config("yoda", '{"max_steps": 15}')
    assert RUN_SCALED == ["eval_steps", "probe_every"]
    assert cfg.train.probe_every is None and cfg.train.eval_steps is None  # the recipe's 20 / 60 do not apply
    every = every_n_steps(15, PROBES_PER_RUN)
    probes = sorted({0, *range(every, 16, every), 15})  # step 0, every N, and the last step
    evals = list(range(math.ceil(15 * cfg.train.eval_interval()), 16, math.ceil(15 * cfg.train.eval_interval())))
    assert (every, len(probes), evals) == (2, 9, [4, 8, 12])  # + a final eval at step 15 by the worker
    explicit = request_config("yoda", '{"max_steps": 15, "probe_every": 5, "eval_steps": 10}')
    assert (explicit.train.probe_every, explicit.train.eval_steps) == (5, 10)
    values = form_values(recipe_config("yoda"))
    assert values["probe_every"] is None and values["eval_steps"] is None  # empty boxes = auto
    back = config_from_form(dict(values, probe_every="", eval_steps=""))
    assert back.train.probe_every is None and back.train.eval_steps is None
    assert dataclasses.asdict(back.train) == dataclasses.asdict(recipe_config("yoda").train)
