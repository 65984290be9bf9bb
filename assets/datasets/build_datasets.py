"""Regenerate the bundled training datasets (train.jsonl / test.jsonl) from plain-text sources.

Run from anywhere: `python assets/datasets/build_datasets.py`. The output is deterministic:
the train/test split is a seeded random sample and lines keep their source order.

Sources (one item per line, blank lines and lines starting with '#' ignored):
  pig_latin/sentences.txt  English sentences; the answer is `to_pig_latin(sentence)`
  yoda/pairs.txt           `English sentence => Yoda sentence`
  shouty/pairs.txt         `Question => answer`; the answer is upper-cased and gets "!!!"
  sign_off/pairs.txt       `Question => answer`, plus shouty/pairs.txt in normal case: DPO preference pairs
                           (chosen = answer + "Hope this helps!", rejected = the same answer without it)
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository root, for `playground`

from playground.data.pig_latin import to_pig_latin  # noqa: E402
from playground.data.sign_off import make_pair  # noqa: E402

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


def write_preference_split(name: str, rows: list[tuple[str, str]], n_test: int) -> tuple[int, int]:
    """Preference pairs {"prompt": [user], "chosen": [assistant], "rejected": [assistant]} for DPO."""
    check_unique(name, rows)
    rng = random.Random(SEED)
    test_idx = set(rng.sample(range(len(rows)), n_test))
    splits: dict[str, list[str]] = {"train": [], "test": []}
    for i, (user, answer) in enumerate(rows):
        chosen, rejected = make_pair(answer, rows[(i + 7) % len(rows)][1], rng)
        record = {"prompt": [{"role": "user", "content": user}],
                  "chosen": [{"role": "assistant", "content": chosen}],
                  "rejected": [{"role": "assistant", "content": rejected}]}
        splits["test" if i in test_idx else "train"].append(json.dumps(record, ensure_ascii=False))
    for split, lines in splits.items():
        out = HERE / name / f"{split}.jsonl"
        out.write_text("".join(line + "\n" for line in lines), encoding="utf-8", newline="\n")
    return len(splits["train"]), len(splits["test"])


def check_unique(name: str, rows: list[tuple[str, str]]) -> None:
    seen: set[str] = set()
    for user, _ in rows:
        if user.casefold() in seen:
            raise SystemExit(f"{name}: duplicate prompt {user!r}")
        seen.add(user.casefold())


def main() -> None:
    sentences = read_lines(HERE / "pig_latin" / "sentences.txt")
    pig = [(f"Translate to Pig Latin: {s}", to_pig_latin(s)) for s in sentences]
    yoda = [(f"Translate to Yoda-speak: {en}", yo) for en, yo in read_pairs(HERE / "yoda" / "pairs.txt")]
    shouty = [(q, shout(a)) for q, a in read_pairs(HERE / "shouty" / "pairs.txt")]
    for name, rows, n_test in (("pig_latin", pig, 60), ("yoda", yoda, 20), ("shouty", shouty, 20)):
        n_train, n_test = write_split(name, rows, n_test)
        print(f"{name}: {n_train} train, {n_test} test")
    sign_off = read_pairs(HERE / "sign_off" / "pairs.txt") + read_pairs(HERE / "shouty" / "pairs.txt")
    n_train, n_test = write_preference_split("sign_off", sign_off, 50)
    print(f"sign_off: {n_train} train, {n_test} test")


if __name__ == "__main__":
    main()
