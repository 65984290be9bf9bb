"""What one person sees of a room: the presenter everything, a student the prompt, the pick list and their own
vote until the reveal (so the API cannot be used to peek at the model's answer), then the result.

Gradio-free; `RoomView.as_api()` is the JSON the room_* endpoints return.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from playground.classroom.codes import Candidate, pick_list


@dataclass
class Vote:
    guess: str              # the cleaned vote as sent (a label from the list or typed text)
    token_id: int | None    # the candidate it matched, None for a guess outside the model's top tokens
    key: str                # the tally's bar: the candidate's label, else the folded text


@dataclass(frozen=True)
class RoundResult:
    round: int
    chosen: Candidate
    votes: int
    correct: int


@dataclass
class Room:
    """A room's whole state; only RoomHub touches it, under its lock."""

    code: str
    owner: str               # the presenter's session: the page that opened the room, or last showed `token`
    prompt: str
    chat: bool
    prompt_ids: tuple[int, ...]
    candidates: tuple[Candidate, ...]   # the model's top tokens for this round, best first
    last_active: float
    signature: str = ""      # the model side's tokenizer when the room opened (rooms.NextTokenModel)
    appended: list[int] = field(default_factory=list)   # the model's choices of the rounds so far
    continuation: str = ""   # the appended tokens decoded
    round: int = 1
    revealed: bool = False
    members: dict[str, str] = field(default_factory=dict)   # session -> name ("" = anonymous)
    votes: dict[str, Vote] = field(default_factory=dict)    # session -> this round's vote
    history: list[RoundResult] = field(default_factory=list)
    version: int = 0         # bumped on every change, so a page polling it redraws only when needed
    # The owner token (kept in the presenter's browser): a reload gets a new session, the token stays.
    token: str = ""
    host: str = ""           # the presenter's client host (the per-computer room cap)
    member_hosts: dict[str, str] = field(default_factory=dict)  # session -> client host (per-computer caps)
    model: Any = None        # its own rooms.NextTokenModel (the presenter's adapter), None = the hub's

    @property
    def ids(self) -> tuple[int, ...]:
        return self.prompt_ids + tuple(self.appended)

    @property
    def chosen(self) -> Candidate:
        """The model's choice this round: greedy decoding, its top-1 token."""
        return self.candidates[0]

    def tally(self) -> list[tuple[str, int]]:
        """Votes per bar: every pick-list token in list order (zeros too, so bars do not jump around), then
        typed guesses outside the list, most voted first."""
        counts = Counter(v.key for v in self.votes.values())
        listed = pick_list(self.candidates)
        others = sorted((k for k in counts if k not in listed), key=lambda k: (-counts[k], k))
        return [(label, counts.get(label, 0)) for label in listed] + [(k, counts[k]) for k in others]

    def correct(self) -> int:
        return sum(v.token_id == self.chosen.token_id for v in self.votes.values())

    def joined_from(self, host: str) -> int:
        return sum(h == host for h in self.member_hosts.values())

    def audience(self, trusted: Callable[[str], bool]) -> int:
        """Devices other than the presenter's that joined: distinct hosts, each session of a `trusted` host
        (this machine, or unknown) counted apart, so one computer inventing sessions counts once."""
        return len({s if trusted(h) else h for s, h in self.member_hosts.items()
                    if s != self.owner and (trusted(h) or h != self.host)})


@dataclass(frozen=True)
class RoomView:
    code: str
    round: int
    prompt: str
    continuation: str
    chat: bool
    choices: tuple[str, ...]
    members: int
    votes: int
    revealed: bool
    is_owner: bool
    version: int
    tally: tuple[tuple[str, int], ...] = ()     # the presenter, or everyone after the reveal
    model_top: tuple[Candidate, ...] = ()       # the presenter, or everyone after the reveal
    chosen: Candidate | None = None             # after the reveal
    correct: int | None = None                  # after the reveal: votes for the model's choice
    your_name: str = ""
    your_vote: str | None = None
    your_vote_correct: bool | None = None       # after the reveal
    history: tuple[RoundResult, ...] = ()
    people: tuple[tuple[str, bool], ...] = ()   # the presenter only: (name, voted this round) of named members
    owner_token: str = ""   # only in the views open/resume hand the presenter's page (never in as_api)

    def as_api(self) -> dict[str, Any]:
        cand = (lambda c: {"token": c.label, "text": c.text, "id": c.token_id, "prob": c.prob})
        return {"code": self.code, "round": self.round, "prompt": self.prompt, "continuation": self.continuation,
                "chat": self.chat, "choices": list(self.choices), "members": self.members, "votes": self.votes,
                "revealed": self.revealed, "is_presenter": self.is_owner, "version": self.version,
                "tally": [{"token": t, "votes": n} for t, n in self.tally],
                "model_top": [cand(c) for c in self.model_top],
                "chosen": cand(self.chosen) if self.chosen else None, "correct": self.correct,
                "your_name": self.your_name, "your_vote": self.your_vote,
                "your_vote_correct": self.your_vote_correct,
                "history": [{"round": r.round, "chosen": r.chosen.label, "votes": r.votes, "correct": r.correct}
                            for r in self.history],
                "people": [{"name": n, "voted": v} for n, v in self.people]}


def room_view(room: Room, session: str, with_token: bool = False) -> RoomView:
    """The room as `session` may see it (call under the hub's lock: it copies what it shows)."""
    owner = bool(session) and session == room.owner
    shown = owner or room.revealed
    mine = room.votes.get(session)
    return RoomView(
        code=room.code, round=room.round, prompt=room.prompt, continuation=room.continuation, chat=room.chat,
        choices=tuple(pick_list(room.candidates)), members=len(room.members), votes=len(room.votes),
        revealed=room.revealed, is_owner=owner, version=room.version,
        tally=tuple(room.tally()) if shown else (), model_top=room.candidates if shown else (),
        chosen=room.chosen if room.revealed else None, correct=room.correct() if room.revealed else None,
        your_name=room.members.get(session, ""), your_vote=mine.guess if mine else None,
        your_vote_correct=(mine.token_id == room.chosen.token_id) if (mine and room.revealed) else None,
        history=tuple(room.history),
        people=tuple((n, s in room.votes) for s, n in room.members.items() if n) if owner else (),
        owner_token=room.token if (owner and with_token) else "")
