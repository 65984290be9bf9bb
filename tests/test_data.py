"""Training data: loaders for each format, column mapping, splits, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from playground.data import files as data_mod
from playground.data.loading import format_rows, load_raw, prepare_data, resolve_format, split_rows
from playground.data.recipes import get_recipe, list_recipes
from playground.data.sources import DataSource


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def file_source(path: Path, **kw) -> DataSource:
    return DataSource(kind="file", path=str(path), **kw)


CHAT = [{"messages": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": f"A{i}"}]}
        for i in range(10)]


# ---------------------------------------------------------------- recipes and formats

def test_bundled_recipes_are_listed_with_existing_files():
    recipes = {r.id: r for r in list_recipes()}
    assert {"pig-latin", "yoda", "shouty"} <= set(recipes)
    assert recipes["pig-latin"].train.is_file() and recipes["pig-latin"].probe.startswith("Translate to Pig Latin")
    with pytest.raises(ValueError, match="Unknown recipe 'nope'"):
        get_recipe("nope")


def test_recipe_messages_become_conversational_prompt_completion():
    prepared = prepare_data(DataSource(kind="recipe", recipe="pig-latin", eval_fraction=0.1), seed=1)
    assert prepared.format == "messages" and prepared.rows == 694
    assert len(prepared.train) + len(prepared.eval) == 694 and len(prepared.eval) == 70
    row = prepared.train[0]
    assert [m["role"] for m in row["prompt"]] == ["user"]
    assert row["completion"][0]["role"] == "assistant"
    assert row["prompt"][0]["content"].startswith("Translate to Pig Latin: ")
    assert len(prepared.sha256) == 64


def test_messages_without_completion_only_stay_whole_conversations(tmp_path):
    ds, fmt, _ = format_rows(load_raw(file_source(write_jsonl(tmp_path / "c.jsonl", CHAT))),
                             file_source(tmp_path / "c.jsonl", completion_only_loss=False))
    assert fmt == "messages" and ds.column_names == ["messages"] and len(ds[0]["messages"]) == 2


def test_prompt_completion_jsonl_with_and_without_chat_template(tmp_path):
    path = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(4)])
    chat, fmt, _ = format_rows(load_raw(file_source(path)), file_source(path))
    assert fmt == "prompt_completion"
    assert chat[1] == {"prompt": [{"role": "user", "content": "p1"}],
                       "completion": [{"role": "assistant", "content": "c1"}]}
    plain, _, _ = format_rows(load_raw(file_source(path)), file_source(path, use_chat_template=False))
    assert plain[1] == {"prompt": "p1", "completion": "c1"}


def test_instruction_csv_joins_input_and_text_json_list(tmp_path):
    csv = tmp_path / "i.csv"
    csv.write_text("instruction,input,output\nSum it,1 2,3\nSay hi,,hi\n", encoding="utf-8")
    ds, fmt, cols = format_rows(load_raw(file_source(csv)), file_source(csv, use_chat_template=False))
    assert fmt == "instruction" and cols == {"instruction": "instruction", "input": "input", "output": "output"}
    assert ds[0] == {"prompt": "Sum it\n\n1 2", "completion": "3"}
    assert ds[1]["prompt"] == "Say hi"  # empty input adds nothing
    js = tmp_path / "t.json"
    js.write_text(json.dumps([{"text": "hello world"}, {"text": "bye"}]), encoding="utf-8")
    ds, fmt, _ = format_rows(load_raw(file_source(js)), file_source(js))
    assert fmt == "text" and ds["text"] == ["hello world", "bye"]


def test_column_mapping_when_names_differ(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"frage": "q", "antwort": "a"}] * 3)
    with pytest.raises(ValueError, match=r"Could not tell the format from the columns \(frage, antwort\)"):
        resolve_format(["frage", "antwort"], file_source(path))
    source = file_source(path, format="prompt_completion", columns={"prompt": "frage", "completion": "antwort"},
                         use_chat_template=False)
    ds, _, cols = format_rows(load_raw(source), source)
    assert cols == {"prompt": "frage", "completion": "antwort"} and ds[0] == {"prompt": "q", "completion": "a"}


def test_sharegpt_from_value_messages_are_converted(tmp_path):
    rows = [{"conversations": [{"from": "user", "value": "hi"}, {"from": "assistant", "value": "yo"}]}] * 2
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    ds, fmt, _ = format_rows(load_raw(file_source(path)), file_source(path))
    assert fmt == "messages" and ds[0]["completion"] == [{"role": "assistant", "content": "yo"}]


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("content, match", [
    (b"", "is empty"),
    (b"   \n\n", "only whitespace"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10, "not a UTF-8 text file"),
])
def test_empty_whitespace_and_binary_files_are_refused(tmp_path, content, match):
    path = tmp_path / "d.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_raw(file_source(path))


def test_bad_json_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c"\n{"text": "d"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"Line 3 of bad.jsonl is not valid JSON"):
        load_raw(file_source(path))


def test_bad_json_document_and_unknown_extension(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[{"text": "a"},\n {"text": }]', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.json is not valid JSON: .* line 2"):
        load_raw(file_source(path))
    other = tmp_path / "x.parquet"
    other.write_text("x")
    with pytest.raises(ValueError, match="only .jsonl, .json and .csv"):
        load_raw(file_source(other))


def test_oversized_and_missing_files(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "big.jsonl", CHAT)
    monkeypatch.setattr(data_mod, "MAX_FILE_BYTES", 100)
    with pytest.raises(ValueError, match="the limit is"):
        load_raw(file_source(path))
    with pytest.raises(ValueError, match="does not exist"):
        load_raw(file_source(tmp_path / "gone.jsonl"))


def test_missing_mapped_column_and_missing_role(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "p", "completion": "c"}] * 3)
    with pytest.raises(ValueError, match=r"Column 'answer' \(mapped to 'completion'\) is not in the data"):
        resolve_format(["prompt", "completion"], file_source(path, columns={"completion": "answer"}))
    with pytest.raises(ValueError, match=r"instruction format needs a 'instruction' column"):
        resolve_format(["prompt", "completion"], file_source(path, format="instruction"))


def test_row_problems_name_the_row(tmp_path):
    rows = CHAT[:2] + [{"messages": [{"role": "user", "content": "only a question"}]}]
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    with pytest.raises(ValueError, match=r"Row 3: the last message is not an assistant answer"):
        prepare_data(file_source(path))
    empty = write_jsonl(tmp_path / "e.jsonl", [{"prompt": "p", "completion": "c"}, {"prompt": "p", "completion": ""}])
    with pytest.raises(ValueError, match=r"Row 2: the completion is empty"):
        prepare_data(file_source(empty))


def test_one_row_and_zero_rows_after_split(tmp_path):
    one = write_jsonl(tmp_path / "one.jsonl", CHAT[:1])
    with pytest.raises(ValueError, match="has 1 row; training needs at least 2"):
        prepare_data(file_source(one))
    two = write_jsonl(tmp_path / "two.jsonl", CHAT[:2])
    with pytest.raises(ValueError, match="no rows are left for training"):
        prepare_data(file_source(two, eval_fraction=0.8))
    train, evals = split_rows(format_rows(load_raw(file_source(two)), file_source(two))[0], 0.0, 0)
    assert len(train) == 2 and evals is None


def test_split_is_seeded():
    ds = prepare_data(DataSource(recipe="pig-latin", eval_fraction=0.2), seed=7)
    again = prepare_data(DataSource(recipe="pig-latin", eval_fraction=0.2), seed=7)
    other = prepare_data(DataSource(recipe="pig-latin", eval_fraction=0.2), seed=8)
    assert ds.eval["prompt"] == again.eval["prompt"] != other.eval["prompt"]


def test_datasource_validation_messages():
    with pytest.raises(ValueError, match="Eval fraction must be between 0 and 0.9"):
        DataSource(eval_fraction=0.95).validate()
    with pytest.raises(ValueError, match="Upload a JSONL"):
        DataSource(kind="file").validate()
    with pytest.raises(ValueError, match="hub dataset id"):
        DataSource(kind="hub", hub_id=" ").validate()


def test_a_hub_id_that_names_a_server_folder_is_refused_before_anything_is_read(tmp_path):
    """load_dataset reads a local folder given as the id: the hub box must not get round the path policy."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "notes.csv").write_text("text\nthe exam answers\n")
    for hub_id in (str(secret), "../secret", "~/x", "a/b/c", "tests"):  # "tests": a folder in the app's cwd
        with pytest.raises(ValueError, match="must be a Hugging Face id like user/dataset, not a path"):
            load_raw(DataSource(kind="hub", hub_id=hub_id))
    DataSource(kind="hub", hub_id="HuggingFaceTB/smoltalk").validate()  # a real id passes
    DataSource(kind="hub", hub_id="imdb").validate()


def test_hub_dataset_offline_gives_a_sentence():
    with pytest.raises(ValueError, match="Could not load the hub dataset nobody/nothing-here"):
        load_raw(DataSource(kind="hub", hub_id="nobody/nothing-here"))
