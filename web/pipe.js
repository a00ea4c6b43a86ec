// The WebTerminal MultiPipe over a WebSocket (PROTOCOL.md sections 3 and 11): every frame from the
// page is one WebTerminalMessage in protobuf's canonical JSON; every frame from the core is
// {"result": <WebTerminalMessage>}, or {"error": {"code", "message"}} just before it closes.

/** The WebSocket URL of `path` on the server that served this page. */
export function pipeUrl(path, actingFor) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = new URL(`${scheme}//${location.host}${path}`);
  if (actingFor) url.searchParams.set("wg2-msisdn", actingFor);
  return url.href;
}

/**
 * One registration. Events: "message" (detail: a WebTerminalMessage), "failure" (detail:
 * {code, message}: the rpc's status), "closed" (detail: {code, reason} of the WebSocket close),
 * "log" (detail: {direction: "sent" | "received", frame}).
 */
export class Pipe extends EventTarget {
  #socket = null;

  /** Opens the WebSocket with the token as its `Bearer` subprotocol; resolves once it is open. */
  open(url, token) {
    return new Promise((resolve, reject) => {
      let opened = false;
      const socket = new WebSocket(url, ["Bearer", token]);
      this.#socket = socket;
      socket.addEventListener("open", () => {
        opened = true;
        resolve();
      });
      socket.addEventListener("message", (event) => this.#received(event.data));
      socket.addEventListener("close", (event) => {
        this.#socket = null;
        if (!opened) {
          reject(new Error(`the server refused the WebSocket (close code ${event.code})`));
          return;
        }
        this.dispatchEvent(new CustomEvent("closed", {
          detail: { code: event.code, reason: event.reason },
        }));
      });
    });
  }

  get isOpen() {
    return this.#socket !== null && this.#socket.readyState === WebSocket.OPEN;
  }

  /** Sends one WebTerminalMessage. */
  send(message) {
    if (!this.isOpen) throw new Error("not registered");
    const frame = JSON.stringify(message);
    this.#socket.send(frame);
    this.dispatchEvent(new CustomEvent("log", { detail: { direction: "sent", frame: message } }));
  }

  /** Ends the registration (the rpc is cancelled: PROTOCOL.md 4.8 for its calls). */
  close() {
    if (this.#socket) this.#socket.close(1000, "unregistered");
  }

  #received(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      this.dispatchEvent(new CustomEvent("log", {
        detail: { direction: "received", frame: { unparsable: String(data) } },
      }));
      return;
    }
    this.dispatchEvent(new CustomEvent("log", { detail: { direction: "received", frame } }));
    if (frame && frame.result) {
      this.dispatchEvent(new CustomEvent("message", { detail: frame.result }));
    } else if (frame && frame.error) {
      this.dispatchEvent(new CustomEvent("failure", { detail: frame.error }));
    }
  }
}

/** A UUID (v4) for a new call's id: crypto.randomUUID where the page is a secure context. */
export function newCallId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The call id of a message from the core (canonical JSON writes callId; call_id is accepted). */
export function callIdOf(message) {
  return message.callId ?? message.call_id ?? "";
}

/** The claims of a JWT, unverified (to show whose token it is), or null. */
export function tokenClaims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

/** A number as typed (spaces, dashes, dots and parentheses dropped, a '+' added) or null. */
export function e164(text) {
  const digits = String(text).replace(/[\s\-().]/g, "");
  const withPlus = digits.startsWith("+") ? digits : `+${digits}`;
  return /^\+[1-9][0-9]{1,14}$/.test(withPlus) ? withPlus : null;
}
