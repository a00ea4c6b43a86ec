// WebRTC and WebAudio for the softphone: peer connections without STUN servers, non-trickle ICE
// (the SDP sent carries every candidate: the core relays SDP and has no trickle), level meters.

/** How long ICE gathering may take before the SDP goes with the candidates found so far. */
const GATHERING_LIMIT_MS = 10000;

/** A peer connection with no ICE servers: host candidates only. */
export function newPeerConnection() {
  return new RTCPeerConnection({ iceServers: [] });
}

/** The microphone (a fake device under test). */
export function microphone() {
  return navigator.mediaDevices.getUserMedia({ audio: true, video: false });
}

/** Resolves once `pc` has gathered all its ICE candidates (or after GATHERING_LIMIT_MS). */
export function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      pc.removeEventListener("icecandidate", onCandidate);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    // A null candidate also marks the end of gathering.
    const onCandidate = (event) => {
      if (!event.candidate) done();
    };
    const timer = setTimeout(done, GATHERING_LIMIT_MS);
    pc.addEventListener("icegatheringstatechange", check);
    pc.addEventListener("icecandidate", onCandidate);
  });
}

/** Sets `description` as the local one and returns the SDP once every candidate is in it. */
export async function localSdp(pc, description) {
  await pc.setLocalDescription(description);
  await gathered(pc);
  return pc.localDescription.sdp;
}

/** The media direction an SDP asks for ("sendrecv", "sendonly", "recvonly" or "inactive"). */
export function sdpDirection(sdp) {
  const found = /^a=(sendrecv|sendonly|recvonly|inactive)\s*$/m.exec(sdp);
  return found ? found[1] : "sendrecv";
}

let context = null;

/** The page's AudioContext, resumed (call it from a click: autoplay rules). */
export function audioContext() {
  if (!context) context = new AudioContext();
  if (context.state === "suspended") context.resume().catch(() => {});
  return context;
}

/** Shows the level of `stream`'s audio on `meter` (a <meter> from 0 to 1) until stop(). */
export class LevelMeter {
  constructor(stream, meter) {
    const ctx = audioContext();
    this.source = ctx.createMediaStreamSource(stream);
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 1024;
    this.source.connect(this.analyser);
    this.samples = new Float32Array(this.analyser.fftSize);
    this.meter = meter;
    /** The highest level shown so far. */
    this.peak = 0;
    this.timer = setInterval(() => this.#update(), 100);
  }

  #update() {
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const s of this.samples) sum += s * s;
    const rms = Math.sqrt(sum / this.samples.length);
    // Speech sits around 0.01–0.3 RMS: a square root spreads it over the meter.
    const level = Math.min(1, Math.sqrt(rms) * 1.5);
    this.meter.value = level;
    this.peak = Math.max(this.peak, level);
  }

  stop() {
    clearInterval(this.timer);
    this.source.disconnect();
    this.meter.value = 0;
  }
}

/** Inbound and outbound audio RTP counters of `pc`, from getStats(). */
export async function rtpStats(pc) {
  const out = {
    packetsReceived: 0,
    totalAudioEnergy: 0,
    audioLevel: 0,
    packetsSent: 0,
    bytesReceived: 0,
  };
  if (!pc) return out;
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      out.packetsReceived += s.packetsReceived ?? 0;
      out.totalAudioEnergy += s.totalAudioEnergy ?? 0;
      out.audioLevel = Math.max(out.audioLevel, s.audioLevel ?? 0);
      out.bytesReceived += s.bytesReceived ?? 0;
    } else if (s.type === "outbound-rtp" && s.kind === "audio") {
      out.packetsSent += s.packetsSent ?? 0;
    }
  });
  return out;
}
