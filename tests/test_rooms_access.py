"""Who may drive a room and how much one computer may take: the owner token that gives a reloaded projector
page its room back, the per-computer caps on rooms and joins, model priority only for a room with an audience,
and the student's ballot (whichever input was used last wins). On test_rooms.py's fake model; the room tab's
handlers are called directly on a small gr.Blocks (no server, no browser)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from test_rooms import PROMPT, Clock, FakeModel

from playground.classroom.rooms import RoomHub

TEACHER, BOT = "10.0.0.5", "203.0.113.9"


@pytest.fixture()
def hub() -> RoomHub:
    return RoomHub(FakeModel(), clock=Clock())


def request(session: str, host: str = "10.0.0.7", query: dict | None = None) -> SimpleNamespace:
    """What the room tab's handlers read from a gr.Request."""
    return SimpleNamespace(session_hash=session, client=SimpleNamespace(host=host),
                           headers={"host": "10.0.0.5:7860"}, query_params=query or {})


# ------------------------------------------------------------------ A: a reloaded presenter page


def test_a_reloaded_presenter_page_gets_its_room_back_with_the_owner_token(hub):
    opened = hub.open(PROMPT, False, "page-1", host=TEACHER)
    code, token = opened.code, opened.owner_token
    assert len(token) >= 32 and "owner_token" not in opened.as_api()  # the API never shows it
    assert hub.join(code, "s1").owner_token == "" and hub.snapshot(code, "page-1").owner_token == ""
    hub.vote(code, "s1", "␣sea")
    # F5: the page has a new session; without the token it is a stranger...
    with pytest.raises(ValueError, match=f"Only the presenter who opened room {code} can reveal"):
        hub.reveal(code, "page-2")
    with pytest.raises(ValueError, match="Only the presenter"):
        hub.reveal(code, "page-2", "a-made-up-token")
    assert hub.owned_by("page-2") is None and hub.resume("a-made-up-token", "page-2") is None
    # ...with it, the new page presents the room where it was
    back = hub.resume(token, "page-2")
    assert back.code == code and back.round == 1 and back.is_owner and back.votes == 1
    assert back.owner_token == token and hub.owned_by("page-2") == code and hub.owned_by("", token) == code
    assert hub.reveal(code, "page-2").revealed and hub.next_round(code, "page-2").round == 2
    # a page that kept the token also drives it (and presents it from then on)
    assert hub.snapshot(code, "page-3", token).is_owner and not hub.snapshot(code, "page-3").is_owner
    assert hub.reveal(code, "page-3", token).revealed and hub.owned_by("page-3") == code
    # opening again from that browser replaces its room instead of leaving it to count towards the caps
    again = hub.open(PROMPT, False, "page-4", host=TEACHER, token=token)
    assert len(hub) == 1 and again.owner_token != token and hub.resume(token, "page-5") is None
    assert hub.close(again.code, "page-5", again.owner_token) == again.code and len(hub) == 0


def build_tab(rooms: RoomHub):
    """The room tab on a bare gr.Blocks; returns its components by elem_id and a way to find a handler."""
    import gradio as gr

    from playground.ui import room_tab

    with gr.Blocks(analytics_enabled=False) as demo:
        with gr.Tabs():
            with gr.Tab("Guess the next token", id="room"):
                room_tab.build(SimpleNamespace(rooms=rooms))
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}

    def listener(component, event: str):
        found = [f for f in demo.fns.values() if (getattr(component, "_id", component), event) in f.targets]
        assert len(found) == 1, f"{event}: {len(found)} listeners"
        return found[0]
    return demo, by_id, listener


def test_reloading_the_projector_page_puts_its_room_back_on_screen(hub):
    demo, ui, listener = build_tab(hub)
    on_open = listener(ui["room-open"], "click")
    key = next(b for b in on_open.inputs if type(b).__name__ == "BrowserState")
    assert key.storage_key == "pg-room-owner" and key in on_open.outputs
    on_key = listener(key, "change")  # fired when the tab is drawn and the browser's stored key is read
    opened = on_open.fn(PROMPT, False, False, {}, request("page-1", TEACHER))
    token = opened[key]["owner"]
    code = hub.owned_by("page-1")
    assert code and hub.resume(token, "page-1").code == code
    # F5: a new session and the browser's stored key
    assert ui["room-status"] not in on_key.fn({"owner": token}, code, False, request("page-1"))  # Open set it
    shown = on_key.fn({"owner": token}, "", False, request("page-2", TEACHER))
    assert f"Room <b>{code}</b>, round 1" in shown[ui["room-status"]] and code in shown[ui["room-join"]]
    assert code in shown.values() and shown[key] == {"owner": token}  # the page state holds the code again
    assert hub.owned_by("page-2") == code
    assert hub.reveal(code, "page-2").revealed  # the reloaded page drives it
    # a browser without the token (or a stale one) gets the usual blank presenter tab
    assert ui["room-status"] not in on_key.fn({}, "", False, request("page-3")) | on_key.fn({"owner": "x"}, "",
                                                                                            False, request("p"))
    # closing forgets the token in the browser
    closed = listener(ui["room-close"], "click").fn(code, {"owner": token}, request("page-2", TEACHER))
    assert closed[key] == {} and len(hub) == 0


# ------------------------------------------------------------------ B: one computer cannot jam the server


def test_one_computer_cannot_take_every_room(hub):
    assert hub.max_rooms == 50
    codes = [hub.open(PROMPT, False, f"bot-session-{i}", host=BOT).code for i in range(3)]
    for i in range(3, 50):  # made-up sessions from the same computer
        with pytest.raises(ValueError, match=rf"3 rooms are already open from this computer \({BOT}\), the most "
                                             "one computer may have: close one of them first"):
            hub.open(PROMPT, False, f"bot-session-{i}", host=BOT)
    assert len(hub) == 3 and hub.open(PROMPT, False, "teacher", host=TEACHER).code not in codes
    hub.open(PROMPT, False, "bot-session-0", host=BOT)  # the same session again: its old room is replaced
    assert len(hub) == 4
    hub.close(codes[1], "bot-session-1")
    hub.open(PROMPT, False, "bot-session-9", host=BOT)  # a closed room frees its place
    for i in range(5):  # the server's own machine (and no known host) is not capped per computer
        hub.open(PROMPT, False, f"local-{i}", host="127.0.0.1")
        hub.open(PROMPT, False, f"v6-{i}", host="::1")
    hub.open(PROMPT, False, "in-process")
    assert len(hub) == 15


def test_one_computer_cannot_fill_a_room(hub):
    code = hub.open(PROMPT, False, "teacher", host=TEACHER).code
    for i in range(8):
        hub.join(code, f"bot{i}", "", BOT)
    for call in (lambda: hub.join(code, "bot-extra", "Eve", BOT), lambda: hub.vote(code, "bot-extra", "x", BOT)):
        with pytest.raises(ValueError, match=rf"8 people already joined room {code} from this computer \({BOT}\), "
                                             "the most one computer may add: join from your own device"):
            call()
    assert hub.join(code, "bot3", "Renamed", BOT).your_name == "Renamed"  # already in: still welcome
    assert hub.vote(code, "bot4", "␣sea", BOT).your_vote == "␣sea"
    assert hub.join(code, "ana", "Ana", "10.0.0.21").members == 9  # a real student on her own device
    for i in range(20):  # students on the server's machine (a proxy in front of it): not capped per computer
        hub.vote(code, f"local{i}", "␣sea", "127.0.0.1")
    assert hub.snapshot(code, "teacher").members == 29


def test_the_model_goes_first_only_for_a_room_other_devices_joined(hub):
    from gradio.context import LocalContext

    from playground.ui.turns import is_presenter

    code = hub.open(PROMPT, False, "student-page", host="10.0.0.31").code  # anyone may open a room...
    assert not hub.presenting("student-page")  # ...but alone it gives them no priority
    for i in range(5):  # nor sessions invented on their own computer, nor that computer's other pages
        hub.join(code, f"own{i}", "", "10.0.0.31")
    hub.join(code, "friend", "", "10.0.0.32")
    hub.join(code, "student-page", "", "10.0.0.31")
    assert not hub.presenting("student-page")
    token = LocalContext.request.set(SimpleNamespace(session_hash="student-page"))
    try:
        assert not is_presenter(hub)  # ui/turns.py asks the hub the same question
        hub.join(code, "friend2", "", "10.0.0.33")  # two other devices: a class is watching
        assert hub.presenting("student-page") and not hub.presenting("friend") and not hub.presenting("")
        assert is_presenter(hub)
        LocalContext.request.set(SimpleNamespace(session_hash="friend"))
        assert not is_presenter(hub)
    finally:
        LocalContext.request.reset(token)
    local = hub.open(PROMPT, False, "projector", host="127.0.0.1")  # the bench: everyone on this machine
    hub.join(local.code, "s1", "", "127.0.0.1")
    hub.join(local.code, "s2", "", "127.0.0.1")
    assert hub.presenting("projector")


def test_the_rooms_own_model_calls_go_first_only_with_an_audience():
    """Open and Next ask the model for the round's candidates: at the presenter's urgency only when a class
    waits, so a page opening rooms in a loop does not jump every student's queue."""
    from playground.model.turns import context_urgency

    class Watched(FakeModel):
        def candidates(self, ids, n):
            seen.append(context_urgency())
            return super().candidates(ids, n)

    seen: list = []
    hub = RoomHub(Watched(), clock=Clock())
    code = hub.open(PROMPT, False, "alone", host="10.0.0.31").code
    hub.reveal(code, "alone")
    hub.next_round(code, "alone")
    assert [u is None or u.name for u in seen] == [True, True]  # no one joined: the call's own urgency
    for i, host in enumerate(("10.0.0.32", "10.0.0.33")):
        hub.join(code, f"s{i}", "", host)
    hub.reveal(code, "alone")
    hub.next_round(code, "alone")
    assert seen[-1].name == "PRESENTER"


# ------------------------------------------------------------------ C: the student's ballot


def test_whichever_ballot_input_the_student_used_last_wins(hub):
    demo, ui, listener = build_tab(hub)
    code = hub.open(PROMPT, False, "teacher", host=TEACHER).code
    me = request("s1")
    on_vote = listener(ui["room-vote"], "click")
    pick, typed = ui["room-pick"], ui["room-guess"]
    assert listener(ui["room-guess"], "submit").fn is on_vote.fn
    seat = {"code": code, "round": 1, "key": ""}
    out = on_vote.fn(None, "Madrid", seat, {}, me)  # typed, then voted: the typed guess counts...
    assert hub.snapshot(code, "s1").your_vote == "Madrid" and out[typed] == ""  # ...and the box empties
    seat = out[next(k for k, v in out.items() if isinstance(v, dict) and "key" in v)]
    on_vote.fn("␣sea", "", seat, {}, me)  # then picked from the list: the pick counts
    assert hub.snapshot(code, "s1").your_vote == "␣sea"
    # typed, then picked before voting: picking empties the box in the browser, so the pick is what is sent
    (clear,) = [f for f in demo.fns.values() if (pick._id, "input") in f.targets]
    assert clear.fn is None and clear.outputs == [typed] and clear.js.strip() == "() => ''"
    on_vote.fn("␣rain", "", seat, {}, me)
    assert hub.snapshot(code, "s1").your_vote == "␣rain"


def test_a_ballot_left_on_screen_from_the_last_round_is_not_counted_in_the_next(hub):
    """After Next the student's page shows the old list until its next poll: a vote sent from it is refused
    with a sentence, not counted in the new round (the page sends the round it shows; /room_vote may too)."""
    demo, ui, listener = build_tab(hub)
    code = hub.open(PROMPT, False, "teacher", host=TEACHER).code
    hub.join(code, "s1", "", "10.0.0.7")
    hub.reveal(code, "teacher")
    hub.next_round(code, "teacher")
    out = listener(ui["room-guess"], "submit").fn(None, "plain", {"code": code, "round": 1, "key": ""}, {},
                                                       request("s1"))
    assert "Round 1 is over: this is round 2" in str(out[ui["room-student-status"]])
    assert hub.snapshot(code, "s1").your_vote is None and hub.snapshot(code, "teacher").votes == 0
    assert hub.vote(code, "s1", "plain", round_no=2).your_vote == "plain"  # the round on screen: counted


def test_a_huge_guess_or_name_is_cut_before_it_is_read_character_by_character(monkeypatch):
    """The hub cleans votes under its lock: a megabyte-long guess may not hold every room's polls for seconds."""
    import playground.classroom.codes as codes

    looked: list[str] = []
    category = codes.unicodedata.category
    monkeypatch.setattr(codes, "unicodedata", SimpleNamespace(category=lambda ch: looked.append(ch) or category(ch)))
    assert codes.clean_guess("x" * 1_000_000) == "x" * codes.MAX_GUESS
    assert codes.clean_name("y" * 1_000_000) == "y" * codes.MAX_NAME
    assert len(looked) <= 4 * (codes.MAX_GUESS + codes.MAX_NAME)


def test_a_reloaded_student_page_is_the_same_person_with_the_same_vote(hub):
    """Each page load is a new Gradio session: the seat the student's browser keeps (BrowserState) makes a
    reloaded phone rejoin as the same member with one vote, instead of inflating the counts and, after eight
    reloads, being locked out of the room by the per-computer cap."""
    demo, ui, listener = build_tab(hub)
    code = hub.open(PROMPT, False, "teacher", host=TEACHER).code
    on_join, on_vote = listener(ui["room-join-btn"], "click"), listener(ui["room-vote"], "click")
    key_box = next(b for b in on_join.inputs if type(b).__name__ == "BrowserState")
    assert key_box.storage_key == "pg-room-seat" and key_box in on_join.outputs
    key = on_join.fn(code, "Ana", {}, {}, request("page-1"))[key_box]  # first visit: a new seat, kept
    seat = {"code": code, "round": 1, "key": ""}
    on_vote.fn("␣sea", "", seat, key, request("page-1"))
    for reload in range(10):  # reloads: new sessions, the same kept seat
        assert on_join.fn(code, "", {}, key, request(f"page-{reload + 2}"))[key_box] == key  # name box empty again
    on_vote.fn("␣rain", "", seat, key, request("page-12"))
    teacher = hub.snapshot(code, "teacher")
    assert (teacher.members, teacher.votes) == (1, 1) and dict(teacher.people) == {"Ana": True}  # name kept
    assert hub.snapshot(code, key["seat"]).your_vote == "␣rain"  # the new vote replaced the old one
    other = on_join.fn(code, "", {}, {"seat": "teacher"}, request("page-x"))[key_box]  # a tampered key: a new seat
    assert other["seat"] != "teacher" and other["seat"].startswith("seat-")
    assert hub.snapshot(code, "teacher").members == 2


def test_a_new_room_never_reuses_a_code_that_just_ended(hub, monkeypatch):
    """A student still polling an ended room is told how it ended: a new room with that code would take them into
    someone else's class without a word."""
    import playground.classroom.codes as codes

    old = hub.open(PROMPT, False, "teacher", host=TEACHER).code
    hub.close(old, "teacher")
    fresh = "".join(c for c in codes.ALPHABET if c not in old)[:codes.CODE_LENGTH]
    drawn = iter(old + fresh)  # the random draw comes up with the ended code first
    monkeypatch.setattr(codes, "secrets", SimpleNamespace(choice=lambda _: next(drawn)))
    assert hub.open(PROMPT, False, "teacher2", host=TEACHER).code == fresh
    with pytest.raises(ValueError, match=f"Room {old} has ended: its presenter closed it"):
        hub.join(old, "s1", "", "10.0.0.7")
