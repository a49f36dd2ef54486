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
 * new WsgateClient(url, options)
 *   url                 ws:// or wss:// URL (a relative one is resolved against the page).
 *   options.protocols   subprotocols, as for `new WebSocket(url, protocols)`.
 *   options.binaryType  "blob" (default) or "arraybuffer", set on every socket.
 *   options.baseDelayMs first back-off window (default 500).
 *   options.maxDelayMs  cap of the back-off window (default 30000).
 *   options.maxAttempts give up after this many attempts in a row that did not stay
 *                       open (default Infinity).
 *   options.giveUpCodes close codes after which retrying cannot help (default [1008];
 *                       1008 with a retry-after in its reason is retried as told).
 *   options.stableAfterMs a connection open this long resets the back-off (default
 *                       5000): an overload answer opens and closes at once, and must
 *                       not reset it.
 *   options.queueLimit  messages `send()` keeps while disconnected (default 100); 0
 *                       refuses them.
 *   options.random      a function returning [0, 1) (default Math.random); tests seed it.
 *
 * Events (an EventTarget; `event.detail` holds the fields):
 *   "open"     a socket opened; queued messages go out next. detail: {attempt, url}
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
 *   attempt             attempts in a row that have not (yet) stayed open.
 *   queued              messages waiting for a connection.
 *
 * The policy, pure and exported for tests and for other transports:
 *   parseCloseReason(text)                     -> {retryAfterS, cause}
 *   backoffWindowMs(attempt, policy)           -> the full-jitter window of that attempt
 *   decideAfterClose(close, attempt, policy, random) -> {retry, delayMs?, why?, ...}
 */

/** The largest retry-after a reason may ask for (a day), as close_reason.py clamps it. */
export const MAX_RETRY_AFTER_S = 86400;

export const CLOSE_NORMAL = 1000;
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_POLICY_VIOLATION = 1008;
export const CLOSE_SERVICE_RESTART = 1012;
export const CLOSE_TRY_AGAIN_LATER = 1013;

/** Close codes whose server asks to come back later: a retry-after in the reason is honoured. */
export const HINTED_CODES = Object.freeze([
  CLOSE_GOING_AWAY,
  CLOSE_POLICY_VIOLATION,
  CLOSE_SERVICE_RESTART,
  CLOSE_TRY_AGAIN_LATER,
]);

export const DEFAULT_POLICY = Object.freeze({
  baseDelayMs: 500,
  maxDelayMs: 30000,
  maxAttempts: Infinity,
  giveUpCodes: Object.freeze([CLOSE_POLICY_VIOLATION]),
  stableAfterMs: 5000,
});

const DEFAULT_QUEUE_LIMIT = 100;

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
 * The full-jitter window of attempt `attempt` (0 for the first retry): base * 2^attempt,
 * capped at maxDelayMs. The delay is a uniform draw in [0, window).
 * @param {number} attempt
 * @param {{baseDelayMs: number, maxDelayMs: number}} policy
 */
export function backoffWindowMs(attempt, policy) {
  // 2 ** 1024 is Infinity: the cap holds whatever the attempt.
  return Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(attempt, 0));
}

/**
 * What to do after a socket closed. Pure: the close, the attempt count and a random
 * source in, a decision out.
 *  - a configured give-up code (default 1008) without a retry-after: give up;
 *  - `maxAttempts` attempts in a row: give up;
 *  - 1001/1008/1012/1013 with a retry-after: wait that long plus a full-jitter draw of
 *    this attempt's window, so that clients told the same time do not all come at once;
 *  - anything else (1006 for a refused handshake, a dropped connection, a hint-less
 *    1013): a full-jitter draw of this attempt's window.
 * @param {{code: number, reason: string}} close
 * @param {number} attempt attempts in a row so far that did not stay open (1 after the first)
 * @param {typeof DEFAULT_POLICY} policy
 * @param {() => number} random
 * @returns {{retry: true, delayMs: number, retryAfterS: number|null, cause: string|null}
 *         | {retry: false, why: string, retryAfterS: number|null, cause: string|null}}
 */
export function decideAfterClose(close, attempt, policy, random) {
  const hint = parseCloseReason(close.reason);
  const hinted = HINTED_CODES.includes(close.code) && hint.retryAfterS !== null;
  const retryAfterS = hinted ? hint.retryAfterS : null;
  if (policy.giveUpCodes.includes(close.code) && !hinted) {
    return { retry: false, why: `close code ${close.code}`, retryAfterS, cause: hint.cause };
  }
  if (attempt >= policy.maxAttempts) {
    return { retry: false, why: `${attempt} attempts`, retryAfterS, cause: hint.cause };
  }
  const jitterMs = random() * backoffWindowMs(attempt - 1, policy);
  const delayMs = (hinted ? retryAfterS * 1000 : 0) + jitterMs;
  return { retry: true, delayMs, retryAfterS, cause: hint.cause };
}

/** A WebSocket that reconnects by the policy above; see the header for its API. */
export class WsgateClient extends EventTarget {
  #url;
  #protocols;
  #binaryType;
  #policy;
  #random;
  #queueLimit;
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
    this.#policy = Object.freeze({
      baseDelayMs: options.baseDelayMs ?? DEFAULT_POLICY.baseDelayMs,
      maxDelayMs: options.maxDelayMs ?? DEFAULT_POLICY.maxDelayMs,
      maxAttempts: options.maxAttempts ?? DEFAULT_POLICY.maxAttempts,
      giveUpCodes: Object.freeze([...(options.giveUpCodes ?? DEFAULT_POLICY.giveUpCodes)]),
      stableAfterMs: options.stableAfterMs ?? DEFAULT_POLICY.stableAfterMs,
    });
    this.#random = options.random ?? Math.random;
    this.#queueLimit = options.queueLimit ?? DEFAULT_QUEUE_LIMIT;
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
      // A malformed URL or a forbidden port: no attempt can succeed.
      this.#giveUp({ code: 0, reason: "", why: String(error) });
      return;
    }
    socket.binaryType = this.#binaryType;
    this.#socket = socket;
    socket.addEventListener("open", () => this.#onOpen(socket));
    socket.addEventListener("message", (event) => {
      this.dispatchEvent(new MessageEvent("message", { data: event.data, origin: event.origin }));
    });
    socket.addEventListener("close", (event) => this.#onClose(socket, event));
  }

  #onOpen(socket) {
    if (socket !== this.#socket || this.#state === "closed") return;
    this.#state = "open";
    this.#openedAt = performance.now();
    this.dispatchEvent(new CustomEvent("open", { detail: { attempt: this.#attempt, url: this.#url } }));
    // The listeners may have sent or closed; what still waits goes out in order.
    while (this.#queue.length && socket.readyState === WebSocket.OPEN && this.#state === "open") {
      socket.send(this.#queue.shift());
    }
  }

  #onClose(socket, event) {
    if (socket !== this.#socket) return;
    this.#socket = null;
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
