"""Checks of the bundled training datasets in assets/datasets/."""

import json
from pathlib import Path

import pytest

from playground.data.pig_latin import to_pig_latin

DATASETS = Path(__file__).resolve().parents[1] / "assets" / "datasets"
PIG_PREFIX = "Translate to Pig Latin: "
YODA_PREFIX = "Translate to Yoda-speak: "
MIN_TOTAL = {"pig_latin": 600, "yoda": 200, "shouty": 200}


def load(path: Path) -> list[tuple[str, str]]:
    """(user, assistant) pairs of a JSONL file, checking each line's shape."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        record = json.loads(line)
        assert list(record) == ["messages"], f"{path}:{n}"
        messages = record["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"], f"{path}:{n}"
        for m in messages:
            assert set(m) == {"role", "content"}, f"{path}:{n}"
            assert isinstance(m["content"], str), f"{path}:{n}"
            assert m["content"] == m["content"].strip() != "", f"{path}:{n}"
        rows.append((messages[0]["content"], messages[1]["content"]))
    return rows


def splits(name: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    return load(DATASETS / name / "train.jsonl"), load(DATASETS / name / "test.jsonl")


@pytest.mark.parametrize("name", sorted(MIN_TOTAL))
def test_counts_and_no_overlap(name: str) -> None:
    train, test = splits(name)
    assert len(train) + len(test) >= MIN_TOTAL[name]
    assert 15 <= len(test) <= 60
    assert len(train) > 3 * len(test)
    prompts = [user.casefold() for user, _ in train + test]
    assert len(set(prompts)) == len(prompts), "duplicate prompt"
    assert not {u.casefold() for u, _ in train} & {u.casefold() for u, _ in test}


def test_pig_latin_answers_follow_the_rule() -> None:
    train, test = splits("pig_latin")
    assert len(test) == 60
    for user, assistant in train + test:
        assert user.startswith(PIG_PREFIX)
        sentence = user[len(PIG_PREFIX) :]
        assert 3 <= len(sentence.split()) <= 15
        assert assistant == to_pig_latin(sentence)


def test_pig_latin_sources_match_the_jsonl() -> None:
    train, test = splits("pig_latin")
    lines = (DATASETS / "pig_latin" / "sentences.txt").read_text(encoding="utf-8").split("\n")
    sentences = {s.strip() for s in lines if s.strip()}
    assert {u[len(PIG_PREFIX) :] for u, _ in train + test} == sentences


def test_pig_latin_test_split_has_unseen_words() -> None:
    train, test = splits("pig_latin")
    seen = {w for _, a in train for w in a.split()}
    unseen = {w for _, a in test for w in a.split()} - seen
    assert len(unseen) >= 20


def test_yoda_shape() -> None:
    train, test = splits("yoda")
    for user, assistant in train + test:
        assert user.startswith(YODA_PREFIX)
        english = user[len(YODA_PREFIX) :]
        assert assistant != english
        assert assistant[0].isupper()
        assert assistant[-1] in ".?!"


def test_shouty_answers_are_shouted() -> None:
    train, test = splits("shouty")
    for user, assistant in train + test:
        assert user.endswith("?")
        assert assistant.endswith("!!!")
        assert not assistant.endswith("!!!!")
        assert assistant == assistant.upper()
        assert any(ch.isalpha() for ch in assistant)


def test_recipes_point_at_existing_files() -> None:
    recipes = json.loads((DATASETS / "recipes.json").read_text(encoding="utf-8"))
    assert [r["id"] for r in recipes] == ["pig-latin", "yoda", "shouty", "sign-off", "pig-latin-grpo"]
    for recipe in recipes:
        for key in ("title", "description", "train", "test", "probe"):
            assert isinstance(recipe[key], str) and recipe[key], (recipe["id"], key)
        train_path, test_path = DATASETS / recipe["train"], DATASETS / recipe["test"]
        assert train_path.is_file() and test_path.is_file()
        if recipe["id"] == "sign-off":  # preference pairs: {"prompt": [user], "chosen": [...], "rejected": [...]}
            prompts = {json.loads(line)["prompt"][0]["content"] for line in test_path.read_text().splitlines()}
        else:
            prompts = {user for user, _ in load(test_path)}
        assert recipe["probe"] in prompts
