"""All-or-nothing folder writes: two saves racing for one name never destroy each other."""

from __future__ import annotations

import pytest

from playground.fsutil import atomic_dir


def test_a_save_that_loses_the_race_for_a_name_is_refused_and_the_winner_kept(tmp_path):
    target = tmp_path / "pig-latin"
    with pytest.raises(FileExistsError, match="pig-latin already exists"):
        with atomic_dir(target) as late:  # both saves saw the name free when they began
            (late / "weights").write_text("second")
            with atomic_dir(target) as early:
                (early / "weights").write_text("first")
    assert (target / "weights").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["pig-latin"]  # no temp folder left behind


def test_overwrite_replaces_and_removes_the_old_copy(tmp_path):
    target = tmp_path / "cache"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("old")
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "a").write_text("new")
    assert (target / "a").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_a_failed_write_leaves_the_existing_folder_as_it_was(tmp_path):
    target = tmp_path / "cache"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target, overwrite=True) as tmp:
            (tmp / "a").write_text("half")
            raise RuntimeError("disk full")
    assert (target / "a").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_a_training_save_that_loses_its_name_takes_the_next_free_one(tmp_path):
    from playground.adapters.files import save_adapter_folder

    class Model:  # writes what PEFT writes; the first time, another save takes the name meanwhile
        def save_pretrained(self, path, **_):
            if not (tmp_path / "run").exists():
                (tmp_path / "run").mkdir()
                (tmp_path / "run" / "theirs").write_text("kept")
            (tmp_path / path).mkdir(parents=True)
            (tmp_path / path / "adapter_model.safetensors").write_bytes(b"w")

    folder = save_adapter_folder(tmp_path, "run", Model(), {"kind": "trained"})
    assert folder.name == "run-2" and (folder / "adapter_model.safetensors").is_file()
    assert (tmp_path / "run" / "theirs").read_text() == "kept"
    assert '"name": "run-2"' in (folder / "playground.json").read_text()


def test_user_text_is_cut_folded_and_shown_as_typed_in_markdown():
    from playground.fsutil import cut, markdown_literal, one_line

    assert cut("abcdef", 6) == "abcdef" and cut("abcdefg", 6) == "abcde…" and len(cut("x" * 500, 40)) == 40
    assert one_line("a\n\n b\t c", 80) == "a b c" and one_line("word " * 30, 12) == "word word w…"
    # every character Markdown formats with is escaped, so the rendered line shows the text as typed
    typed = r"a *b* _c_ [d](e) `f` #g !h |i| ~j~ {k} <l> \m"
    escaped = markdown_literal(typed)
    assert escaped == r"a \*b\* \_c\_ \[d\]\(e\) \`f\` \#g \!h \|i\| \~j\~ \{k\} \<l\> \\m"
    assert markdown_literal("plain words, 3.5 & more") == "plain words, 3.5 & more"
