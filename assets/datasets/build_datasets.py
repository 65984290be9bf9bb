"""Regenerate the bundled training datasets (train.jsonl / test.jsonl) from plain-text sources.

Run from anywhere: `python assets/datasets/build_datasets.py`. The output is deterministic:
the train/test split is a seeded random sample and lines keep their source order.

Sources (one item per line, blank lines and lines starting with '#' ignored):
  pig_latin/sentences.txt  English sentences; the answer is `to_pig_latin(sentence)`
  yoda/pairs.txt           `English sentence => Yoda sentence`
  shouty/pairs.txt         `Question => answer`; the answer is upper-cased and gets "!!!"
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository root, for `playground`

from playground.data.pig_latin import to_pig_latin  # noqa: E402

SEED = 1234
SEP = " => "


def read_lines(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def read_pairs(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for line in read_lines(path):
        prompt, sep, answer = line.partition(SEP)
        if not sep or not prompt.strip() or not answer.strip():
            raise SystemExit(f"{path}: malformed line {line!r}")
        pairs.append((prompt.strip(), answer.strip()))
    return pairs


def shout(answer: str) -> str:
    return answer.rstrip(".!").upper() + "!!!"


def write_split(name: str, rows: list[tuple[str, str]], n_test: int) -> tuple[int, int]:
    """Write `name`/train.jsonl and `name`/test.jsonl; returns (n_train, n_test)."""
    seen: set[str] = set()
    for user, _ in rows:
        key = user.casefold()
        if key in seen:
            raise SystemExit(f"{name}: duplicate prompt {user!r}")
        seen.add(key)
    test_idx = set(random.Random(SEED).sample(range(len(rows)), n_test))
    splits: dict[str, list[str]] = {"train": [], "test": []}
    for i, (user, assistant) in enumerate(rows):
        record = {
            "messages": [
                {"role": "user", "content": user},
                {"role": "assistant", "content": assistant},
            ]
        }
        splits["test" if i in test_idx else "train"].append(json.dumps(record, ensure_ascii=False))
    for split, lines in splits.items():
        out = HERE / name / f"{split}.jsonl"
        out.write_text("".join(line + "\n" for line in lines), encoding="utf-8", newline="\n")
    return len(splits["train"]), len(splits["test"])


def main() -> None:
    sentences = read_lines(HERE / "pig_latin" / "sentences.txt")
    pig = [(f"Translate to Pig Latin: {s}", to_pig_latin(s)) for s in sentences]
    yoda = [(f"Translate to Yoda-speak: {en}", yo) for en, yo in read_pairs(HERE / "yoda" / "pairs.txt")]
    shouty = [(q, shout(a)) for q, a in read_pairs(HERE / "shouty" / "pairs.txt")]
    for name, rows, n_test in (("pig_latin", pig, 60), ("yoda", yoda, 20), ("shouty", shouty, 20)):
        n_train, n_test = write_split(name, rows, n_test)
        print(f"{name}: {n_train} train, {n_test} test")


if __name__ == "__main__":
    main()
