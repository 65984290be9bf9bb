"""RoomHub: the open poll rooms, in memory only, shared by every browser session.

Gradio-free and thread-safe: one lock guards the rooms; the model is never called under it (a forward pass
would stall every student's poll), so a round's candidates are computed first and applied after, checking the
room did not move on meanwhile. Rooms are forgotten on close or after `idle_seconds` without a join, a vote
or a presenter action; nothing is written anywhere.

Who may do what: a room belongs to the page that opened it (its session) and to the owner token handed to that
page, which its browser keeps, so a reloaded projector page (a new session) gets its room back. A script can
invent sessions but not computers, so rooms and joins are also capped per client host.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from playground.classroom.codes import Candidate, clean_code, clean_guess, clean_name, fold, match, new_code
from playground.classroom.views import Room, RoomView, RoundResult, Vote, room_view
from playground.decode.checks import check_bool
from playground.fsutil import check_str
from playground.model.turns import Urgency, urgency

TOP_N = 10              # candidates per round: the pick list and the model's bars
MAX_PROMPT = 2000       # characters of a room's prompt
MAX_ROUNDS = 200        # tokens a room may append
MAX_ROOMS = 50          # rooms open at once on one server
MAX_MEMBERS = 500       # people in one room
IDLE_SECONDS = 3 * 3600
MAX_ROOMS_PER_HOST = 3     # rooms one computer may have open (so one machine cannot take all MAX_ROOMS)
MAX_MEMBERS_PER_HOST = 8   # sessions one computer may add to a room (so one machine cannot fill it)
MIN_AUDIENCE = 2           # other devices in a room before its presenter's calls go first (ui/turns.py)


class NextTokenModel(Protocol):
    """The model side of a room (classroom/model_side.py wraps the DecodeService; tests pass a fake)."""

    def encode(self, text: str, chat: bool) -> tuple[int, ...]: ...
    def candidates(self, ids: tuple[int, ...], n: int) -> list[Candidate]: ...  # best first
    def decode(self, ids: Sequence[int]) -> str: ...
    def signature(self) -> str: ...  # changes when a model with another tokenizer is loaded


def _session(session: object) -> str:
    if not isinstance(session, str) or not session:
        raise ValueError("No browser session came with the request: reload the page and try again.")
    return session


def _host(host: object) -> str:
    return host.strip()[:64] if isinstance(host, str) else ""


def trusted_host(host: str) -> bool:
    """This machine, or no host known (in-process calls): never capped per host. The server's own machine is
    the teacher's (who could stop the server anyway), and behind a reverse proxy on it every client looks
    local, where a per-host cap would count the whole class as one computer."""
    if not host or host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _same_token(token: object, room: Room) -> bool:
    return (isinstance(token, str) and bool(token) and bool(room.token)
            and secrets.compare_digest(token.encode(), room.token.encode()))


def _held_by(room: Room, owner: str, token: object) -> bool:
    """The room's presenter: its owner session, or a page holding its owner token (after a reload)."""
    return (bool(owner) and room.owner == owner) or _same_token(token, room)


class RoomHub:
    def __init__(self, model: NextTokenModel, *, top_n: int = TOP_N, max_rooms: int = MAX_ROOMS,
                 max_members: int = MAX_MEMBERS, idle_seconds: float = IDLE_SECONDS,
                 max_rooms_per_host: int = MAX_ROOMS_PER_HOST, max_members_per_host: int = MAX_MEMBERS_PER_HOST,
                 min_audience: int = MIN_AUDIENCE, clock: Callable[[], float] = time.monotonic) -> None:
        self.model = model
        self.top_n, self.max_rooms, self.max_members = top_n, max_rooms, max_members
        self.max_rooms_per_host, self.max_members_per_host = max_rooms_per_host, max_members_per_host
        self.min_audience, self.idle_seconds, self.clock = min_audience, idle_seconds, clock
        self._rooms: dict[str, Room] = {}
        self._ended: dict[str, str] = {}  # recently ended code -> how (a polling student is told, not "check it")
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ presenter

    def open(self, prompt: str, chat: bool, owner: str, *, host: str = "", token: str = "",
             model: NextTokenModel | None = None) -> RoomView:
        """Open a room on `prompt` from client `host`; the owner's previous room, if any, closes (one room per
        presenter: its session, or the owner `token` its browser kept from before a reload). The view carries
        the new room's owner token (`owner_token`) for the browser to keep. `model`: the room's own model side
        (the model as the presenter's browser runs it, its adapter included); default: the hub's."""
        owner, host = _session(owner), _host(host)
        prompt, chat = check_str("prompt", prompt), check_bool("chat", chat)
        if not prompt.strip():
            raise ValueError("The prompt is empty: type the text the class should continue.")
        if len(prompt) > MAX_PROMPT:
            raise ValueError(f"The prompt is {len(prompt)} characters; a room takes at most {MAX_PROMPT}.")
        side = model or self.model
        ids = tuple(side.encode(prompt, chat))
        candidates = self._candidates(ids, side, urgent=False)  # no class is waiting for a room just opened
        with self._lock:
            self._purge()
            for code in [c for c, r in self._rooms.items() if _held_by(r, owner, token)]:
                self._end(code, "its presenter opened a new room")
            if len(self._rooms) >= self.max_rooms:
                raise ValueError(f"{self.max_rooms} rooms are open on this server, the most it keeps: close one, "
                                 "or wait until an idle one expires.")
            if (not trusted_host(host)
                    and sum(r.host == host for r in self._rooms.values()) >= self.max_rooms_per_host):
                raise ValueError(f"{self.max_rooms_per_host} rooms are already open from this computer ({host}), "
                                 "the most one computer may have: close one of them first.")
            code = new_code(self._rooms.keys() | self._ended.keys())  # a student polling an ended code is told so
            room = Room(code=code, owner=owner, prompt=prompt, chat=chat, prompt_ids=ids,
                        candidates=candidates, last_active=self.clock(), signature=side.signature(),
                        token=secrets.token_urlsafe(24), host=host, model=model)
            self._rooms[room.code] = room
            return room_view(room, owner, with_token=True)

    def resume(self, token: str, session: str) -> RoomView | None:
        """The live room this owner token opened, now presented by `session` (a reloaded presenter page gets
        its room back, and its calls go first again); None when the token opens no room."""
        if not isinstance(token, str) or not token:
            return None
        session = _session(session)
        with self._lock:
            self._purge()
            room = next((r for r in self._rooms.values() if _same_token(token, r)), None)
            if room is None:
                return None
            room.owner, room.last_active = session, self.clock()
            return room_view(room, session, with_token=True)

    def reveal(self, code: str, owner: str, token: str = "") -> RoomView:
        """Show the model's choice (its top-1 token) and who guessed it; voting for this round ends."""
        with self._lock:
            room = self._owned(code, owner, "reveal the model's choice", token)
            if not room.revealed:
                room.revealed = True
                room.history.append(RoundResult(room.round, room.chosen, len(room.votes), room.correct()))
                room.version += 1
            return room_view(room, owner)

    def next_round(self, code: str, owner: str, token: str = "") -> RoomView:
        """Append the model's choice to the text and start a new round (new candidates, no votes)."""
        with self._lock:
            room = self._owned(code, owner, "start the next round", token)
            if not room.revealed:
                raise ValueError("Reveal the model's choice first: the next round appends it to the text.")
            if len(room.appended) >= MAX_ROUNDS:
                raise ValueError(f"This room has played {MAX_ROUNDS} rounds, the most it keeps: open a new room.")
            side = room.model or self.model
            if room.signature != side.signature():  # its token ids mean nothing to the new tokenizer
                raise ValueError("A model with another tokenizer was loaded since this room opened: open a new "
                                 "room to go on with this model.")
            this_round, appended = room.round, [*room.appended, room.chosen.token_id]
            ids, urgent = room.prompt_ids + tuple(appended), room.audience(trusted_host) >= self.min_audience
        candidates = self._candidates(ids, side, urgent)  # the model runs outside the lock
        continuation = side.decode(appended)
        with self._lock:
            room = self._owned(code, owner, "start the next round", token)
            if room.round == this_round and room.revealed:  # else a second click already moved on
                room.appended, room.continuation, room.candidates = appended, continuation, candidates
                room.round, room.revealed, room.votes = room.round + 1, False, {}
                room.version += 1
            return room_view(room, owner)

    def close(self, code: str, owner: str, token: str = "") -> str:
        """Close the room (returns its code): its prompt, members, names and votes are forgotten at once."""
        with self._lock:
            room = self._owned(code, owner, "close the room", token)
            self._end(room.code, "its presenter closed it")
            return room.code

    # ------------------------------------------------------------------ students

    def join(self, code: str, session: str, name: str = "", host: str = "") -> RoomView:
        """Join (or rejoin, renaming) a room from client `host`; the name is optional (none keeps one given)."""
        session, name = _session(session), clean_name(name)
        with self._lock:
            room = self._room(code)
            new = self._admit(room, session, _host(host))
            if new or (name and room.members[session] != name):  # a rejoin with no name keeps the old one
                room.members[session] = name
                room.version += 1
            room.last_active = self.clock()
            return room_view(room, session)

    def vote(self, code: str, session: str, guess: str, host: str = "", round_no: int = 0) -> RoomView:
        """This session's vote for the current round (or for `round_no`, refused once another round started):
        one per round, a new vote replaces the old one until the reveal. Voting without joining joins."""
        session = _session(session)
        with self._lock:
            room = self._room(code)
            guess = clean_guess(guess, {c.label for c in room.candidates})
            if round_no and round_no != room.round:  # a ballot still on screen from a round that ended
                raise ValueError(f"Round {round_no} is over: this is round {room.round}. Vote from the new list.")
            if room.revealed:
                raise ValueError(f"Voting for round {room.round} is over: the model's choice is revealed. "
                                 "Wait for the next round.")
            self._admit(room, session, _host(host))
            hit = match(guess, room.candidates)
            room.votes[session] = (Vote(guess=hit.label, token_id=hit.token_id, key=hit.label) if hit
                                   else Vote(guess=guess.strip(), token_id=None, key=fold(guess)))
            room.version += 1
            room.last_active = self.clock()
            return room_view(room, session)

    # ------------------------------------------------------------------ anyone

    def snapshot(self, code: str, session: str = "", token: str = "") -> RoomView:
        """The room as this session may see it, as its presenter with its owner token (polling does not count
        as activity, nor move the room to this page)."""
        with self._lock:
            room = self._room(code)
            return room_view(room, room.owner if _same_token(token, room) else session or "")

    def owned_by(self, owner: str, token: str = "") -> str | None:
        """The code of the room this presenter session (or owner token) has open, if any."""
        with self._lock:
            self._purge()
            return next((c for c, r in self._rooms.items() if _held_by(r, owner, token)), None)

    def presenting(self, session: str) -> bool:
        """True when `session` presents a room that at least `min_audience` other devices joined: only then do
        its calls go first on the model (ui/turns.py), so opening a room alone gives no one priority."""
        with self._lock:
            self._purge()
            return bool(session) and any(r.owner == session and r.audience(trusted_host) >= self.min_audience
                                         for r in self._rooms.values())

    def __len__(self) -> int:
        with self._lock:
            self._purge()
            return len(self._rooms)

    # ------------------------------------------------------------------ internals (under the lock)

    def _candidates(self, ids: tuple[int, ...], side: NextTokenModel, urgent: bool) -> tuple[Candidate, ...]:
        with urgency(Urgency.PRESENTER) if urgent else contextlib.nullcontext():  # a class waits (presenting())
            found = tuple(side.candidates(ids, self.top_n))
        if not found:
            raise ValueError("The model gave no next-token candidates for this text.")
        return found

    def _purge(self) -> None:
        now = self.clock()
        for code in [c for c, r in self._rooms.items() if now - r.last_active > self.idle_seconds]:
            self._end(code, f"it closed after {self.idle_seconds / 3600:g} hours without activity")

    def _end(self, code: str, how: str) -> None:
        del self._rooms[code]
        self._ended[code] = how
        while len(self._ended) > 4 * self.max_rooms:  # remembered only while a student might still poll it
            del self._ended[next(iter(self._ended))]

    def _room(self, code: str) -> Room:
        code = clean_code(code)
        self._purge()
        room = self._rooms.get(code)
        if room is None and code in self._ended:
            raise ValueError(f"Room {code} has ended: {self._ended[code]}. Ask for the new code if there is one.")
        if room is None:
            raise ValueError(f"No open room has the code {code}: check the code on the presenter's screen "
                             f"(a room closes when the presenter closes it or after "
                             f"{self.idle_seconds / 3600:g} hours without activity).")
        return room

    def _owned(self, code: str, owner: str, action: str, token: str = "") -> Room:
        room = self._room(code)
        if _session(owner) != room.owner:
            if not _same_token(token, room):
                raise ValueError(f"Only the presenter who opened room {room.code} can {action}.")
            room.owner = owner  # the page holding the token presents it now (sees the tally, goes first)
        room.last_active = self.clock()
        return room

    def _admit(self, room: Room, session: str, host: str) -> bool:
        """Let `session` in; True when it is new. A script can invent sessions but not computers: a computer
        other than this one adds at most `max_members_per_host` people to a room."""
        if session in room.members:
            return False
        if len(room.members) >= self.max_members:
            raise ValueError(f"Room {room.code} is full ({self.max_members} people).")
        if not trusted_host(host) and room.joined_from(host) >= self.max_members_per_host:
            raise ValueError(f"{self.max_members_per_host} people already joined room {room.code} from this "
                             f"computer ({host}), the most one computer may add: join from your own device.")
        room.members[session], room.member_hosts[session] = "", host
        return True
