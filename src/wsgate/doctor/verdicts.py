"""Observations in, layers and findings out: the doctor's judgement, with no I/O.

Call `diagnose(observations)`. The probe stops at the first layer that fails, so each
`_judge_*` step returns its findings and whether later layers were reached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wsgate.doctor.fixes import TCP_PROXY_DROP_FIX, fix_for
from wsgate.doctor.layers import Layer, layers_of
from wsgate.doctor.observations import (
    Answer,
    AnswerKind,
    CompareObs,
    IdleEnd,
    IdleObs,
    Observations,
    QuietObs,
    TcpOutcome,
    TlsFailure,
)
from wsgate.doctor.reasons import going_away, read_refusal, subprotocol_fix
from wsgate.doctor.signatures import APACHE, CLOUDFLARE, HAPROXY, WSGATE, recognise
from wsgate.doctor.signatures import timeout_setting as setting_for
from wsgate.findings import CATALOGUE, cause
from wsgate.findings.model import Severity

# Certificates expiring sooner than this get a warning.
CERT_WARN_DAYS = 14.0
# Burst latency growth that counts as overload: p95 above both of these.
BURST_GROWTH_FACTOR = 4.0
BURST_GROWTH_MIN_MS = 500.0


# The reasons of wsgate's own going-away closes (gateway/server.py, drains.py, reload.py),
# and what they mean.
WSGATE_GOING_AWAY = {
    "server shutting down": "wsgate closes the WebSockets still open with these words when "
    "it drains to stop or restart (SIGTERM; the server.drain_* keys say when)",
    "backend drained": "wsgate closes the tunnels of a backend drained through its admin API "
    "with these words",
}


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    severity: Severity
    layer: str
    summary: str
    evidence: str
    fix: str


@dataclass(frozen=True, slots=True)
class Diagnosis:
    layers: tuple[Layer, ...]
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not any(f.severity is Severity.ERROR for f in self.findings)


def finding(
    code: str,
    layer: str,
    evidence: str,
    product: str | None = None,
    fix: str | None = None,
    severity: Severity | None = None,
) -> Finding:
    """A finding for catalogue `code`: its summary, and the product-specific fix if any."""
    item = cause(code)
    return Finding(
        code=code,
        severity=severity or item.severity,
        layer=layer,
        summary=item.summary,
        evidence=evidence,
        fix=fix or fix_for(code, product) or item.fix,
    )


def diagnose(obs: Observations) -> Diagnosis:
    """Judge every layer that was probed; add `healthy` when nothing is in error."""
    found: list[Finding] = []
    reached_101 = _judge_connection(obs, found) and _judge_answer(obs, found)
    if reached_101:
        _judge_open(obs, found)
    if obs.burst is not None:
        _judge_burst(obs, found)
    errors = [f for f in found if f.severity is Severity.ERROR]
    if reached_101 and not errors and obs.ping is not None and obs.ping.ok:
        ms = obs.handshake_ms or 0.0
        found.append(
            finding(
                "healthy",
                "close",
                f"101 in {ms:.1f} ms, pong in {obs.ping.ms:.1f} ms",
            )
        )
    return Diagnosis(tuple(layers_of(obs)), tuple(found))


def _judge_connection(obs: Observations, found: list[Finding]) -> bool:
    dns = obs.dns
    if dns is None:
        return False
    if dns.error or not dns.addresses:
        found.append(
            finding(
                "dns_failure",
                "dns",
                f"resolving {dns.host!r} failed after {dns.ms:.1f} ms: {dns.error or 'no address'}",
            )
        )
        return False
    if not obs.tcp:
        return False
    attempts = "; ".join(
        f"{a.address} port {a.port} {a.outcome} in {a.ms:.1f} ms"
        + (f" ({a.error})" if a.error else "")
        for a in obs.tcp
    )
    outcomes = {a.outcome for a in obs.tcp}
    if TcpOutcome.CONNECTED not in outcomes:
        if TcpOutcome.TIMEOUT in outcomes:
            code = "tcp_timeout"
            attempts += f" (timeout {obs.settings.timeout_s:g} s)"
        elif outcomes == {TcpOutcome.REFUSED}:
            code = "tcp_refused"
        else:
            code = "tcp_failed"
        found.append(finding(code, "tcp", attempts))
        return False
    if len(outcomes) > 1:
        found.append(finding("tcp_partial", "tcp", attempts))
    tls = obs.tls
    if tls is None:
        return not obs.target.secure
    if tls.failure is not None:
        code = {
            TlsFailure.UNTRUSTED: "tls_cert_untrusted",
            TlsFailure.EXPIRED: "tls_cert_expired",
            TlsFailure.HOSTNAME: "tls_hostname_mismatch",
            TlsFailure.NO_ALPN: "tls_no_http11_alpn",
        }.get(tls.failure, "tls_failed")
        found.append(
            finding(code, "tls", f"TLS handshake failed after {tls.ms:.1f} ms: {tls.error}")
        )
        return False
    if tls.alpn not in (None, "http/1.1"):
        found.append(
            finding(
                "tls_no_http11_alpn",
                "tls",
                f"offered ALPN http/1.1, the server selected {tls.alpn!r}",
            )
        )
        return False
    if tls.days_left is not None and tls.days_left < CERT_WARN_DAYS:
        found.append(
            finding(
                "tls_cert_expiring",
                "tls",
                f"certificate for {tls.cert_subject} expires {tls.cert_not_after} "
                f"({tls.days_left:.1f} days left)",
            )
        )
    return True


def _judge_answer(obs: Observations, found: list[Finding]) -> bool:
    answer = obs.answer
    if answer is None:
        return False
    if answer.kind is AnswerKind.RESPONSE and answer.status == 101:
        return _judge_101(obs, answer, found)
    if answer.kind in (AnswerKind.EOF, AnswerKind.RESET):
        how = "reset" if answer.kind is AnswerKind.RESET else "closed"
        evidence = (
            f"the connection was {how} {answer.elapsed_ms:.0f} ms after the upgrade request, "
            f"after {answer.received_bytes} bytes and no HTTP status"
        )
        quiet, fix = _quiet_evidence(obs.quiet)
        found.append(
            finding("connection_dropped", "upgrade", evidence + quiet + _compared(obs), fix=fix)
        )
    elif answer.kind is AnswerKind.TIMEOUT:
        evidence = (
            f"no complete response head within {obs.settings.timeout_s:g} s "
            f"({answer.received_bytes} bytes received)"
        )
        found.append(finding("response_timeout", "upgrade", evidence + _compared(obs)))
    elif answer.kind is AnswerKind.GARBAGE:
        hint = ""
        if not obs.target.secure and answer.error.startswith("TLS"):
            hint = "; the bytes look like TLS: use wss://"
        found.append(finding("bad_response", "upgrade", f"{answer.error}{hint}"))
    else:
        found.append(_judge_status(obs, answer))
    return False


def _quiet_evidence(quiet: QuietObs | None) -> tuple[str, str | None]:
    """What the connection that sent nothing adds to a `connection_dropped`: the words
    for the evidence, and the fix when it shows a TCP-level proxy with a dead backend."""
    if quiet is None or quiet.error:
        return "", None
    if not quiet.closed:
        return (
            f"; a second connection that sent nothing was still open after {quiet.waited_s:g} "
            "s: the server waits for requests, and closed this one after reading it",
            None,
        )
    how = "reset" if quiet.reset else "closed"
    return (
        f"; a second connection that sent nothing was {how} too, after {quiet.ms:.0f} ms: "
        "whatever accepts connections on this port does not wait for a request, which is "
        "how a TCP-level proxy or port forwarder behaves when its own backend is down",
        TCP_PROXY_DROP_FIX,
    )


def _status_line(answer: Answer) -> str:
    return f"{answer.status} {answer.reason}".strip()


def _excerpt(answer: Answer, limit: int = 160) -> str:
    text = " ".join(answer.body.split())
    if not text:
        return "empty body"
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def _compared(obs: Observations) -> str:
    """Evidence from --connect-to: how the other address answered the same request."""
    comp: CompareObs | None = obs.compare
    if comp is None:
        return ""
    if comp.answer is None:
        return f"; --connect-to {comp.target}: {comp.error}"
    other = comp.answer
    if other.kind is not AnswerKind.RESPONSE:
        return f"; --connect-to {comp.target}: {other.kind} ({other.error or 'no status'})"
    main = obs.answer
    said = f"; --connect-to {comp.target} answered {_status_line(other)}"
    if other.status == 101:
        return said + ": that address accepts the handshake, so the problem is on the path"
    if main is not None and main.status == other.status:
        return said + " too: the status comes from there"
    return said


def _judge_status(obs: Observations, answer: Answer) -> Finding:
    """A complete non-101 answer: name the cause and the hop that answered."""
    who = recognise(answer)
    status = answer.status or 0
    elapsed_s = answer.elapsed_ms / 1000.0
    base = (
        f"{_status_line(answer)} from {who.who} after {answer.elapsed_ms:.0f} ms"
        + (f" [{'; '.join(who.evidence)}]" if who.evidence else "")
        + f"; body: {_excerpt(answer)}"
    )
    compared = _compared(obs)
    product = who.product

    def made(code: str, extra: str = "", fix: str | None = None) -> Finding:
        return finding(code, "upgrade", base + extra + compared, product, fix)

    if who.wsgate_cause is not None:
        return _wsgate_cause(obs, answer, who.wsgate_cause, made)
    proxy_error = next((e.error for e in who.proxy_status if e.error), None)
    if status == 504 or (product == CLOUDFLARE and status in (522, 524)):
        return made("gateway_timeout", "; " + setting_for(product, "response", elapsed_s))
    if status == 502 and product == APACHE and who.generated and elapsed_s >= 5.0:
        # Apache answers a hung backend with 502 Proxy Error, not 504.
        return made("gateway_timeout", "; " + setting_for(product, "response", elapsed_s))
    if proxy_error in ("connection_timeout", "http_response_timeout"):
        return made("gateway_timeout", "; " + setting_for(product, "response", elapsed_s))
    if status in (502, 503) or 520 <= status <= 527:
        overload = status == 503 and (
            answer.header("Retry-After") is not None
            or proxy_error in ("connection_limit_reached", "http_request_denied")
        )
        if overload and who.generated:
            return made("proxy_rejected")
        if who.generated or status == 502:
            extra = ""
            if product == HAPROXY and "No server is available" in answer.body:
                extra = "; HAProxy has no server UP for this backend"
            return made("gateway_upstream_unreachable", extra)
        return made("unexpected_status", "; the backend itself answered with an error")
    if status == 500 and who.generated:
        return made("proxy_internal_error")
    if status == 429 and who.generated:
        return made("proxy_rejected")
    if status == 505:
        return made(
            "upgrade_not_forwarded",
            "; the doctor sent HTTP/1.1, so a hop on the way downgraded it (nginx sends "
            "HTTP/1.0 upstream unless proxy_http_version 1.1)",
        )
    asks_version = status == 426 and answer.header("Sec-WebSocket-Version") is not None
    if (status == 426 and not asks_version) or (status == 400 and not who.generated):
        # The server names what it refused: only a complaint about the upgrade headers
        # says that a hop lost them.
        refusal = read_refusal(answer.body, obs.settings.subprotocols)
        if refusal is not None:
            extra = "; " + refusal.note
            if refusal.code == "origin_rejected":
                extra += f" ({_origin_sent(obs)})"
            return made(refusal.code, extra, subprotocol_fix(refusal.expected))
    if status == 426:
        offered = answer.header("Sec-WebSocket-Version") or answer.header("Upgrade")
        extra = f"; the server asks for {offered!r}" if offered else ""
        return made("version_mismatch", extra)
    if 200 <= status < 300:
        kind = answer.header("Content-Type") or "no Content-Type"
        return made(
            "upgrade_not_forwarded",
            f"; a {status} ({kind}) means the request was served as a plain HTTP request",
        )
    if status == 403:
        return made("origin_rejected", f"; {_origin_sent(obs)}")
    if status == 404:
        return made("path_not_found", f"; path {obs.target.resource!r}")
    return made("unexpected_status")


def _origin_sent(obs: Observations) -> str:
    origin = obs.settings.origin
    return f"Origin {origin!r} was sent" if origin else "no Origin header was sent"


def _wsgate_cause(
    obs: Observations, answer: Answer, cause_code: str, made: Callable[..., Finding]
) -> Finding:
    """wsgate made the answer: its cause code is the finding, with the catalogue's words
    (the same ones in its error body and log line), plus what the doctor can add."""
    if cause_code not in CATALOGUE:  # a newer wsgate than this doctor
        code = "proxy_rejected" if answer.status in (429, 503) else "unexpected_status"
        return made(code, f"; wsgate's cause {cause_code!r} is not in this doctor's catalogue")
    elapsed_s = answer.elapsed_ms / 1000.0
    extra = {
        "upstream_connect_timeout": "; " + setting_for(WSGATE, "connect", elapsed_s),
        "upstream_handshake_timeout": "; " + setting_for(WSGATE, "response", elapsed_s),
        "bad_upgrade_request": "; the doctor sent a valid upgrade request, so a hop in front "
        "of wsgate changed it (dropped Upgrade/Connection, or sent HTTP/1.0)",
        "no_route": f"; path {obs.target.resource!r}",
        "origin_not_allowed": f"; {_origin_sent(obs)}",
        "subprotocol_not_allowed": f"; offered: {list(obs.settings.subprotocols) or 'none'}",
    }.get(cause_code, "")
    return made(cause_code, extra)


def _judge_101(obs: Observations, answer: Answer, found: list[Finding]) -> bool:
    up = obs.upgrade
    if up is None:
        return False
    if up.accept_received != up.accept_expected:
        found.append(
            finding(
                "bad_accept",
                "101",
                f"Sec-WebSocket-Accept {up.accept_received!r}, expected {up.accept_expected!r}",
            )
        )
        return False
    problems = []
    if (up.upgrade or "").strip().lower() != "websocket":
        problems.append(f"Upgrade: {up.upgrade!r}")
    tokens = [t.strip().lower() for t in (up.connection or "").split(",")]
    if "upgrade" not in tokens:
        problems.append(f"Connection: {up.connection!r}")
    if up.extensions:
        problems.append(f"Sec-WebSocket-Extensions: {up.extensions!r} though none was offered")
    if problems:
        found.append(finding("bad_upgrade_response", "101", "101 with " + ", ".join(problems)))
        return False
    offered = up.subprotocols_offered
    if up.subprotocol is not None and up.subprotocol not in offered:
        found.append(
            finding(
                "subprotocol_mismatch",
                "101",
                f"the server selected {up.subprotocol!r}; offered: {list(offered) or 'none'}",
            )
        )
        return False
    if offered and up.subprotocol is None:
        found.append(
            finding(
                "subprotocol_mismatch",
                "101",
                f"offered {list(offered)}, the server selected none",
                severity=Severity.WARNING,
            )
        )
    ttfb = answer.ttfb_ms or answer.elapsed_ms
    if ttfb > obs.settings.slow_ms:
        found.append(
            finding(
                "slow_handshake",
                "upgrade",
                f"first byte of the 101 after {ttfb:.0f} ms (threshold "
                f"{obs.settings.slow_ms:.0f} ms)",
            )
        )
    return True


def _judge_open(obs: Observations, found: list[Finding]) -> None:
    product = recognise(obs.answer).product if obs.answer is not None else None
    if obs.ping is not None and not obs.ping.ok:
        found.append(
            finding("ping_timeout", "ping", f"after {obs.ping.ms:.0f} ms: {obs.ping.error}")
        )
        if obs.close is not None and not obs.close.clean:
            # Every layer that fails has its finding, even when it follows from this one.
            error = obs.close.error or "no close frame"
            evidence = f"{error}, after the ping got no pong: the connection is stalled"
            found.append(finding("unclean_close", "close", evidence))
        return
    if obs.echo is not None and not obs.echo.ok:
        found.append(
            finding(
                "echo_timeout",
                "echo",
                f"sent {obs.echo.sent!r}, nothing back in {obs.echo.ms:.0f} ms",
            )
        )
    if obs.idle is not None:
        _judge_idle(obs.idle, product, found)
    if obs.close is not None and not obs.close.clean:
        found.append(finding("unclean_close", "close", obs.close.error or "no close frame"))


def _judge_idle(idle: IdleObs, product: str | None, found: list[Finding]) -> None:
    cut = idle.first_cut
    keepalive = sum(span.keepalive_pings for span in idle.spans)
    if cut is None:
        survived = idle.longest_survived_s
        if keepalive and survived is not None:
            found.append(
                finding(
                    "idle_kept_alive",
                    "idle",
                    f"wsgate sent {keepalive} keepalive ping(s) while the connection was quiet "
                    f"for {survived:g} s (pools.NAME.ping_idle_s): a timeout behind the gateway "
                    "cannot cut it, and --idle cannot see one",
                )
            )
        return
    at = cut.ended_s if cut.ended_s is not None else cut.span_s
    if cut.end is IdleEnd.CLOSE_FRAME and going_away(cut.close_code, cut.close_reason):
        found.append(_went_away(cut.close_code, cut.close_reason, at, product))
        return
    if cut.end is IdleEnd.CLOSE_FRAME:
        how = f"a close frame {cut.close_code}"
        if cut.close_reason:
            how += f" {cut.close_reason!r}"
    elif cut.end is IdleEnd.SILENT:
        how = "silence: no EOF, and no pong to a ping afterwards (dropped on the way)"
    else:
        how = {IdleEnd.EOF: "TCP EOF without a close frame", IdleEnd.RESET: "TCP reset"}[cut.end]
    if cut.end is IdleEnd.SILENT:
        when = f"quiet for {cut.span_s:g} s, then dead"
    else:
        when = f"cut after {at:.1f} s idle"
    evidence = f"{when}, by {how}"
    survived = idle.longest_survived_s
    if survived is not None:
        evidence += f"; a connection quiet for {survived:g} s survived"
    if cut.end is IdleEnd.SILENT:
        # No moment of the cut is seen, so no setting can be matched to it.
        evidence += (
            "; silent drops come from NAT gateways, firewalls and load balancers that forget "
            "idle flows (an AWS NAT gateway after 350 s): ping more often than the longest "
            "quiet span that survived"
        )
    elif keepalive:
        # The gateway pinged, yet the connection was cut: its pings come too late.
        evidence += (
            f"; wsgate on the way sent {keepalive} keepalive ping(s) before the cut: its "
            "pools.NAME.ping_idle_s is longer than the timeout that cut"
        )
    elif cut.end is IdleEnd.CLOSE_FRAME and product is None:
        # A close frame is a deliberate close by an endpoint, usually the app itself.
        evidence += "; a close frame is sent on purpose: look for an idle timeout in the "
        evidence += "server's WebSocket settings (or a proxy that closes with a frame)"
    else:
        evidence += "; " + setting_for(product, "idle", at)
    found.append(finding("idle_cut", "idle", evidence, product))


def _went_away(code: int | None, reason: str, at_s: float, product: str | None) -> Finding:
    """A close frame that says the server shuts down or restarts: no timeout cut this."""
    meaning = "service restart" if code == 1012 else "going away"
    evidence = (
        f"after {at_s:.1f} s the server sent a close frame {code} ({meaning}) {reason!r}: it "
        "is shutting down or restarting, so no idle timeout on the way cut the connection"
    )
    if reason in WSGATE_GOING_AWAY:
        # The words are wsgate's own: its fix applies even when nothing named it.
        evidence += f"; {WSGATE_GOING_AWAY[reason]}"
        product = product or WSGATE
    return finding("server_going_away", "idle", evidence, product)


def _judge_burst(obs: Observations, found: list[Finding]) -> None:
    burst = obs.burst
    assert burst is not None
    counts = ", ".join(f"{outcome}: {n}" for outcome, n in burst.outcomes)
    evidence = (
        f"{burst.n} simultaneous handshakes: {counts}; latency p50 {burst.p50_ms:.0f} ms, "
        f"p95 {burst.p95_ms:.0f} ms, max {burst.max_ms:.0f} ms; a single handshake took "
        f"{burst.single_ms:.0f} ms"
    )
    product = recognise(obs.answer).product if obs.answer is not None else None
    if burst.failures:
        found.append(finding("burst_overload", "burst", evidence, product))
        return
    limit = max(burst.single_ms * BURST_GROWTH_FACTOR, burst.single_ms + BURST_GROWTH_MIN_MS)
    if burst.p95_ms > limit:
        found.append(
            finding("burst_overload", "burst", evidence, product, severity=Severity.WARNING)
        )
