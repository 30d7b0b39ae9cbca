// The operator's live view: WebRTC with the hub, signalled through the command inbox (docs/protocol.md,
// "WebRTC live sessions"). Non-trickle: the offer is sent once ICE gathering is complete, because the hub only
// reads it when it next polls its inbox.
"use strict";

const root = document.getElementById("live");
const hub = root.dataset.hub;
// The page's language: the template puts each message in a data-t-* attribute, each state name in data-state-*.
const text = root.dataset;
function t(key, values = {}) {
  return (text[key] || key).replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}
function stateName(state) { return text["state" + state.charAt(0).toUpperCase() + state.slice(1)] || state; }
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const statusLine = document.getElementById("status");
const video = document.getElementById("video");
const buttons = { watch: document.getElementById("watch"), speak: document.getElementById("speak"),
                  stop: document.getElementById("stop") };
const base = `/operator/hubs/${encodeURIComponent(hub)}`;
let pc = null;
let session = null;
let microphone = null;

function say(text) { statusLine.textContent = text; }

function busy(on) {
  buttons.watch.disabled = on; buttons.speak.disabled = on; buttons.stop.disabled = !on;
}

async function post(path, body) {
  const response = await fetch(base + path, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function gatheringComplete(peer, timeoutMs) {
  if (peer.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (peer.iceGatheringState === "complete") { peer.removeEventListener("icegatheringstatechange", done); resolve(); } };
    peer.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);  // send what was gathered: host candidates work on a LAN
  });
}

async function result(id, deadlineMs) {
  while (Date.now() < deadlineMs) {
    const response = await fetch(`${base}/commands/${id}?wait=25`, { credentials: "same-origin" });
    const command = await response.json();
    if (!response.ok) throw new Error(command.error || `HTTP ${response.status}`);
    if (["applied", "rejected", "expired", "failed"].includes(command.status)) return command;
    say(t("tWaiting", { id, status: stateName(command.status) }));
  }
  throw new Error(t("tNoAnswer"));
}

async function start(mode) {
  busy(true);
  const ice = document.getElementById("ice").value.trim();
  const iceServers = ice ? [{ urls: ice }] : [];
  pc = new RTCPeerConnection({ iceServers });
  const connected = t(mode === "camera" ? "tConnectedCamera" : "tConnectedSpeak");
  pc.addEventListener("connectionstatechange", () => {
    const state = pc ? pc.connectionState : "closed";
    say(state === "connected" ? connected : t("tConnection", { state: stateName(state) }));
    if (pc && ["failed", "closed"].includes(pc.connectionState)) stop();
  });
  if (mode === "camera") {
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addEventListener("track", (event) => { video.srcObject = event.streams[0] || new MediaStream([event.track]); });
  } else {
    microphone = await navigator.mediaDevices.getUserMedia({ audio: true });
    for (const track of microphone.getAudioTracks()) pc.addTrack(track, microphone);
  }
  say(t("tGathering"));
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc, 5000);
  const body = { mode, session: crypto.randomUUID(), offer: { sdp: pc.localDescription.sdp, type: "offer" } };
  const camera = document.getElementById("camera").value.trim();
  if (camera && mode === "camera") body.camera = camera;
  if (iceServers.length) body.ice_servers = iceServers;
  const queued = await post("/live/start", body);
  session = queued.session;
  say(t("tOfferSent", { id: queued.id }));
  const command = await result(queued.id, Date.now() + 65000);
  if (command.status !== "applied") {
    throw new Error(t("tRefused", { status: stateName(command.status), error: command.error || "" }));
  }
  await pc.setRemoteDescription(command.result.answer);
  if (pc.connectionState === "connected") say(connected); else say(t("tAnswer"));
}

async function stop() {
  const ending = session;
  session = null;
  if (pc) { pc.close(); pc = null; }
  if (microphone) { for (const t of microphone.getTracks()) t.stop(); microphone = null; }
  video.srcObject = null;
  busy(false);
  if (ending) {
    try { await post("/live/stop", { session: ending }); say(t("tStopped")); } catch (e) { say(t("tStopFailed", { error: e.message })); }
  }
}

function run(mode) {
  start(mode).catch(async (error) => { await stop(); say(t("tFailed", { error: error.message })); });
}

buttons.watch.addEventListener("click", () => run("camera"));
buttons.speak.addEventListener("click", () => run("announce"));
buttons.stop.addEventListener("click", () => stop());
busy(false);
