"""What a room draws: the QR code, the vote chart (the model hidden until the reveal), the escaped page pieces
and the join link, and the pick list (whitespace tokens included), on test_rooms.py's fake model."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from test_rooms import PROMPT, Clock, FakeModel, hub  # noqa: F401 (hub: a fixture)

from playground.classroom.codes import Candidate, pick_list
from playground.classroom.rooms import RoomHub


def test_qr_svg_draws_exactly_the_qr_matrix():
    from playground.classroom.qr import qr_matrix, qr_svg

    url = "http://192.168.1.20:7860/?room=K7QX"
    matrix = qr_matrix(url)
    svg = ET.fromstring(qr_svg(url))  # valid XML
    assert svg.tag == "{http://www.w3.org/2000/svg}svg" and svg.get("aria-label") == f"QR code for {url}"
    assert svg.get("viewBox") == f"0 0 {len(matrix)} {len(matrix)}"
    path = svg.find("{http://www.w3.org/2000/svg}path").get("d")
    drawn = {(int(x), int(y)) for x, y in re.findall(r"M(\d+),(\d+)H", path)}
    dark = {(x, y) for y, row in enumerate(matrix) for x, on in enumerate(row) if on}
    assert drawn == dark and len(dark) > 100
    assert all(not any(row[:4]) for row in matrix)  # the quiet zone
    with pytest.raises(ValueError, match="join link is empty"):
        qr_svg("")


def test_chart_shows_votes_and_hides_the_model_until_the_reveal(hub):
    from playground.classroom.charts import CHOSEN, room_figure

    code = hub.open(PROMPT, False, "teacher").code
    hub.vote(code, "s1", "␣plain")
    hub.vote(code, "s2", "␣sea")
    hub.vote(code, "s3", "␣sea")
    fig = room_figure(hub.snapshot(code, "teacher"))
    votes, model = fig.data
    assert dict(zip(votes.x, votes.y))["␣sea"] == 2 and sum(votes.y) == 3
    assert list(votes.x)[:2] == ["␣2024", "␣city"]
    assert len(model.x) == 0 and "hidden until the reveal" in fig.layout.annotations[1].text
    assert list(room_figure(hub.snapshot(code, "teacher"), show_model=True).data[1].x)[0] == "␣plain"
    fig = room_figure(hub.reveal(code, "teacher"))
    votes, model = fig.data
    assert votes.marker.color[list(votes.x).index("␣plain")] == CHOSEN
    assert model.marker.color[0] == CHOSEN and model.y[0] == 0.5 and "1 of 3 guessed it" in fig.layout.title.text


def test_page_pieces_escape_and_build_the_join_link(hub):
    from playground.classroom.page import join_html, join_url, student_html, text_html

    assert join_url("10.0.0.5:7860", None, "K7QX") == "http://10.0.0.5:7860/?room=K7QX"
    assert join_url("class.example.org", "https", "K7QX") == "https://class.example.org/?room=K7QX"
    assert join_url("evil.com/<script>", None, "K7QX") == "http://localhost/?room=K7QX"
    assert "only works on this computer" in join_html("K7QX", "http://127.0.0.1:7860/?room=K7QX", "<svg/>")
    code = hub.open("<b>bold</b> & co", False, "teacher").code
    hub.join(code, "s1", "<i>Zoe</i>")
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in text_html(hub.snapshot(code, "s1"))
    assert "&lt;i&gt;Zoe&lt;/i&gt;" in student_html(hub.snapshot(code, "s1"))
    hub.vote(code, "s1", "<img>")
    hub.reveal(code, "teacher")
    line = student_html(hub.snapshot(code, "s1"))
    assert "The model chose <b>“␣city”</b> (you guessed “&lt;img&gt;”: not this time)" in line
    assert "pg-room-chosen" in text_html(hub.snapshot(code, "s1"))


def test_pick_list_keeps_one_of_each_label():
    cands = [Candidate(1, " b", "␣b", 0.5), Candidate(2, "a", "a", 0.3), Candidate(3, " b", "␣b", 0.2)]
    assert pick_list(cands) == ["a", "␣b"]


class SpaceyModel(FakeModel):
    """The top two tokens are a lone space and a newline: labels "␣" and "↵", as the app shows them."""

    def candidates(self, ids: tuple[int, ...], n: int) -> list[Candidate]:
        ranked = [Candidate(1, " ", "␣", 0.5), Candidate(2, "\n", "↵", 0.3), Candidate(3, " rain", "␣rain", 0.2)]
        return ranked[:n]


def test_a_whitespace_token_picked_from_the_list_is_a_vote_not_an_empty_one():
    spacey = RoomHub(SpaceyModel(), clock=Clock())
    code = spacey.open(PROMPT, False, "teacher").code
    assert set(spacey.join(code, "s1").choices) == {"␣", "↵", "␣rain"}
    spacey.vote(code, "s1", "␣")
    spacey.vote(code, "s2", "↵")
    with pytest.raises(ValueError, match="The vote is empty"):  # typed (not one of the labels): still refused
        spacey.vote(code, "s3", "  ")
    tally = dict(spacey.reveal(code, "teacher").tally)
    assert tally["␣"] == 1 and tally["↵"] == 1
