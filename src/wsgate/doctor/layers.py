"""One line per layer that ran: its name, verdict, time and a short detail. Pure:
`Observations` in, `Layer` rows out, in probe order (`verdicts.diagnose` adds them to
the findings)."""

from __future__ import annotations

from dataclasses import dataclass

from wsgate.doctor.observations import (
    Answer,
    AnswerKind,
    IdleEnd,
    IdleObs,
    Observations,
    QuietObs,
    TcpOutcome,
)
from wsgate.doctor.reasons import going_away
from wsgate.doctor.signatures import recognise


@dataclass(frozen=True, slots=True)
class Layer:
    name: str
    ok: bool
    ms: float
    detail: str


def _status_line(answer: Answer) -> str:
    return f"{answer.status} {answer.reason}".strip()


def layers_of(obs: Observations) -> list[Layer]:
    """One line per layer that ran, in order, with its time and a short detail."""
    rows: list[Layer] = []
    if obs.dns is not None:
        d = obs.dns
        if d.error or not d.addresses:
            detail = d.error or "no address"
        elif d.literal:
            detail = f"{d.addresses[0]} (literal address)"
        else:
            detail = ", ".join(d.addresses)
        rows.append(Layer("dns", bool(d.addresses) and not d.error, d.ms, detail))
    for a in obs.tcp:
        detail = f"{a.address} port {a.port} {a.outcome}" + (f": {a.error}" if a.error else "")
        rows.append(Layer("tcp", a.outcome is TcpOutcome.CONNECTED, a.ms, detail))
    if obs.tls is not None:
        t = obs.tls
        if t.ok:
            verified = "verified" if t.verified else "NOT verified (--insecure)"
            detail = f"{t.version}, ALPN {t.alpn or 'none'}, certificate {verified}"
            if t.cert_not_after:
                detail += f", expires {t.cert_not_after}"
        else:
            detail = f"{t.failure}: {t.error}"
        rows.append(Layer("tls", t.ok and t.alpn in (None, "http/1.1"), t.ms, detail))
    if obs.answer is not None:
        rows.append(_answer_layer(obs.answer))
    if obs.upgrade is not None:
        up = obs.upgrade
        ok = up.accept_received == up.accept_expected
        sub = f", subprotocol {up.subprotocol!r}" if up.subprotocol else ""
        if up.subprotocols_offered and not up.subprotocol:
            sub = f", no subprotocol selected (offered {list(up.subprotocols_offered)})"
        detail = f"accept {'valid' if ok else 'INVALID'}, Upgrade {up.upgrade!r}{sub}"
        rows.append(Layer("101", ok, 0.0, detail))
    if obs.ping is not None:
        p = obs.ping
        rows.append(Layer("ping", p.ok, p.ms, "pong received" if p.ok else p.error))
    if obs.echo is not None:
        e = obs.echo
        got = "echoed" if e.received == e.sent else f"got {e.received!r}"
        rows.append(Layer("echo", e.ok, e.ms, got if e.ok else "no message back"))
    if obs.idle is not None:
        rows.append(_idle_layer(obs.idle))
    if obs.close is not None:
        c = obs.close
        detail = f"close frame {c.code} received" if c.clean else (c.error or "no close frame")
        rows.append(Layer("close", c.clean, c.ms, detail))
    if obs.burst is not None:
        b = obs.burst
        counts = ", ".join(f"{outcome} x{n}" for outcome, n in b.outcomes)
        detail = f"{b.n} at once: {counts}; p95 {b.p95_ms:.0f} ms vs single {b.single_ms:.0f} ms"
        rows.append(Layer("burst", b.failures == 0, b.ms, detail))
    if obs.quiet is not None:
        rows.append(_quiet_layer(obs.quiet))
    if obs.compare is not None:
        c2 = obs.compare
        if c2.answer is None:
            rows.append(Layer("connect-to", False, 0.0, f"{c2.target}: {c2.error}"))
        else:
            row = _answer_layer(c2.answer)
            rows.append(Layer("connect-to", row.ok, row.ms, f"{c2.target}: {row.detail}"))
    return rows


def _answer_layer(answer: Answer) -> Layer:
    if answer.kind is AnswerKind.RESPONSE:
        who = recognise(answer)
        source = ""
        if answer.status != 101 and who.product is not None:
            source = f" from {who.who}"
        ttfb = f", first byte {answer.ttfb_ms:.1f} ms" if answer.ttfb_ms is not None else ""
        detail = f"{_status_line(answer)}{source}{ttfb}"
        return Layer("upgrade", answer.status == 101, answer.elapsed_ms, detail)
    detail = f"{answer.kind}: {answer.error or 'no HTTP status'}"
    return Layer("upgrade", False, answer.elapsed_ms, detail)


def _idle_layer(idle: IdleObs) -> Layer:
    cut = idle.first_cut
    mode = f"bisect over {len(idle.spans)} connections, " if idle.bisect else ""
    failed = sum(span.end is IdleEnd.FAILED for span in idle.spans)
    if failed:
        mode += f"{failed} of {len(idle.spans)} could not be opened, "
    if cut is None:
        ok = failed < len(idle.spans)
        pings = sum(span.server_pings for span in idle.spans)
        keepalive = sum(span.keepalive_pings for span in idle.spans)
        if keepalive:
            mode += f"kept alive by wsgate's keepalive ({keepalive} of {pings} ping(s)), "
        elif pings:
            mode += f"the server sent {pings} ping(s), "
        return Layer("idle", ok, idle.ms, f"{mode}quiet for {idle.requested_s:g} s, not cut")
    if cut.end is IdleEnd.SILENT:
        return Layer("idle", False, idle.ms, f"{mode}no pong after {cut.span_s:g} s quiet (silent)")
    at = cut.ended_s if cut.ended_s is not None else cut.span_s
    if going_away(cut.close_code, cut.close_reason):
        frame = f"close frame {cut.close_code} {cut.close_reason!r}"
        return Layer(
            "idle", False, idle.ms, f"{mode}the server went away after {at:.1f} s ({frame})"
        )
    return Layer("idle", False, idle.ms, f"{mode}cut after {at:.1f} s ({cut.end})")


def _quiet_layer(quiet: QuietObs) -> Layer:
    """The connection that sent nothing: closed by the other side, or still open."""
    if quiet.closed:
        how = "reset" if quiet.reset else "closed (EOF)"
        detail = f"a connection that sent nothing was {how} after {quiet.ms:.1f} ms"
    elif quiet.error:
        detail = f"a connection that sent nothing: {quiet.error}"
    else:
        detail = f"a connection that sent nothing was still open after {quiet.waited_s:g} s"
    return Layer("quiet", not quiet.closed, quiet.ms, detail)
