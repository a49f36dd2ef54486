"""The state tables of a client connection (gateway/states.py): every move of each table,
allowed or forbidden, and the BadTransitionError a forbidden one raises where the tables
are enforced (the reader's `move`, an exchange's stages)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pytest

from wsgate.errors import WsgateError
from wsgate.gateway.reader import RequestReader
from wsgate.gateway.states import (
    PHASE_MOVES,
    READER_MOVES,
    STAGE_MOVES,
    BadTransitionError,
    Phase,
    Reader,
    Request,
    Stage,
    ms,
)
from wsgate.protocol.forward import Framing
from wsgate.protocol.headers import HeaderList

# The tables as docs/architecture.md draws them.
READER_ALLOWED = {
    (Reader.HEAD, Reader.BODY),
    (Reader.HEAD, Reader.UPGRADE),
    (Reader.HEAD, Reader.STOPPED),
    (Reader.BODY, Reader.HEAD),
    (Reader.BODY, Reader.UPGRADE),
    (Reader.BODY, Reader.STOPPED),
    (Reader.UPGRADE, Reader.STOPPED),
}
PHASE_ALLOWED = {
    (Phase.IDLE, Phase.BUSY),
    (Phase.IDLE, Phase.CLOSED),
    (Phase.BUSY, Phase.IDLE),
    (Phase.BUSY, Phase.TUNNEL),
    (Phase.BUSY, Phase.CLOSED),
    (Phase.TUNNEL, Phase.CLOSED),
}
STAGE_ALLOWED = {
    (Stage.WAITING, Stage.FORWARDED),
    (Stage.WAITING, Stage.DONE),
    (Stage.FORWARDED, Stage.RESPONDING),
    (Stage.FORWARDED, Stage.UPGRADING),
    (Stage.FORWARDED, Stage.WAITING),
    (Stage.FORWARDED, Stage.DONE),
    (Stage.RESPONDING, Stage.DONE),
    (Stage.UPGRADING, Stage.SWITCHED),
    (Stage.UPGRADING, Stage.DONE),
}


def moves(table: Mapping[Any, frozenset[Any]]) -> set[tuple[Any, Any]]:
    return {(old, new) for old, targets in table.items() for new in targets}


def test_the_tables_are_the_documented_ones() -> None:
    assert moves(READER_MOVES) == READER_ALLOWED
    assert moves(PHASE_MOVES) == PHASE_ALLOWED
    assert moves(STAGE_MOVES) == STAGE_ALLOWED
    # Every state has a row, the last ones an empty one.
    assert set(READER_MOVES) == set(Reader) and READER_MOVES[Reader.STOPPED] == frozenset()
    assert set(PHASE_MOVES) == set(Phase) and PHASE_MOVES[Phase.CLOSED] == frozenset()
    assert set(STAGE_MOVES) == set(Stage)
    assert STAGE_MOVES[Stage.SWITCHED] == STAGE_MOVES[Stage.DONE] == frozenset()


def test_no_table_moves_a_state_to_itself() -> None:
    for table in (READER_MOVES, PHASE_MOVES, STAGE_MOVES):
        assert all(state not in targets for state, targets in table.items())


class NoSink:
    """The reader's sink; these tests feed it no bytes, so nothing is called."""

    def on_head_begin(self) -> None:
        raise AssertionError

    def on_request(self, request: Request) -> None:
        raise AssertionError

    def on_body(self, request: Request, data: bytes) -> None:
        raise AssertionError

    def on_request_complete(self, request: Request) -> None:
        raise AssertionError

    def on_refused(self, request: Request | None, cause: str, detail: str) -> None:
        raise AssertionError

    def on_held(self, size: int) -> None:
        raise AssertionError


def reader_in(state: Reader) -> RequestReader:
    reader = RequestReader(NoSink(), max_head=8192, proxy_protocol=False)
    reader.state = state
    return reader


@pytest.mark.parametrize(("old", "new"), list(itertools.product(Reader, Reader)))
def test_every_reader_move(old: Reader, new: Reader) -> None:
    reader = reader_in(old)
    if old is new or (old, new) in READER_ALLOWED:
        reader.move(new)  # staying put is no move
        assert reader.state is new
    else:
        with pytest.raises(BadTransitionError, match=f"^reader {old.name} -> {new.name}$"):
            reader.move(new)
        assert reader.state is old


def test_a_bad_transition_is_a_wsgate_error() -> None:
    assert issubclass(BadTransitionError, WsgateError)


def test_the_states_are_int_enums_with_fixed_values() -> None:
    assert [int(s) for s in Reader] == [1, 2, 3, 4]
    assert [int(s) for s in Phase] == [1, 2, 3, 4]
    assert [int(s) for s in Stage] == [1, 2, 3, 4, 5, 6]


def test_a_new_request_owes_nothing() -> None:
    r = Request(b"GET", b"/", "1.1", HeaderList(), True, Framing.NONE, 2.5)
    assert (r.ws_key, r.upgrade, r.complete, r.close_after, r.attempts) == (
        None,
        False,
        False,
        False,
        1,
    )
    assert (r.request_id, r.request_id_made, r.client, r.overload_answer) == (
        "",
        False,
        "-",
        "http",
    )
    assert r.tried == set() and r.body == [] and r.slot is None and r.status == 0


def test_ms_rounds_to_a_tenth() -> None:
    assert ms(None) is None
    assert ms(1.26) == 1.3
    assert ms(0.04) == 0.0
