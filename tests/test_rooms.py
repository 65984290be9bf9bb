"""Guess-the-next-token rooms: the hub's rules (one vote per session per round, reveal = the model's top-1,
next round appends it, close forgets, only the presenter drives) and the sentences for bad input; on a fake
model (fast, known answers) and once on the tiny real model. The QR code, chart and page pieces are in
test_rooms_page.py."""

from __future__ import annotations

import threading

import pytest

from playground.classroom.codes import ALPHABET, MAX_GUESS, MAX_NAME, Candidate, clean_code
from playground.classroom.rooms import RoomHub

WORDS = [" plain", " rain", " Spain", " hills", "plain", " north", " sea", " city", " Plain", " 2024", " sun", " x"]


class FakeModel:
    """Token i is WORDS[i]; after n ids the ranking is WORDS rotated by n, with halving probabilities."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def encode(self, text: str, chat: bool) -> tuple[int, ...]:
        return tuple(range(100, 100 + len(text.split())))

    def candidates(self, ids: tuple[int, ...], n: int) -> list[Candidate]:
        self.calls.append(ids)
        order = [(len(ids) - 8 + k) % len(WORDS) for k in range(len(WORDS))][:n]
        return [Candidate(i, WORDS[i], WORDS[i].replace(" ", "␣"), 0.5 ** (r + 1)) for r, i in enumerate(order)]

    def decode(self, ids) -> str:
        return "".join(WORDS[i] for i in ids)

    def signature(self) -> str:
        return self.tokenizer

    tokenizer = "words"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


PROMPT = "The rain in Spain falls mainly in the"  # 8 words: the fake's first ranking starts at " plain"


@pytest.fixture()
def hub() -> RoomHub:
    return RoomHub(FakeModel(), clock=Clock())


def test_open_gives_a_readable_code_and_hides_the_answer_from_students(hub):
    owner = hub.open(PROMPT, False, "teacher")
    assert len(owner.code) == 4 and set(owner.code) <= set(ALPHABET) and not set(owner.code) & set("0O1IL")
    assert owner.is_owner and owner.round == 1 and owner.model_top[0].label == "␣plain"
    student = hub.join(owner.code.lower(), "s1", "  Ana  ")
    assert student.your_name == "Ana" and not student.is_owner
    assert student.tally == () and student.model_top == () and student.chosen is None  # nothing to peek at
    assert student.as_api()["model_top"] == [] and student.as_api()["chosen"] is None
    # the pick list: the 10 candidates alphabetically (space mark and case ignored), never by probability
    assert list(student.choices) == ["␣2024", "␣city", "␣hills", "␣north", "plain", "␣Plain", "␣plain", "␣rain",
                                     "␣sea", "␣Spain"]
    assert student.members == 1 and hub.snapshot(owner.code, "teacher").members == 1


def test_one_vote_per_session_per_round_and_a_new_vote_replaces_it(hub):
    code = hub.open(PROMPT, False, "teacher").code
    hub.vote(code, "s1", "␣rain")
    view = hub.vote(code, "s1", "␣sea")  # changed their mind before the reveal
    assert view.your_vote == "␣sea" and view.votes == 1
    hub.vote(code, "s2", "␣sea")
    tally = dict(hub.snapshot(code, "teacher").tally)
    assert tally["␣sea"] == 2 and tally["␣rain"] == 0 and sum(tally.values()) == 2


def test_typed_guesses_match_candidates_by_folded_text(hub):
    code = hub.open(PROMPT, False, "teacher").code
    assert hub.vote(code, "a", "  PLAIN ").your_vote == "␣plain"  # case and spaces folded; the likelier wins
    assert hub.vote(code, "b", "Plain").your_vote == "␣plain"     # " plain" ranks above "plain" and " Plain"
    assert hub.vote(code, "f", "plain").your_vote == "plain"      # exactly a list label: that token
    assert hub.vote(code, "c", "␣Spain").your_vote == "␣Spain"    # exact label from the list
    assert hub.vote(code, "d", " Madrid ").your_vote == "Madrid"  # not a candidate: counted as typed
    hub.vote(code, "e", "madrid")
    tally = dict(hub.snapshot(code, "teacher").tally)
    assert tally["␣plain"] == 2 and tally["␣Spain"] == 1 and tally["madrid"] == 2
    assert list(tally)[-1] == "madrid"  # typed guesses come after the pick list


def test_reveal_picks_the_top_token_counts_the_right_guesses_and_ends_voting(hub):
    code = hub.open(PROMPT, False, "teacher").code
    hub.vote(code, "s1", "plain ")
    hub.vote(code, "s2", "␣rain")
    shown = hub.reveal(code, "teacher")
    assert shown.chosen.label == "␣plain" and shown.correct == 1 and shown.votes == 2
    mine = hub.snapshot(code, "s1")
    assert mine.chosen.label == "␣plain" and mine.your_vote_correct is True and dict(mine.tally)["␣rain"] == 1
    assert hub.snapshot(code, "s2").your_vote_correct is False
    with pytest.raises(ValueError, match="Voting for round 1 is over: the model's choice is revealed"):
        hub.vote(code, "s1", "␣sea")
    assert hub.reveal(code, "teacher").history[-1].correct == 1 and len(hub.snapshot(code).history) == 1


def test_next_round_appends_the_models_choice_and_clears_the_votes(hub):
    code = hub.open(PROMPT, False, "teacher").code
    hub.vote(code, "s1", "␣plain")
    with pytest.raises(ValueError, match="Reveal the model's choice first"):
        hub.next_round(code, "teacher")
    hub.reveal(code, "teacher")
    view = hub.next_round(code, "teacher")
    assert view.round == 2 and view.continuation == " plain" and view.votes == 0 and not view.revealed
    assert hub.model.calls[-1] == (*range(100, 108), 0)  # the prompt's ids, then the chosen token
    assert view.model_top[0].label == "␣rain"             # the new round's ranking
    assert hub.vote(code, "s1", "␣rain").your_vote == "␣rain"  # voting is open again
    hub.reveal(code, "teacher")
    assert hub.next_round(code, "teacher").continuation == " plain rain"


def test_close_forgets_everything(hub):
    code = hub.open(PROMPT, False, "teacher").code
    hub.join(code, "s1", "Ana")
    hub.vote(code, "s1", "␣sea")
    assert hub.close(code, "teacher") == code and len(hub) == 0
    # a student still polling is told the room ended, not to check a code they typed right
    with pytest.raises(ValueError, match=f"^Room {code} has ended: its presenter closed it"):
        hub.snapshot(code, "s1")
    with pytest.raises(ValueError, match="has ended"):
        hub.vote(code, "s1", "␣sea")
    with pytest.raises(ValueError, match="No open room has the code ZZZZ"):  # a code never opened
        hub.snapshot("ZZZZ", "s1")


def test_only_the_presenter_drives_the_room(hub):
    code = hub.open(PROMPT, False, "teacher").code
    for action, words in ((hub.reveal, "reveal the model's choice"), (hub.next_round, "start the next round"),
                          (hub.close, "close the room")):
        with pytest.raises(ValueError, match=f"Only the presenter who opened room {code} can {words}"):
            action(code, "s1")
    assert len(hub) == 1 and not hub.snapshot(code).revealed


def test_bad_input_gets_a_sentence_naming_the_field(hub):
    code = hub.open(PROMPT, False, "teacher").code
    cases = [(lambda: hub.join("", "s"), "The room code is empty"),
             (lambda: hub.join("K7Q", "s"), "room code must be 4 letters or digits"),
             (lambda: hub.join("OIL0", "s"), "room code must be 4 letters or digits"),  # look-alikes are not codes
             (lambda: hub.vote(code, "s", "   "), "The vote is empty: pick a token"),
             (lambda: hub.vote(code, "s", "␣"), "The vote is empty"),
             (lambda: hub.vote(code, "s", None), "The vote is empty"),
             (lambda: hub.vote(code, "s", 42), "The vote must be text"),
             (lambda: hub.join(code, "s", 7), "The name must be text"),
             (lambda: hub.join(code, "", "x"), "No browser session"),
             (lambda: hub.open("  ", False, "t2"), "The prompt is empty"),
             (lambda: hub.open("x" * 5000, False, "t2"), "at most 2000")]
    for call, sentence in cases:
        with pytest.raises(ValueError, match=sentence):
            call()
    assert clean_code(f" {code[:2].lower()}-{code[2:]} ") == code  # case, spaces and dashes do not matter
    view = hub.join(code, "s", "\x00Bo\nb " + "y" * 100)
    assert view.your_name == ("Bo b " + "y" * 100)[:MAX_NAME]
    assert len(hub.vote(code, "s", "z" * 200).your_vote) == MAX_GUESS


def test_the_presenter_sees_names_and_who_voted_but_students_do_not(hub):
    from playground.classroom.page import presenter_html

    code = hub.open(PROMPT, False, "teacher").code
    hub.join(code, "s1", "Ana")
    hub.join(code, "s2", "<Bo>")
    hub.join(code, "s3")  # anonymous: counted, not listed
    hub.vote(code, "s2", "␣sea")
    view = hub.snapshot(code, "teacher")
    assert view.people == (("Ana", False), ("<Bo>", True)) and view.members == 3
    assert hub.snapshot(code, "s1").people == () and hub.snapshot(code, "s1").as_api()["people"] == []
    assert "Ana, &lt;Bo&gt; ✓" in presenter_html(view) and "3 joined, 1 voted" in presenter_html(view)


def test_a_model_with_another_tokenizer_cannot_continue_a_room(hub):
    code = hub.open(PROMPT, False, "teacher").code
    hub.reveal(code, "teacher")
    hub.model.tokenizer = "another"
    with pytest.raises(ValueError, match="A model with another tokenizer was loaded since this room opened"):
        hub.next_round(code, "teacher")


def test_rooms_expire_when_idle_are_capped_and_one_per_presenter():
    clock = Clock()
    hub = RoomHub(FakeModel(), clock=clock, max_rooms=2, idle_seconds=60)
    first = hub.open(PROMPT, False, "t1").code
    second = hub.open(PROMPT, False, "t1").code  # the same presenter page: the old room closes
    assert hub.owned_by("t1") == second and len(hub) == 1
    with pytest.raises(ValueError, match=f"Room {first} has ended: its presenter opened a new room"):
        hub.snapshot(first)
    hub.open(PROMPT, False, "t2")
    with pytest.raises(ValueError, match="2 rooms are open on this server"):
        hub.open(PROMPT, False, "t3")
    clock.now += 50
    hub.vote(second, "s1", "␣sea")  # activity keeps a room open
    clock.now += 30
    assert hub.owned_by("t1") == second and hub.owned_by("t2") is None  # t2's room idled out
    hub.open(PROMPT, False, "t3")
    clock.now += 61
    assert len(hub) == 0
    with pytest.raises(ValueError, match=f"Room {second} has ended: it closed after 0.0166667 hours without activity"):
        hub.snapshot(second)


def test_a_typed_guess_is_one_word(hub):
    """The round asks for the next token: a phrase would be a bar no candidate could match."""
    code = hub.open(PROMPT, False, "teacher").code
    with pytest.raises(ValueError, match="^Guess one next word, not 4: the model picks one token at a time"):
        hub.vote(code, "s1", "and then the city")
    assert hub.vote(code, "s1", "  sea ").your_vote and hub.vote(code, "s2", "␣sea").your_vote == "␣sea"


def test_concurrent_votes_all_count(hub):
    code = hub.open(PROMPT, False, "teacher").code
    threads = [threading.Thread(target=hub.vote, args=(code, f"s{i}", WORDS[i % 10])) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    view = hub.snapshot(code, "teacher")
    assert view.votes == view.members == 200 and sum(n for _, n in view.tally) == 200


def test_on_the_tiny_model_the_reveal_is_greedy_and_next_round_appends_it(tiny_store):
    import torch

    from playground.classroom.model_side import DecodeModel
    from playground.decode.session import DecodeService

    decode = DecodeService(tiny_store)
    hub = RoomHub(DecodeModel(decode))
    view = hub.open(PROMPT, False, "teacher")
    ids = decode.encode(PROMPT, False).ids
    logits = decode.logits(ids)
    top = torch.topk(logits, 10).indices.tolist()
    assert [c.token_id for c in view.model_top] == top
    assert abs(sum(c.prob for c in view.model_top) - float(logits.softmax(-1)[top].sum())) < 1e-5
    assert len(view.choices) == len(set(c.label for c in view.model_top))
    hub.vote(view.code, "s1", view.choices[0])
    shown = hub.reveal(view.code, "teacher")
    assert shown.chosen.token_id == int(torch.argmax(logits))
    nxt = hub.next_round(view.code, "teacher")
    assert nxt.continuation == tiny_store.current.tokenizer.decode([top[0]], clean_up_tokenization_spaces=False)
    assert [c.token_id for c in nxt.model_top] == torch.topk(decode.logits((*ids, top[0])), 10).indices.tolist()


class ShiftedModel(FakeModel):
    """Another model side on the same tokenizer (a presenter's adapter): its ranking starts one word later."""

    def candidates(self, ids: tuple[int, ...], n: int) -> list[Candidate]:
        return super().candidates((*ids, 0), n)


def test_a_room_runs_the_model_its_presenter_opened_it_with(hub):
    """The room tab passes the model as the presenter's browser runs it (its own adapter), not the server's."""
    own = hub.open(PROMPT, False, "teacher", model=ShiftedModel())
    assert own.model_top[0].label == "␣rain"  # the presenter's model; the hub's would say "␣plain"
    assert hub.open(PROMPT, False, "other").model_top[0].label == "␣plain"
    hub.reveal(own.code, "teacher")
    nxt = hub.next_round(own.code, "teacher")
    assert nxt.continuation == " rain" and nxt.model_top[0].label == "␣Spain"  # next rounds too
