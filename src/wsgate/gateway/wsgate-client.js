/**
 * wsgate-client.js: a browser WebSocket that reconnects by itself, with the policy of
 * wsgate's Python client (wsgate.client; the arithmetic is wsgate/policy/backoff.py).
 * A dependency-free ES module, no build step. `wsgate serve` serves it at
 * `[server] client_script_path` (e.g. "/wsgate-client.js").
 *
 * Why: a browser cannot read the status or headers of a refused WebSocket handshake
 * (503 + Retry-After is "error", close code 1006). An overloaded wsgate therefore
 * completes the handshake and closes at once with 1013 (or 1012 when it restarts, 1008
 * when rate limited) and a machine-readable reason, `retry-after=12; cause=overloaded_queue_full`
 * (wsgate/protocol/close_reason.py). This client reads that reason and waits as told.
 *
 *   import { WsgateClient } from "/wsgate-client.js";
 *   const client = new WsgateClient("wss://example.org/chat", { queueLimit: 50 });
 *   client.addEventListener("open", () => client.send("resubscribe"));
 *   client.addEventListener("message", (event) => show(event.data));
 *   client.addEventListener("retry", (event) => status(`again in ${event.detail.delayMs} ms`));
 *   client.addEventListener("giveup", (event) => status(`gave up: ${event.detail.why}`));
 *   client.close(); // no more reconnects
 *
 * new WsgateClient(url, options)   throws, as `new WebSocket` does, for a URL it refuses;
 *                                  the first attempt starts at once.
 *   url                 ws:// or wss:// URL (a relative one is resolved against the page).
 *   options.protocols   subprotocols, as for `new WebSocket(url, protocols)`.
 *   options.binaryType  "blob" (default) or "arraybuffer", set on every socket.
 *   The policy's options are backoff.py's BackoffConfig, in milliseconds:
 *   options.baseDelayMs first back-off window (default 500), multiplied by
 *   options.multiplier  (default 2) after each failure in a row, up to
 *   options.maxDelayMs  (default 30000). A delay is a uniform draw in the window.
 *   options.hintSpreadRatio, options.hintSpreadMinMs, options.maxHintMs
 *                       a close reason's retry-after=H is a floor: the delay is H plus
 *                       a draw in [0, max(hintSpreadMinMs, H * hintSpreadRatio)] (at most
 *                       maxDelayMs), so that clients told the same H spread out; in
 *                       [0, hintSpreadMinMs] when the reason has a cause (wsgate spreads
 *                       its hints itself); defaults 0.5, 1000, 300000 (H is believed up
 *                       to 5 minutes).
 *   options.honourHints false ignores retry-after (default true).
 *   options.maxAttempts give up after this many failures in a row (default Infinity).
 *   options.giveUpCodes close codes after which retrying cannot help (default [1008];
 *                       a 1008 with a retry-after is a rate limit, and waited out).
 *   options.stableAfterMs a connection open this long resets the failure count
 *                       (default 5000): an overload answer opens and closes at once,
 *                       and must still meet a growing delay.
 *   options.queueLimit  messages `send()` keeps while disconnected (default 100); 0
 *                       refuses them.
 *   options.openGraceMs "open" and the queued messages wait this long after a socket
 *                       opens (default 100): an overload answer opens and closes at
 *                       once, and is then a failed attempt, with no "open" and no
 *                       queued message sent into a closing socket.
 *   options.random      a function returning [0, 1) (default Math.random); tests seed it.
 *
 * Events (an EventTarget; `event.detail` holds the fields):
 *   "open"     a socket opened and stayed so for openGraceMs; queued messages go out
 *              next. detail: {attempt, url}
 *   "message"  a MessageEvent, as from WebSocket (event.data).
 *   "close"    a socket closed. detail: {code, reason, wasClean, retryAfterS, cause}
 *   "retry"    the next attempt is planned. detail: {attempt, delayMs, code, retryAfterS, cause}
 *   "giveup"   no more attempts. detail: {code, reason, why}
 *
 * Methods and properties:
 *   send(data)          sends now when open, else queues; throws WsgateQueueFullError
 *                       when `queueLimit` messages already wait (or the client is closed).
 *                       Delivery is at most once: a message handed to a socket that the
 *                       server then closes is lost, as with a plain WebSocket.
 *   close(code, reason) closes the socket and stops reconnecting (code default 1000).
 *   state               "connecting" | "open" | "waiting" | "closed".
 *   attempt             attempts in a row that have not (yet) stayed open, this one
 *                       included: the failures count of the policy.
 *   queued              messages waiting for a connection.
 *
 * The policy, pure and exported for tests and for other transports:
 *   parseCloseReason(text)                     -> {retryAfterS, cause}
 *   backoffWindowMs(failures, policy)          -> the full-jitter window after that many
 *   decideAfterClose(close, failures, policy, random) -> {retry, delayMs?, why?, ...}
 */

/** The largest retry-after a reason may carry (a day), as close_reason.py clamps it. */
export const MAX_RETRY_AFTER_S = 86400;

export const CLOSE_NORMAL = 1000;
export const CLOSE_POLICY_VIOLATION = 1008;

/** The policy's knobs, those of backoff.py's BackoffConfig in milliseconds. */
export const DEFAULT_POLICY = Object.freeze({
  baseDelayMs: 500,
  maxDelayMs: 30000,
  multiplier: 2,
  hintSpreadRatio: 0.5,
  hintSpreadMinMs: 1000,
  maxHintMs: 300000,
  honourHints: true,
  maxAttempts: Infinity,
  giveUpCodes: Object.freeze([CLOSE_POLICY_VIOLATION]),
  stableAfterMs: 5000,
});

const DEFAULT_QUEUE_LIMIT = 100;
// wsgate's overload answer is a 101 and a close frame in one write; Chromium has seen
// the close within 10 ms of the open on loopback. 100 ms leaves room for a busy page.
const DEFAULT_OPEN_GRACE_MS = 100;
// backoff.py bounds the exponent the same way, so both draw the same windows.
const MAX_EXPONENT = 64;

/** Thrown by send() when the message can be neither sent nor queued. */
export class WsgateQueueFullError extends Error {
  constructor(message) {
    super(message);
    this.name = "WsgateQueueFullError";
  }
}

/**
 * The hint in a close reason such as "retry-after=12; cause=overloaded_queue_full".
 * Lenient as close_reason.py's parse_close_reason: keys are case-insensitive, spaces
 * around fields are ignored, unknown keys and malformed fields are skipped, the first of
 * a repeated key wins, a retry-after that is not plain ASCII digits is no hint.
 * @param {string} text
 * @returns {{retryAfterS: number|null, cause: string|null}}
 */
export function parseCloseReason(text) {
  let retryAfterS = null;
  let cause = null;
  const seen = new Set();
  for (const field of String(text ?? "").split(";")) {
    const equals = field.indexOf("=");
    if (equals < 0) continue;
    const key = field.slice(0, equals).trim().toLowerCase();
    const value = field.slice(equals + 1).trim();
    if (seen.has(key)) continue;
    seen.add(key);
    if (key === "retry-after") {
      retryAfterS = /^[0-9]+$/.test(value) ? Math.min(Number(value), MAX_RETRY_AFTER_S) : null;
    } else if (key === "cause" && value) {
      cause = value;
    }
  }
  return { retryAfterS, cause };
}

/**
 * The full-jitter window after `failures` failures in a row (1 for the first):
 * base * multiplier^(failures - 1), capped at maxDelayMs. The delay is a uniform draw
 * in [0, window].
 * @param {number} failures
 * @param {typeof DEFAULT_POLICY} policy
 */
export function backoffWindowMs(failures, policy) {
  const exponent = Math.min(Math.max(failures - 1, 0), MAX_EXPONENT);
  return Math.min(policy.maxDelayMs, policy.baseDelayMs * policy.multiplier ** exponent);
}

/**
 * What to do after a socket closed; the policy of backoff.py's Backoff.failed. Pure:
 * the close, the failures in a row (this one included) and a random source in.
 *  - a give-up code (default 1008) without a retry-after in its reason: give up;
 *  - `maxAttempts` failures in a row: give up;
 *  - a retry-after of H seconds in the reason: a floor, not a moment (clients told the
 *    same H would come back together): H plus a draw in [0, spread], the spread
 *    H * hintSpreadRatio, at least hintSpreadMinMs and at most maxDelayMs; H is believed
 *    up to maxHintMs. A reason with a cause (wsgate's) gets hintSpreadMinMs only: wsgate
 *    spreads the times it tells its clients itself;
 *  - anything else (1006 for a refused handshake, whose status a browser cannot read; a
 *    dropped connection; a hint-less 1013): a draw in [0, backoffWindowMs].
 * @param {{code: number, reason: string}} close
 * @param {number} failures
 * @param {typeof DEFAULT_POLICY} policy
 * @param {() => number} random
 * @returns {{retry: true, delayMs: number, retryAfterS: number|null, cause: string|null}
 *         | {retry: false, why: string, retryAfterS: number|null, cause: string|null}}
 */
export function decideAfterClose(close, failures, policy, random) {
  const hint = parseCloseReason(close.reason);
  const retryAfterS = policy.honourHints ? hint.retryAfterS : null;
  const cause = hint.cause;
  if (policy.giveUpCodes.includes(close.code) && retryAfterS === null) {
    const why = `the server closed with ${close.code}${close.reason ? ` (${close.reason})` : ""} and no retry-after`;
    return { retry: false, why, retryAfterS, cause };
  }
  if (failures >= policy.maxAttempts) {
    const why = `${failures} attempts failed in a row (last: close ${close.code})`;
    return { retry: false, why, retryAfterS, cause };
  }
  let delayMs;
  if (retryAfterS === null) {
    delayMs = random() * backoffWindowMs(failures, policy);
  } else {
    const floorMs = Math.min(retryAfterS * 1000, policy.maxHintMs);
    // A reason with a cause is wsgate's: it gives each client it turns away its own
    // time, and a spread on top would only bring the last one back later than needed.
    const shareMs = cause === null ? floorMs * policy.hintSpreadRatio : 0;
    const spreadMs = Math.min(policy.maxDelayMs, Math.max(policy.hintSpreadMinMs, shareMs));
    delayMs = floorMs + random() * spreadMs;
  }
  return { retry: true, delayMs, retryAfterS, cause };
}

/** A WebSocket that reconnects by the policy above; see the header for its API. */
export class WsgateClient extends EventTarget {
  #url;
  #protocols;
  #binaryType;
  #policy;
  #random;
  #queueLimit;
  #openGraceMs;
  #queue = [];
  #socket = null;
  #timer = null;
  #openedAt = null;
  #state = "connecting";
  #attempt = 0;

  constructor(url, options = {}) {
    super();
    this.#url = new URL(url, globalThis.location?.href).href;
    this.#protocols = options.protocols ?? [];
    this.#binaryType = options.binaryType ?? "blob";
    const policy = {};
    for (const [key, fallback] of Object.entries(DEFAULT_POLICY)) {
      policy[key] = options[key] ?? fallback;
    }
    policy.giveUpCodes = Object.freeze([...policy.giveUpCodes]);
    this.#policy = Object.freeze(policy);
    this.#random = options.random ?? Math.random;
    this.#queueLimit = options.queueLimit ?? DEFAULT_QUEUE_LIMIT;
    this.#openGraceMs = options.openGraceMs ?? DEFAULT_OPEN_GRACE_MS;
    this.#connect();
  }

  get url() {
    return this.#url;
  }

  get state() {
    return this.#state;
  }

  get attempt() {
    return this.#attempt;
  }

  get queued() {
    return this.#queue.length;
  }

  get policy() {
    return this.#policy;
  }

  send(data) {
    if (this.#state === "open" && this.#socket?.readyState === WebSocket.OPEN) {
      this.#socket.send(data);
      return;
    }
    if (this.#state === "closed") {
      throw new WsgateQueueFullError("wsgate-client: send() after close() or giveup");
    }
    if (this.#queue.length >= this.#queueLimit) {
      throw new WsgateQueueFullError(
        `wsgate-client: ${this.#queue.length} messages already wait for a connection`,
      );
    }
    this.#queue.push(data);
  }

  close(code = CLOSE_NORMAL, reason = "") {
    if (this.#state === "closed") return;
    this.#state = "closed";
    clearTimeout(this.#timer);
    this.#timer = null;
    const socket = this.#socket;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(code, reason);
  }

  #connect() {
    this.#state = "connecting";
    this.#attempt += 1;
    let socket;
    try {
      socket = new WebSocket(this.#url, this.#protocols);
    } catch (error) {
      // A URL WebSocket refuses: the constructor throws, as `new WebSocket` does; later
      // attempts cannot succeed either.
      if (this.#attempt === 1) throw error;
      this.#giveUp({ code: 0, reason: "", why: String(error) });
      return;
    }
    socket.binaryType = this.#binaryType;
    this.#socket = socket;
    socket.addEventListener("open", () => this.#onOpen(socket));
    socket.addEventListener("message", (event) => {
      // A server that speaks is no overload answer: no need to wait out the grace.
      if (this.#state === "connecting" && this.#timer !== null) {
        clearTimeout(this.#timer);
        this.#announce(socket);
      }
      this.dispatchEvent(new MessageEvent("message", { data: event.data, origin: event.origin }));
    });
    socket.addEventListener("close", (event) => this.#onClose(socket, event));
  }

  #onOpen(socket) {
    if (socket !== this.#socket || this.#state === "closed") return;
    this.#openedAt = performance.now();
    this.#timer = setTimeout(() => this.#announce(socket), this.#openGraceMs);
  }

  // After the grace: a socket the server closed at once (an overload answer) is by now
  // closing, and ends as a failed attempt without an "open" or a lost queued message.
  #announce(socket) {
    this.#timer = null;
    if (socket !== this.#socket || this.#state === "closed") return;
    if (socket.readyState !== WebSocket.OPEN) return;
    this.#state = "open";
    this.dispatchEvent(new CustomEvent("open", { detail: { attempt: this.#attempt, url: this.#url } }));
    // The listeners may have sent or closed; what still waits goes out in order.
    while (this.#queue.length && socket.readyState === WebSocket.OPEN && this.#state === "open") {
      socket.send(this.#queue.shift());
    }
  }

  #onClose(socket, event) {
    if (socket !== this.#socket) return;
    this.#socket = null;
    clearTimeout(this.#timer); // an announcement still in its grace
    this.#timer = null;
    const stayedOpen =
      this.#openedAt !== null && performance.now() - this.#openedAt >= this.#policy.stableAfterMs;
    this.#openedAt = null;
    if (stayedOpen) this.#attempt = 1;
    const hint = parseCloseReason(event.reason);
    this.dispatchEvent(
      new CustomEvent("close", {
        detail: {
          code: event.code,
          reason: event.reason,
          wasClean: event.wasClean,
          retryAfterS: hint.retryAfterS,
          cause: hint.cause,
        },
      }),
    );
    if (this.#state === "closed") return;
    const close = { code: event.code, reason: event.reason };
    const decision = decideAfterClose(close, this.#attempt, this.#policy, this.#random);
    if (!decision.retry) {
      this.#giveUp({ ...close, why: decision.why });
      return;
    }
    this.#state = "waiting";
    this.dispatchEvent(
      new CustomEvent("retry", {
        detail: {
          attempt: this.#attempt,
          delayMs: decision.delayMs,
          code: event.code,
          retryAfterS: decision.retryAfterS,
          cause: decision.cause,
        },
      }),
    );
    // A listener may have called close().
    if (this.#state !== "waiting") return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#state === "waiting") this.#connect();
    }, decision.delayMs);
  }

  #giveUp(detail) {
    this.#state = "closed";
    this.dispatchEvent(new CustomEvent("giveup", { detail }));
  }
}
