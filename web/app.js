// The softphone page (PROTOCOL.md section 11): a MultiPipe terminal in the browser, so that it can
// hold several calls and see its number's calls on other devices (InCall) at once.
import { Pipe, pipeUrl, newCallId, callIdOf, tokenClaims, e164 } from "./pipe.js";
import {
  newPeerConnection, microphone, localSdp, sdpDirection, audioContext, LevelMeter, rtpStats,
} from "./media.js";

const $ = (id) => document.getElementById(id);

/** How long an ended call stays on screen. */
const ENDED_SHOWN_MS = 6000;
/** Most log entries kept. */
const LOG_LIMIT = 300;

const REASONS = {
  REASON_UNSPECIFIED: "Call ended",
  NORMAL_CLEARING: "Call ended",
  BUSY: "Busy",
  DECLINED: "Declined",
  DECLINED_ELSEWHERE: "Declined on another device",
  NO_ANSWER: "No answer",
  UNAVAILABLE: "Unavailable",
  CANCELLED: "Cancelled",
  ANSWERED_ELSEWHERE: "Answered on another device",
  PULLED: "Pulled to another device",
  HANDED_TO_PHONE: "Handed to the mobile phone",
  PEER_GONE: "The other party went away",
  NEGOTIATION_FAILED: "The other party did not answer",
  SERVER_SHUTDOWN: "The server shut down",
  TRANSFERRED: "Transferred",
  ENDED_BY_OPERATOR: "Ended by the operator",
};
const REASON_NAMES = Object.keys(REASONS);
const ERROR_NAMES = [
  "UNKNOWN", "NOT_INCALL", "TRY_AGAIN", "INVALID_CALL_ID", "RATE_LIMIT_HIT", "INVALID_ARGUMENT",
];

/** An enum from canonical JSON: its name, or its number (older gateways), or absent (zero). */
function enumName(value, names) {
  if (value === undefined || value === null) return names[0];
  if (typeof value === "number") return names[value] ?? String(value);
  return String(value);
}

const STATE_LABELS = {
  dialling: "Calling…",
  "ringing-out": "Ringing…",
  incoming: "Incoming call",
  answering: "Connecting…",
  active: "In call",
  elsewhere: "On another device",
  waiting: "Waiting for you",
  pulling: "Pulling here…",
  ended: "Ended",
};

const page = {
  pipe: null,
  msisdn: null,
  registered: false,
  /** call id → Call */
  calls: new Map(),
  /** Ids of calls this page (or a sibling tab of its number) had: an InCall for any other id is a
   * call waiting to be taken (a transfer to this number, PROTOCOL.md 4.12). */
  seen: new Set(),
  siblings: "BroadcastChannel" in window ? new BroadcastChannel("webterminal-softphone") : null,
};

class Call {
  constructor(id, peer, state) {
    this.id = id;
    this.peer = peer;
    this.state = state;
    this.previous = null;
    this.data = {};
    this.offerSdp = null;
    this.offerSent = false;
    this.pc = null;
    this.local = null;
    this.remote = null;
    this.localMeter = null;
    this.remoteMeter = null;
    this.startedAt = null;
    this.held = false;
    this.heldByPeer = false;
    this.muted = false;
    this.negotiating = null;
    this.note = "";
    this.dismissed = false;
    this.toPhone = false;
    this.removal = null;
    this.element = $("call-template").content.firstElementChild.cloneNode(true);
    this.element.dataset.callId = id;
    this.element.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (button && button.type === "button") act(this, button.dataset.action);
    });
    this.element.querySelector(".transfer").addEventListener("submit", (event) => {
      event.preventDefault();
      act(this, "transfer");
    });
  }
}

// ---- messages -------------------------------------------------------------------------------

function send(message) {
  try {
    page.pipe.send(message);
    return true;
  } catch (e) {
    setStatus(`Not sent: ${e.message}`, "error");
    return false;
  }
}

let inbox = Promise.resolve();

/** Handles the core's messages one at a time, in order. */
function received(message) {
  inbox = inbox.then(() => handle(message)).catch((e) => {
    console.error(e);
    logNote(`error handling a message: ${e.message}`, true);
  });
}

async function handle(m) {
  const id = callIdOf(m);
  const inCall = m.inCall ?? m.in_call;
  if (m.offer) await onOffer(id, m.offer);
  else if (m.answer) await onAnswer(id, m.answer);
  else if (m.ringing) onRinging(id);
  else if (m.bye) onBye(id, enumName(m.bye.reason, REASON_NAMES));
  else if (inCall) onInCall(id, inCall.msisdn?.e164 ?? "");
  else if (m.idle) onIdle(id);
  else if (m.error) await onError(id, enumName(m.error.err, ERROR_NAMES), m.error.message ?? "");
}

async function onOffer(id, offer) {
  const existing = page.calls.get(id);
  if (existing && existing.pc && existing.state === "active") {
    await renegotiate(existing, offer.sdp);
    return;
  }
  const peer = offer.msisdn?.e164 ?? "unknown";
  const call = addCall(id, peer, "incoming");
  call.offerSdp = offer.sdp;
  call.data = offer.data ?? {};
  remember(id);
  send({ ringing: {}, callId: id });
  render(call);
}

/** The far side re-offers an established call (hold, resume, a pull on its side, ICE restart). */
async function renegotiate(call, sdp) {
  if (call.negotiating) {
    // Glare: the core relayed theirs, so ours gets TRY_AGAIN; theirs rolls ours back.
    call.negotiating = null;
    transceiverOf(call).direction = call.held ? "sendonly" : "sendrecv";
  }
  call.heldByPeer = ["sendonly", "inactive"].includes(sdpDirection(sdp));
  if (fingerprintOf(call.pc.remoteDescription?.sdp) !== fingerprintOf(sdp)) {
    // Another device took the far side (a pull, a handover or a transfer there): a new DTLS peer,
    // so a new peer connection, with the same microphone.
    await connectPeer(call, sdp);
  } else {
    await call.pc.setRemoteDescription({ type: "offer", sdp });
  }
  const answer = await localSdp(call.pc);
  send({ answer: { sdp: answer }, callId: call.id });
  render(call);
}

async function onAnswer(id, answer) {
  const call = page.calls.get(id);
  if (!call || !call.pc) return;
  try {
    await call.pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  } catch (e) {
    call.note = `Cannot use the answer: ${e.message}`;
    hangUp(call);
    return;
  }
  if (call.state === "dialling" || call.state === "ringing-out") {
    call.state = "active";
    call.startedAt = Date.now();
  } else if (call.state === "pulling") {
    call.state = "active";
    call.startedAt ??= Date.now();
    call.note = "";
  } else if (call.negotiating) {
    call.held = call.negotiating === "hold";
    call.negotiating = null;
  }
  render(call);
}

function onRinging(id) {
  const call = page.calls.get(id);
  if (call && call.state === "dialling") {
    call.state = "ringing-out";
    render(call);
  }
}

function onBye(id, reason) {
  const call = page.calls.get(id);
  if (!call) return;
  if (call.state === "pulling" && reason === "NEGOTIATION_FAILED") {
    closeMedia(call);
    call.state = call.previous ?? "elsewhere";
    call.note = "The pull failed: the other party did not answer. The call stays where it was.";
    render(call);
    return;
  }
  endCall(call, REASONS[reason] ?? reason);
}

function onInCall(id, peer) {
  let call = page.calls.get(id);
  if (call && call.state === "pulling") return;
  if (call && call.state !== "ended") {
    // The call moved off this page (handed to the phone) or was answered elsewhere.
    closeMedia(call);
    call.state = "elsewhere";
    call.peer = peer || call.peer;
    call.note = call.toPhone ? "On your mobile phone: pull it back here at any time." : "";
    call.toPhone = false;
    render(call);
    return;
  }
  const known = page.seen.has(id) || Boolean(call);
  call = call ?? addCall(id, peer, "elsewhere");
  clearTimeout(call.removal);
  call.peer = peer || call.peer;
  call.state = known ? "elsewhere" : "waiting";
  call.note = known ? "" : "Transferred to your number, or on another of your devices: take it here.";
  render(call);
}

function onIdle(id) {
  for (const call of [...page.calls.values()]) {
    if ((!id || call.id === id) && (call.state === "elsewhere" || call.state === "waiting")) {
      endCall(call, "Call ended");
    }
  }
}

async function onError(id, code, message) {
  const text = message ? `${code}: ${message}` : code;
  setStatus(`Error ${text}`, "error");
  const call = page.calls.get(id);
  if (!call) return;
  if (call.negotiating) {
    const pc = call.pc;
    if (pc && pc.signalingState === "have-local-offer") {
      await pc.setLocalDescription({ type: "rollback" });
    }
    transceiverOf(call).direction = call.held ? "sendonly" : "sendrecv";
    call.negotiating = null;
    applyMute(call);
    call.note = `Not done (${text}).`;
  } else if (call.state === "pulling") {
    closeMedia(call);
    call.state = call.previous ?? "elsewhere";
    call.note = `The pull failed (${text}).`;
  } else if (call.state === "dialling" || call.state === "ringing-out") {
    endCall(call, `Refused (${text})`);
    return;
  } else {
    // A ToPhone or a transfer refused: the call stays here.
    call.toPhone = false;
    call.note = `Error ${text}`;
  }
  render(call);
}

// ---- actions --------------------------------------------------------------------------------

async function act(call, action) {
  audioContext();
  try {
    switch (action) {
      case "answer": return await answer(call);
      case "decline": return decline(call);
      case "hangup": return hangUp(call);
      case "pull": return await pull(call);
      case "hold": return await setHold(call, !call.held);
      case "mute": return mute(call);
      case "to-phone": return toPhone(call);
      case "transfer": return transfer(call);
      default: return undefined;
    }
  } catch (e) {
    console.error(e);
    call.note = `${action} failed: ${e.message}`;
    render(call);
  }
}

async function placeCall(number) {
  const to = e164(number);
  if (!to) {
    setStatus(`Not a phone number: "${number}" (E.164, e.g. +4799990002)`, "error");
    return;
  }
  const id = newCallId();
  remember(id);
  const call = addCall(id, to, "dialling");
  render(call);
  try {
    await startMedia(call, null);
    const sdp = await localSdp(call.pc);
    if (call.state !== "dialling") return;
    if (send({ offer: { sdp, msisdn: { e164: to } }, callId: id })) call.offerSent = true;
    else endCall(call, "Not sent");
  } catch (e) {
    call.note = e.message;
    endCall(call, "Could not start the call");
  }
}

async function answer(call) {
  if (call.state !== "incoming") return;
  call.state = "answering";
  call.dismissed = true;
  render(call);
  let sdp;
  try {
    await startMedia(call, call.offerSdp);
    sdp = await localSdp(call.pc);
  } catch (e) {
    if (call.state !== "answering") return;
    // No microphone (refused?) or an offer this browser cannot take: it still rings.
    closeMedia(call);
    call.state = "incoming";
    call.dismissed = false;
    call.note = `Cannot answer: ${e.message}`;
    render(call);
    return;
  }
  if (call.state !== "answering") return;
  send({ answer: { sdp }, callId: call.id });
  call.state = "active";
  call.startedAt = Date.now();
  remember(call.id);
  render(call);
}

function decline(call) {
  send({ bye: {}, callId: call.id });
  endCall(call, "Declined");
}

function hangUp(call) {
  if (call.state !== "dialling" || call.offerSent) send({ bye: {}, callId: call.id });
  endCall(call, "You hung up");
}

/** Takes a call of this number from another device, or a call transferred to it (4.5, 4.12). */
async function pull(call) {
  if (call.state !== "elsewhere" && call.state !== "waiting") return;
  call.previous = call.state;
  call.state = "pulling";
  call.dismissed = true;
  call.note = "";
  remember(call.id);
  render(call);
  let sdp;
  try {
    await startMedia(call, null);
    sdp = await localSdp(call.pc);
  } catch (e) {
    if (call.state !== "pulling") return;
    closeMedia(call);
    call.state = call.previous;
    call.note = `Cannot pull: ${e.message}`;
    render(call);
    return;
  }
  if (call.state !== "pulling") return;
  send({ offer: { sdp }, callId: call.id });
}

/** Hold: a re-offer with `sendonly` (the far side answers `recvonly`), the microphone silenced. */
async function setHold(call, hold) {
  if (call.state !== "active" || call.negotiating || !call.pc) return;
  call.negotiating = hold ? "hold" : "resume";
  transceiverOf(call).direction = hold ? "sendonly" : "sendrecv";
  applyMute(call, hold);
  render(call);
  const sdp = await localSdp(call.pc);
  send({ offer: { sdp }, callId: call.id });
}

function mute(call) {
  call.muted = !call.muted;
  applyMute(call);
  render(call);
}

function applyMute(call, holding = call.held) {
  if (!call.local) return;
  for (const track of call.local.getAudioTracks()) track.enabled = !call.muted && !holding;
}

function toPhone(call) {
  call.toPhone = true;
  call.note = "Handing the call to your mobile phone…";
  send({ action: { toPhone: {} }, callId: call.id });
  render(call);
}

function transfer(call) {
  const input = call.element.querySelector("input[name=transfer-to]");
  const to = e164(input.value);
  if (!to) {
    call.note = `Not a phone number: "${input.value}"`;
    render(call);
    input.focus();
    return;
  }
  call.note = `Transferring to ${to}…`;
  send({ action: { transfer: { msisdn: { e164: to } } }, callId: call.id });
  render(call);
}

// ---- media ----------------------------------------------------------------------------------

/** Microphone and peer connection for `call`; with `offerSdp`, set as the remote description. */
async function startMedia(call, offerSdp) {
  const local = await microphone();
  if (call.state === "ended") {
    for (const track of local.getTracks()) track.stop();
    throw new Error("the call ended");
  }
  call.local = local;
  call.localMeter = new LevelMeter(local, call.element.querySelector(".meter-local"));
  await connectPeer(call, offerSdp);
}

/** A new peer connection for `call` sending its microphone (the old one closed); with `offerSdp`,
 * set as the remote description. */
async function connectPeer(call, offerSdp) {
  if (call.remoteMeter) call.remoteMeter.stop();
  call.remoteMeter = null;
  if (call.pc) call.pc.close();
  call.pc = null;
  const pc = newPeerConnection();
  call.pc = pc;
  const audio = call.element.querySelector(".remote-audio");
  pc.addEventListener("track", (event) => {
    if (call.pc !== pc) return;
    call.remote = event.streams[0] ?? new MediaStream([event.track]);
    audio.srcObject = call.remote;
    if (call.remoteMeter) call.remoteMeter.stop();
    call.remoteMeter = new LevelMeter(call.remote, call.element.querySelector(".meter-remote"));
  });
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "failed" && call.pc === pc) {
      call.note = "Media connection failed";
      render(call);
    }
  });
  if (offerSdp) {
    call.heldByPeer = ["sendonly", "inactive"].includes(sdpDirection(offerSdp));
    await pc.setRemoteDescription({ type: "offer", sdp: offerSdp });
  }
  for (const track of call.local.getAudioTracks()) pc.addTrack(track, call.local);
  applyMute(call);
}

/** The DTLS fingerprint an SDP announces (a new one: a new peer), or null. */
function fingerprintOf(sdp) {
  const found = /^a=fingerprint:(.+)$/m.exec(sdp ?? "");
  return found ? found[1].trim() : null;
}

function transceiverOf(call) {
  return call.pc.getTransceivers().find((t) => t.receiver.track.kind === "audio");
}

function closeMedia(call) {
  for (const meter of [call.localMeter, call.remoteMeter]) if (meter) meter.stop();
  call.localMeter = null;
  call.remoteMeter = null;
  if (call.pc) call.pc.close();
  call.pc = null;
  if (call.local) for (const track of call.local.getTracks()) track.stop();
  call.local = null;
  call.remote = null;
  call.element.querySelector(".remote-audio").srcObject = null;
  call.held = false;
  call.heldByPeer = false;
  call.muted = false;
  call.negotiating = null;
}

// ---- calls on screen ------------------------------------------------------------------------

function addCall(id, peer, state) {
  const call = new Call(id, peer, state);
  page.calls.set(id, call);
  $("calls").prepend(call.element);
  return call;
}

function endCall(call, why) {
  closeMedia(call);
  call.state = "ended";
  call.endedWhy = why;
  render(call);
  clearTimeout(call.removal);
  call.removal = setTimeout(() => {
    if (page.calls.get(call.id) === call && call.state === "ended") {
      page.calls.delete(call.id);
      call.element.remove();
      renderBanner();
      renderEmpty();
    }
  }, ENDED_SHOWN_MS);
}

function remember(id) {
  page.seen.add(id);
  if (page.siblings && page.msisdn) page.siblings.postMessage({ msisdn: page.msisdn, callId: id });
}

function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
}

function render(call) {
  const el = call.element;
  const s = call.state;
  el.dataset.state = s;
  const name = call.data.display_name ? ` (${call.data.display_name})` : "";
  el.querySelector(".call-peer").textContent = `${call.peer}${name}`;
  let label = STATE_LABELS[s] ?? s;
  if (s === "active" && call.held) label = "On hold";
  else if (s === "active" && call.heldByPeer) label = "Held by the other party";
  if (s === "active" && call.negotiating) label = call.negotiating === "hold" ? "Holding…" : "Resuming…";
  if (s === "ended") label = call.endedWhy ?? "Ended";
  el.querySelector(".call-state").textContent = label;
  el.querySelector(".call-note").textContent = call.note;
  el.setAttribute("aria-label", `Call with ${call.peer}: ${label}`);
  const show = (action, visible) => {
    el.querySelector(`[data-action="${action}"]`).hidden = !visible;
  };
  const active = s === "active";
  show("answer", s === "incoming");
  show("decline", s === "incoming");
  show("pull", s === "elsewhere" || s === "waiting");
  show("hold", active);
  show("mute", active);
  show("to-phone", active);
  show("hangup", active || s === "dialling" || s === "ringing-out");
  el.querySelector(".transfer").hidden = !active;
  el.querySelector(".meters").hidden = !(active || s === "answering" || s === "pulling"
    || s === "dialling" || s === "ringing-out");
  const hold = el.querySelector('[data-action="hold"]');
  hold.textContent = call.held ? "Resume" : "Hold";
  hold.setAttribute("aria-pressed", String(call.held));
  hold.disabled = Boolean(call.negotiating);
  const muteButton = el.querySelector('[data-action="mute"]');
  muteButton.textContent = call.muted ? "Unmute" : "Mute";
  muteButton.setAttribute("aria-pressed", String(call.muted));
  renderDuration(call);
  renderBanner();
  renderEmpty();
}

function renderDuration(call) {
  const text = call.state === "active" && call.startedAt ? duration(Date.now() - call.startedAt) : "";
  call.element.querySelector(".call-duration").textContent = text;
}

function renderEmpty() {
  $("no-calls").hidden = page.calls.size > 0;
}

let bannerCall = null;

/** The banner announces the oldest call that rings here or waits to be taken. */
function renderBanner() {
  const banner = $("banner");
  const calls = [...page.calls.values()].reverse();
  const call = calls.find((c) => !c.dismissed && (c.state === "incoming" || c.state === "waiting"));
  if (!call) {
    banner.hidden = true;
    bannerCall = null;
    $("announcer").textContent = "";
    return;
  }
  const name = call.data.display_name ? ` (${call.data.display_name})` : "";
  if (call === bannerCall && !banner.hidden && banner.dataset.state === call.state) return;
  bannerCall = call;
  banner.dataset.state = call.state;
  banner.dataset.callId = call.id;
  if (call.state === "incoming") {
    $("banner-title").textContent = "Incoming call";
    $("banner-detail").textContent = `from ${call.peer}${name}`;
    $("banner-accept").textContent = "Answer";
    $("banner-reject").textContent = "Decline";
  } else {
    $("banner-title").textContent = "A call for you";
    $("banner-detail").textContent =
      `with ${call.peer}, transferred to your number (or on another of your devices)`;
    $("banner-accept").textContent = "Take call";
    $("banner-reject").textContent = "Not now";
  }
  banner.hidden = false;
  // The live region is always in the page, so that screen readers announce what is put in it.
  $("announcer").textContent = `${$("banner-title").textContent} ${$("banner-detail").textContent}`;
  if (document.activeElement === document.body) $("banner-accept").focus();
}

function bannerAction(accept) {
  const call = bannerCall;
  if (!call) return;
  if (call.state === "incoming") act(call, accept ? "answer" : "decline");
  else if (accept) act(call, "pull");
  else {
    call.dismissed = true;
    renderBanner();
  }
}

// ---- registration ---------------------------------------------------------------------------

function setStatus(text, kind = "") {
  const status = $("status");
  status.textContent = text;
  status.className = `status ${kind}`;
}

async function register(event) {
  event.preventDefault();
  if (page.pipe) return;
  audioContext();
  const token = $("token").value.trim();
  if (!token) {
    setStatus("Paste an access token first (or get a demo token).", "error");
    $("token").focus();
    return;
  }
  const actingFor = $("acting-for").value.trim() ? e164($("acting-for").value) : null;
  if ($("acting-for").value.trim() && !actingFor) {
    setStatus("The number to act for is not a phone number.", "error");
    return;
  }
  const claims = tokenClaims(token);
  page.msisdn = actingFor ?? claims?.sub ?? null;
  const pipe = new Pipe();
  let failure = null;
  pipe.addEventListener("log", (e) => logFrame(e.detail.direction, e.detail.frame));
  pipe.addEventListener("message", (e) => received(e.detail));
  pipe.addEventListener("failure", (e) => {
    failure = e.detail;
    setStatus(`Registration ended: ${e.detail.message ?? ""} (gRPC code ${e.detail.code})`, "error");
  });
  pipe.addEventListener("closed", (e) => {
    unregistered();
    if (!failure) setStatus(`Not registered (the connection closed, code ${e.detail.code})`, "error");
  });
  setStatus("Registering…");
  $("register").disabled = true;
  try {
    await pipe.open(pipeUrl("/multipipe", actingFor), token);
  } catch (e) {
    $("register").disabled = false;
    setStatus(`Could not register: ${e.message}`, "error");
    return;
  }
  page.pipe = pipe;
  page.registered = true;
  sessionStorage.setItem("softphone-token", token);
  setStatus(`Registered as ${page.msisdn ?? "(number unknown)"}`, "ok");
  document.title = `${page.msisdn ?? "Softphone"} · Softphone`;
  $("unregister").disabled = false;
  $("call").disabled = false;
  logNote(`registered (MultiPipe) as ${page.msisdn}`);
}

function unregistered() {
  page.pipe = null;
  page.registered = false;
  for (const call of page.calls.values()) if (call.state !== "ended") endCall(call, "Unregistered");
  $("register").disabled = false;
  $("unregister").disabled = true;
  $("call").disabled = true;
  document.title = "Softphone · webterminal-core";
  logNote("unregistered");
}

async function setUpDemo() {
  let info;
  try {
    const response = await fetch("/demo", { headers: { accept: "application/json" } });
    const type = response.headers.get("content-type") ?? "";
    if (!response.ok || !type.startsWith("application/json")) return;
    info = await response.json();
  } catch {
    return;
  }
  $("demo").hidden = false;
  const list = $("demo-numbers");
  for (const number of info.numbers ?? []) {
    const option = document.createElement("option");
    option.value = number;
    list.append(option);
  }
  const wanted = new URLSearchParams(location.search).get("number");
  $("demo-number").value = wanted ?? (info.numbers ?? [""])[0] ?? "";
}

async function mint() {
  const number = e164($("demo-number").value);
  if (!number) {
    setStatus("Type a phone number to get a token for (E.164, e.g. +4799990001).", "error");
    $("demo-number").focus();
    return;
  }
  try {
    const response = await fetch("/demo/token", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ msisdn: number }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ?? response.statusText);
    $("token").value = body.token;
    setStatus(`Demo token for ${body.msisdn}: press Register`, "ok");
    $("register").focus();
  } catch (e) {
    setStatus(`No demo token: ${e.message}`, "error");
  }
}

// ---- the log --------------------------------------------------------------------------------

function summarize(frame) {
  const m = frame.result ?? frame;
  if (frame.error && !frame.result) return `error ${frame.error.code}: ${frame.error.message ?? ""}`;
  const kind = Object.keys(m).find((k) => k !== "callId" && k !== "call_id") ?? "keepalive";
  const id = callIdOf(m);
  const parts = [kind];
  const body = m[kind] ?? {};
  if (body.msisdn?.e164) parts.push(body.msisdn.e164);
  if (kind === "bye") parts.push(enumName(body.reason, REASON_NAMES));
  if (kind === "error") parts.push(enumName(body.err, ERROR_NAMES), body.message ?? "");
  if (kind === "action") parts.push(Object.keys(body).join(","));
  if (id) parts.push(`call ${id.slice(0, 8)}`);
  return parts.join(" ");
}

function logEntry(className, summary, detail) {
  const li = document.createElement("li");
  li.className = className;
  const details = document.createElement("details");
  const head = document.createElement("summary");
  head.textContent = `${new Date().toLocaleTimeString()} ${summary}`;
  details.append(head);
  if (detail) {
    const pre = document.createElement("pre");
    pre.textContent = detail;
    details.append(pre);
  }
  li.append(details);
  const log = $("log");
  log.prepend(li);
  while (log.children.length > LOG_LIMIT) log.lastElementChild.remove();
}

function logFrame(direction, frame) {
  const failure = direction === "received" && frame.error && !frame.result;
  logEntry(`${direction}${failure ? " failure" : ""}`, summarize(frame), JSON.stringify(frame, null, 2));
}

function logNote(text, failure = false) {
  logEntry(`note${failure ? " failure" : ""}`, text, null);
}

// ---- wiring ---------------------------------------------------------------------------------

function init() {
  $("registration").addEventListener("submit", register);
  $("unregister").addEventListener("click", () => page.pipe?.close());
  $("mint").addEventListener("click", mint);
  $("dial").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!page.registered) return;
    audioContext();
    placeCall($("number").value);
  });
  for (const key of document.querySelectorAll(".keypad button")) {
    key.addEventListener("click", () => {
      $("number").value += key.dataset.key;
    });
  }
  $("backspace").addEventListener("click", () => {
    $("number").value = $("number").value.slice(0, -1);
  });
  $("banner-accept").addEventListener("click", () => bannerAction(true));
  $("banner-reject").addEventListener("click", () => bannerAction(false));
  $("clear-log").addEventListener("click", () => $("log").replaceChildren());
  if (page.siblings) {
    page.siblings.addEventListener("message", (event) => {
      if (event.data?.msisdn && event.data.msisdn === page.msisdn) page.seen.add(event.data.callId);
    });
  }
  setInterval(() => {
    for (const call of page.calls.values()) renderDuration(call);
  }, 1000);
  const saved = sessionStorage.getItem("softphone-token");
  if (saved) $("token").value = saved;
  setUpDemo();
  renderEmpty();
}

/** For tests and the curious: what the page is doing, and its calls' RTP counters. */
window.softphone = {
  state() {
    return {
      registered: page.registered,
      msisdn: page.msisdn,
      calls: [...page.calls.values()].map((c) => ({
        callId: c.id,
        peer: c.peer,
        state: c.state,
        held: c.held,
        heldByPeer: c.heldByPeer,
        muted: c.muted,
        negotiating: c.negotiating,
        note: c.note,
        levels: {
          local: c.element.querySelector(".meter-local").value,
          remote: c.element.querySelector(".meter-remote").value,
          peakLocal: c.localMeter?.peak ?? 0,
          peakRemote: c.remoteMeter?.peak ?? 0,
        },
      })),
    };
  },
  async stats() {
    return Promise.all([...page.calls.values()].map(async (c) => ({
      callId: c.id,
      peer: c.peer,
      state: c.state,
      ...(await rtpStats(c.pc)),
    })));
  },
};

init();
