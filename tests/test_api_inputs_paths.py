"""What API callers sent to the evaluation, compare, decode, tokenize, room, train and model endpoints that crashed
({"error": null}), leaked an OS message or said something misleading: each is now one sentence naming the field.
Huge or boolean numbers, unusable paths (~unknown user, NUL byte, a name too long, a folder), wrong types,
the text "false" for `chat`, a recipe of the wrong kind, and a message too long for the context."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest

from playground.classroom.codes import Candidate
from playground.classroom.rooms import RoomHub
from playground.compare.preference_eval import PreferenceEvalRequest
from playground.data.files import check_file
from playground.decode.checks import check_bool, check_float, check_int
from playground.fsutil import PathPolicy, validate_name
from playground.model.sources import ModelLoadError, outside_model_path, resolve_source, same_local_path
from playground.ui.paths import dataset_read, looks_like_a_path, recipe_or_server_file

LONG = "x" * 300 + ".jsonl"  # a file name longer than any file system allows (255 bytes)
NO_USER = "(its ~user is not a user on this server)."
TOO_LONG = "(file name too long)."


def exactly(sentence: str) -> str:
    return f"^{re.escape(sentence)}$"


def cut(text: str) -> str:
    """A long value as sentences quote it: its first 59 characters and an ellipsis."""
    return text[:59] + "…"


@pytest.fixture()
def api(tiny_store) -> tuple[Any, dict[str, Any]]:
    """The whole app on the tiny model: (services, api name → the registered function)."""
    from playground.services import Services
    from playground.ui.app_ui import build_app

    services = Services.create(tiny_store, tiny_store.settings.data_dir)
    demo = build_app(services)
    return services, {f.api_name: f.fn for f in demo.fns.values() if f.api_name}


def refusal(fn: Any, *args: Any) -> str:
    """The sentence an API client gets back (a gr.Error's message; never a crash or None)."""
    with pytest.raises(gr.Error) as err:
        fn(*args)
    return err.value.message


# ------------------------------------------------------------ 1. numbers beyond a float, booleans


@pytest.mark.parametrize("call, sentence", [
    (lambda: check_int("top_k", 10**400, 0, 200), "top_k must be a whole number from 0 to 200; got a number of "
                                                  "401 digits."),
    (lambda: check_float("top_p", -10**400, 0, 1), "top_p must be in [0, 1]; got a number of 401 digits."),
    (lambda: check_int("top_n", True, 1, 1000), "top_n must be a number; got true."),
    (lambda: check_float("temperature", False, 0, 2), "temperature must be a number; got false."),
])
def test_numbers_too_large_for_a_float_or_booleans_are_refused_with_the_fields_sentence(call, sentence):
    with pytest.raises(ValueError, match=exactly(sentence)):  # was OverflowError / accepted true as 1
        call()


def test_huge_numbers_reach_every_endpoint_as_a_sentence(api):
    _, fns = api
    assert refusal(fns["next_token"], "hi", False, 1.0, 10**400) == (
        "top_k must be a whole number from 0 to 10000000 (0 = off); got a number of 401 digits.")
    assert refusal(fns["beam_search"], "hi", 10**400) == (
        "num_beams must be a whole number from 1 to 8; got a number of 401 digits.")
    assert refusal(fns["attention"], "hi", False, 10**400) == (
        "layer must be a whole number from 1 to 2; got a number of 401 digits.")
    assert refusal(fns["evaluate"], "", "pig-latin", 10**400) == (
        "max_rows must be a whole number from 1 to 100000; got a number of 401 digits.")


# ------------------------------------------------------------ 2. unusable paths


def test_the_path_policy_names_the_field_for_paths_this_system_cannot_use(tmp_path):
    policy = PathPolicy.create(tmp_path)
    with pytest.raises(ValueError, match=exactly(f'dataset: "~nosuchuser/x.jsonl" is not a usable path on this '
                                                 f"server {NO_USER}")):
        policy.check("~nosuchuser/x.jsonl", "dataset")  # was RuntimeError: Could not determine home directory
    with pytest.raises(ValueError, match=exactly('dataset: "a\\u0000b.jsonl" is not a usable path on this server '
                                                 "(it contains a NUL character).")):
        policy.check("a\x00b.jsonl", "dataset")  # was "embedded null byte", no field named
    with pytest.raises(ValueError, match=exactly(f'Data file path: "{cut(str(tmp_path / LONG))}" is not a usable '
                                                 f"path on this server {TOO_LONG}")):
        policy.check(tmp_path / LONG, "Data file path")  # was OSError [Errno 36] later, from is_file
    with pytest.raises(ValueError, match=exactly("dataset must be a path, as text (got 5).")):
        policy.check(5, "dataset")  # was TypeError from Path(5)


def test_a_data_file_that_is_a_folder_or_cannot_be_read_is_a_sentence(tmp_path):
    (tmp_path / "rows").mkdir()
    with pytest.raises(ValueError, match=exactly("rows is a folder, not a file: give the path of a .jsonl, .json "
                                                 "or .csv file.")):
        check_file(tmp_path / "rows")  # was "rows does not exist (upload it again)."
    with pytest.raises(ValueError, match=exactly(f'"{cut(LONG)}" could not be read {TOO_LONG}')):
        check_file(tmp_path / LONG)  # was OSError


def test_evaluate_and_train_start_name_the_field_for_unusable_paths(api):
    services, fns = api
    data = services.data_dir
    long = str(data / LONG)
    for endpoint in ("evaluate", "evaluate_preference", "evaluate_rewards"):
        assert refusal(fns[endpoint], "", long) == (f'dataset: "{cut(long)}" is not a usable path on this '
                                                    f"server {TOO_LONG}")  # was null / "[Errno 36] …"
        assert refusal(fns[endpoint], "", "~nosuchuser/x.jsonl") == (
            f'dataset: "~nosuchuser/x.jsonl" is not a usable path on this server {NO_USER}')
    start = fns["train_start"]
    assert refusal(start, None, "", json.dumps({"kind": "file", "path": long})) == (
        f'Data file path: "{cut(long)}" is not a usable path on this server {TOO_LONG}')
    (data / "rows").mkdir()
    assert refusal(start, None, "", json.dumps({"kind": "file", "path": str(data / "rows")})) == (
        "rows is a folder, not a file: give the path of a .jsonl, .json or .csv file.")


def test_an_os_error_while_an_evaluation_reads_is_a_sentence_naming_the_field():
    with pytest.raises(ValueError, match=exactly('dataset: "rows.jsonl" could not be read (permission denied).')):
        with dataset_read("dataset"):
            raise PermissionError(13, "Permission denied", "/srv/data/rows.jsonl")


def test_model_paths_this_system_cannot_use_are_a_sentence(api, tmp_path):
    with pytest.raises(ModelLoadError, match=exactly(f'Model path: "~nosuchuser/m.gguf" is not a usable path on '
                                                     f"this server {NO_USER}")):
        resolve_source("~nosuchuser/m.gguf")
    assert not same_local_path("~nosuchuser/m", "bundled")  # was RuntimeError
    assert looks_like_a_path("y" * 300)  # was OSError from exists(): a path, which the policy then refuses
    assert outside_model_path("~nosuchuser/m", (tmp_path,)) == (
        f'Model path: "~nosuchuser/m" is not a usable path on this server {NO_USER}')  # not "outside the folders"
    services, fns = api
    status, _ = fns["load_model"](None, "~nosuchuser/m")
    assert status == (f'⚠️ Model path: "~nosuchuser/m" is not a usable path on this server {NO_USER} The previous '
                      f"model ({services.store.current.name}) stays loaded.")


# ------------------------------------------------------------ 3. wrong types


def test_an_adapter_name_that_is_not_text_is_refused():
    with pytest.raises(ValueError, match=exactly("The adapter name must be text (got 5).")):
        validate_name(5, "adapter name")  # was AttributeError: 'int' object has no attribute 'strip'
    with pytest.raises(ValueError, match=exactly("The adapter name is empty.")):
        validate_name(None, "adapter name")


def test_evaluation_and_compare_refuse_values_of_the_wrong_type(api):
    _, fns = api
    for endpoint in ("evaluate", "evaluate_preference", "evaluate_rewards"):
        assert refusal(fns[endpoint], 5, "pig-latin") == "adapter must be text (got 5)."
        assert refusal(fns[endpoint], "", 5) == "dataset must be text (got 5)."
    settings = "settings must be an object of setting names to values, e.g. {\"temperature\": 0.7}"
    assert refusal(fns["compare"], "hi", "{}", 0) == f'{settings} (got "{{}}").'  # was "dictionary update …"
    assert refusal(fns["compare"], "hi", [1, 2], 0) == f"{settings} (got [1, 2])."
    assert refusal(fns["compare"], "hi", {"system_prompt": {"a": 1}}, 0) == 'system_prompt must be text (got {"a": 1}).'
    assert refusal(fns["compare"], "hi", {"system_prompt": 5}, 0) == "system_prompt must be text (got 5)."


# ------------------------------------------------------------ 4. misleading sentences


def test_a_recipe_that_is_not_a_preference_recipe_points_to_evaluate(api):
    _, fns = api
    assert refusal(fns["evaluate_preference"], "", "pig-latin") == (
        "pig-latin holds one answer per prompt, not preference pairs (chosen / rejected answers): evaluate it "
        "with Compare → Held-out evaluation (API: /evaluate).")  # was "Map one of them to 'chosen'."
    assert PreferenceEvalRequest("sign-off").dataset == "sign-off"


def test_a_mistyped_recipe_id_lists_the_recipes(tmp_path):
    services = SimpleNamespace(paths=PathPolicy.create(tmp_path))
    with pytest.raises(ValueError, match=exactly('dataset: "nope-recipe" is not a known recipe (recipes: pig-latin, '
                                                 "yoda, shouty, sign-off, pig-latin-grpo); for a file, give its path "
                                                 "(a .jsonl, .json or .csv file).")):
        recipe_or_server_file(services, "nope-recipe")  # was "… is outside the folders this server may read"
    assert recipe_or_server_file(services, "yoda") == "yoda"
    assert recipe_or_server_file(services, str(tmp_path / "rows.jsonl")) == str(tmp_path / "rows.jsonl")


# ------------------------------------------------------------ 5. chat must be a real true/false


def test_chat_takes_true_false_or_one_zero_only():
    assert [check_bool("chat", v) for v in (True, False, 1, 0)] == [True, False, True, False]
    for value, got in (("false", '"false"'), ("true", '"true"'), (2, "2"), (None, "null")):
        with pytest.raises(ValueError, match=exactly(f"chat must be true or false (got {got}).")):
            check_bool("chat", value)


def test_the_text_false_does_not_turn_the_chat_template_on(api):
    _, fns = api
    for endpoint in ("next_token", "generate"):
        assert refusal(fns[endpoint], "hi", "false") == 'chat must be true or false (got "false").'
    assert refusal(fns["beam_search"], "hi", 3, 5, 1.0, "false") == 'chat must be true or false (got "false").'
    assert refusal(fns["logit_lens"], "hi", "false") == 'chat must be true or false (got "false").'
    assert refusal(fns["attention"], "hi", "false", 1, 0) == 'chat must be true or false (got "false").'
    tokens = {chat: fns["next_token"]("hi", chat)["prompt_tokens"] for chat in (0, 1, False, True)}
    assert tokens[0] == tokens[False] < tokens[1] == tokens[True]  # 1 / 0 still work: the template adds tokens


class _Model:
    """The model side of a room, without a model: it records the chat flag it was asked for."""

    def __init__(self) -> None:
        self.chats: list[Any] = []

    def encode(self, text: str, chat: bool) -> tuple[int, ...]:
        self.chats.append(chat)
        return (1, 2)

    def candidates(self, ids: tuple[int, ...], n: int) -> list[Candidate]:
        return [Candidate(token_id=3, text="a", label="a", prob=1.0)]

    def decode(self, ids: Any) -> str:
        return ""

    def signature(self) -> str:
        return "fake"


def test_a_room_refuses_chat_as_text_and_a_prompt_that_is_not_text():
    model = _Model()
    hub = RoomHub(model)
    with pytest.raises(ValueError, match=exactly('chat must be true or false (got "false").')):
        hub.open("Once upon a", "false", "s1")  # was opened with the chat template on
    with pytest.raises(ValueError, match=exactly("prompt must be text (got 5).")):
        hub.open(5, False, "s1")  # was "The prompt is empty"
    assert model.chats == []
    hub.open("Once upon a", 1, "s1")
    assert model.chats == [True]


# ------------------------------------------------------------ 6. not text is not "empty"


def test_a_number_for_a_text_field_says_so(api):
    _, fns = api
    assert refusal(fns["tokenize"], 5) == "text must be text (got 5)."  # was "text is empty…"
    assert refusal(fns["next_token"], 5) == "prompt must be text (got 5)."  # was "The prompt is empty…"
    assert refusal(fns["generate"], [1]) == "prompt must be text (got [1])."
    assert refusal(fns["compare"], 5, {}, 0) == "message must be text (got 5)."
    assert refusal(fns["tokenize"], " ") == "text is empty: type or paste some text first."


# ------------------------------------------------------------ 7. one message too long for the context


def test_a_message_too_long_for_the_context_says_so_and_how_long(api):
    _, fns = api
    sentence = refusal(fns["compare"], "word " * 1000, {}, 0)  # the tiny model's context: 512 tokens
    tokens = int(re.search(r"context: ([\d,]+) tokens", sentence).group(1).replace(",", ""))
    assert tokens > 1000 and sentence == (
        f"The message is too long for the model's context: {tokens:,} tokens with the system prompt and chat "
        "template, and the context holds 512 tokens, the answer included. Shorten the message.")
