// Status badges: one look for every state the station reports. Device and recorder states are
// the server's enums (generated types): a state added or renamed in Python fails the build
// here until it has a tone.

import type { DeviceState, RecorderState } from "../api";
import type { ConnState } from "../live-client";
import { h, setText } from "../util";

export type Tone = "ok" | "warn" | "bad" | "idle";

const DEVICE_TONE: Record<DeviceState, Tone> = {
  idle: "idle",
  starting: "warn",
  retrying: "warn",
  running: "ok",
  finished: "idle",
  failed: "bad",
  stopped: "idle",
};

const RECORDER_TONE: Record<RecorderState, Tone> = {
  idle: "idle",
  recording: "ok",
  error: "bad",
  disk_full: "bad",
  finished: "idle",
  stopped: "idle",
};

const RECORDER_LABEL: Partial<Record<RecorderState, string>> = { disk_full: "disk full" };

// The station's mode is its scenario runner's state: armed and running are hot.
const MODE_TONE: Record<string, Tone> = {
  idle: "idle",
  done: "ok",
  safe: "ok",
  armed: "warn",
  holding: "warn",
  running: "bad",
  aborting: "bad",
};

const CONN_LABEL: Record<ConnState, string> = { open: "live", connecting: "connecting…", closed: "disconnected" };
const CONN_TONE: Record<ConnState, Tone> = { open: "ok", connecting: "warn", closed: "bad" };

function badge(kind: string, state: string, label: string, tone: Tone, title?: string): HTMLElement {
  return h("span", { class: `badge ${tone}`, "data-kind": kind, "data-state": state, title }, label);
}

export function deviceBadge(state: DeviceState, title?: string): HTMLElement {
  return badge("device", state, state, DEVICE_TONE[state] ?? "warn", title);
}

export function recorderBadge(state: RecorderState, title?: string): HTMLElement {
  return badge("recorder", state, RECORDER_LABEL[state] ?? state, RECORDER_TONE[state] ?? "warn", title);
}

/** Updates a header pill in place (it stays the same element). */
function setPill(el: HTMLElement, state: string, label: string, tone: Tone, title = ""): void {
  setText(el, label);
  el.dataset.state = state;
  el.dataset.tone = tone;
  el.title = title;
}

/** The station's mode: its scenario runner's state (idle, armed, running, holding, aborting,
 * safe, done); anything else is shown as is. */
export function setModeBadge(el: HTMLElement, mode: string, since?: string): void {
  setPill(el, mode, mode, MODE_TONE[mode] ?? "warn", since ? `system mode since ${since}` : "system mode");
}

/** The live WebSocket's state. */
export function setConnectionBadge(el: HTMLElement, state: ConnState, detail: string): void {
  setPill(el, state, CONN_LABEL[state], CONN_TONE[state], detail);
}
