"""The core's commands (gateway/commands.py): their defaults (what a bare `CloseClient()`
or `ReleaseUpstream()` asks), equality by kind and value (what the playbooks compare),
slots that refuse a misspelt field, and that every command is in the `Command` union and
carried out by the adapter (client.py's `_do`, which ignores what it does not know)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path
from typing import get_args

import pytest

from wsgate.gateway import commands
from wsgate.gateway.commands import (
    CallSoon,
    ClientReading,
    CloseClient,
    CloseTunnel,
    Command,
    Log,
    OpenUpstream,
    ReleaseUpstream,
    SendToClient,
    SendToUpstream,
    StartTunnel,
    Wakeup,
)

# The source, not the module's file: that may be a compiled build's.
CLIENT_PY = Path(__file__).resolve().parents[2] / "src/wsgate/gateway/client.py"
ALL = [
    SendToClient(b"x"),
    CloseClient(),
    ClientReading(on=False),
    Wakeup(1.5),
    OpenUpstream("b1", head_request=False, head_limit=16384),
    SendToUpstream(b"x"),
    ReleaseUpstream(),
    StartTunnel(b"", b"", {}, 60.0),
    CloseTunnel(1001, "", "closed"),
    CallSoon(),
    Log("event", "drain", {}),
]


def defined_commands() -> set[type]:
    """The dataclasses commands.py defines."""
    return {
        value
        for value in vars(commands).values()
        if inspect.isclass(value)
        and dataclasses.is_dataclass(value)
        and value.__module__ == commands.__name__
    }


def test_a_bare_close_or_release_is_the_gentle_one() -> None:
    assert CloseClient().abort is False  # flush what was written
    release = ReleaseUpstream()
    assert (release.reuse, release.abort) == (False, False)  # closed, not reused, not cut


def test_an_open_asks_for_any_connection_unless_told_fresh() -> None:
    assert OpenUpstream("b1", head_request=True, head_limit=1).fresh is False
    assert OpenUpstream("b1", True, 1, True).fresh is True


def test_a_tunnel_holds_no_count_unless_given_one() -> None:
    tunnel = StartTunnel(b"tail", b"early", {"pool": "app"}, 30.0)
    assert (tunnel.backend, tunnel.client) == (None, None)


def test_commands_are_equal_by_kind_and_value() -> None:
    assert SendToClient(b"x") == SendToClient(b"x")
    assert SendToClient(b"x") != SendToClient(b"y")
    # The same bytes to the other side are another command: playbooks tell them apart.
    upstream: object = SendToUpstream(b"x")
    assert SendToClient(b"x") != upstream
    assert Wakeup(None) != Wakeup(0.0)
    assert CallSoon() == CallSoon()
    assert CloseTunnel(1001, "", "closed") != CloseTunnel(1012, "", "closed")
    assert Log("error", "no_route", {"a": 1}) != Log("event", "no_route", {"a": 1})


@pytest.mark.parametrize("command", ALL, ids=lambda c: type(c).__name__)
def test_a_misspelt_field_is_refused(command: Command) -> None:
    with pytest.raises(AttributeError):
        command.abortt = True  # type: ignore[union-attr]
    assert not hasattr(command, "__dict__")


def test_every_command_is_in_the_union() -> None:
    assert set(get_args(Command)) == defined_commands()
    assert {type(c) for c in ALL} == defined_commands()


def test_the_adapter_carries_out_every_command() -> None:
    """client.py's `_do` has one isinstance branch per command: one left out would be
    dropped in silence (the method has no else)."""
    source = CLIENT_PY.read_text()
    (do,) = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef) and node.name == "_do"
    ]
    handled = {
        call.args[1].id
        for call in ast.walk(do)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "isinstance"
        and isinstance(call.args[1], ast.Name)
    }
    assert handled == {kind.__name__ for kind in defined_commands()}
