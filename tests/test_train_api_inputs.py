"""Settings as an API caller sends them (any JSON): a wrong type or range is a sentence naming the field, and an
`epochs` override is not silently overruled by the recipe's max steps."""

from __future__ import annotations

import json
import re

import pytest

from playground.train.config import SETTINGS, TrainJobConfig, apply_overrides
from playground.train.form import recipe_config, request_config


@pytest.mark.parametrize("overrides, sentence", [
    ({"target_modules": 5}, "Target modules must be a list of names (got 5)."),
    ({"target_modules": ["q_proj", 3]}, "Target modules must be a list of names (got ['q_proj', 3])."),
    ({"adapter_name": 5}, "Adapter name must be text (got 5)."),
    ({"columns": "x"}, "Columns must be an object of roles to column names, e.g. {\"prompt\": \"question\"} "
                       "(got 'x')."),
    ({"columns": {"prompt": 1}}, "Columns must be an object of roles to column names, e.g. {\"prompt\": "
                                 "\"question\"} (got {'prompt': 1})."),
    ({"hub_id": 5}, "Hub dataset id must be text (got 5)."),
    ({"path": 5}, f"{SETTINGS['path'].label} must be text (got 5)."),
    ({"regex": 5}, "Pattern (regular expression) must be text (got 5)."),
    ({"must_include": 5}, "Words that must appear must be text (got 5)."),
    ({"start_adapter": 5}, "Start from adapter must be text (got 5)."),
])
def test_wrong_typed_api_values_are_a_sentence_naming_the_field(overrides, sentence):
    with pytest.raises(ValueError, match=f"^{re.escape(sentence)}$"):
        request_config("", json.dumps(overrides))


def test_right_typed_values_still_coerce():
    cfg = apply_overrides(TrainJobConfig(), {"target_modules": "q_proj", "columns": {"prompt": "q"}, "hub_id": None})
    assert cfg.lora.target_modules == ["q_proj"] and cfg.data.columns == {"prompt": "q"} and cfg.data.hub_id == ""
    cfg = apply_overrides(TrainJobConfig(), {"target_modules": ("q_proj", "v_proj"), "columns": None})
    assert cfg.lora.target_modules == ["q_proj", "v_proj"] and cfg.data.columns == {}


def test_seed_is_bounded_by_what_the_worker_can_seed():
    TrainJobConfig(train=apply_overrides(TrainJobConfig(), {"seed": 2**32 - 1}).train).validate("cpu")
    cfg = request_config("", json.dumps({"seed": 4294967296}))
    with pytest.raises(ValueError, match=r"^Seed must be a whole number from 0 to 4294967295 \(got 4294967296\)\.$"):
        cfg.validate("cpu")


def test_an_api_epochs_override_trains_for_epochs_not_the_recipes_max_steps():
    assert recipe_config("pig-latin").train.max_steps  # every recipe sets max steps
    cfg = request_config("pig-latin", json.dumps({"epochs": 2}))
    assert cfg.train.epochs == 2 and cfg.train.max_steps is None
    both = request_config("pig-latin", json.dumps({"epochs": 2, "max_steps": 7}))  # both given: max steps rule
    assert both.train.max_steps == 7
    assert request_config("pig-latin", "{}").train.max_steps == recipe_config("pig-latin").train.max_steps
