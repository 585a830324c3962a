// Plays the acoustic camera's focused sound with the Web Audio API: every `audio` frame
// becomes an AudioBuffer at the frame's own sample rate (the browser resamples to its output
// rate) played by an AudioBufferSourceNode started exactly where the previous frame ends on
// the AudioContext's clock, so frames join without clicks. A short lead absorbs network
// jitter; when frames arrive late the queue restarts (an underrun); when they pile up beyond
// MAX_AHEAD_S (a clock slower than the station's, a tab in the background) frames are dropped
// so the delay stays bounded.
//
// One selection is heard at a time (`mode` = its id) or all of them mixed (`mode` = "mix").
// The AudioContext must be created from a user gesture (browsers start it suspended
// otherwise): call `start()` in a click handler.

import type { AcousticAudioFrame } from "../acoustic-frames";

/** Delay given to the first frame (and after an underrun) before it plays, s. */
const START_LEAD_S = 0.06;
/** Queued sound beyond which frames are dropped, s. */
const MAX_AHEAD_S = 0.4;

export type MixMode = "mix" | string;

export interface PlayerStats {
  /** frames handed to push() while playing */
  decoded: number;
  /** frames scheduled on the AudioContext */
  scheduled: number;
  /** frames dropped: the queue was longer than MAX_AHEAD_S */
  dropped: number;
  /** times the queue ran dry and restarted */
  underruns: number;
  /** frames that had none of the chosen selection */
  skipped: number;
  /** sound queued ahead of the AudioContext's clock now, ms */
  bufferedMs: number;
  /** AudioContext state: "none" before start(), then suspended / running / closed */
  contextState: string;
  /** the output's sample rate (the frames are resampled to it) */
  outputRateHz: number;
  /** the output's own latency (base + output), ms, where the browser reports it */
  outputLatencyMs: number;
}

export class PcmPlayer {
  mode: MixMode = "mix";
  readonly stats: PlayerStats = {
    decoded: 0,
    scheduled: 0,
    dropped: 0,
    underruns: 0,
    skipped: 0,
    bufferedMs: 0,
    contextState: "none",
    outputRateHz: 0,
    outputLatencyMs: Number.NaN,
  };
  private ctx: AudioContext | null = null;
  private gain: GainNode | null = null;
  private nextTime = 0;
  private readonly playing = new Set<AudioBufferSourceNode>();
  private volume = 1;

  /** true once start() made the context (it may still be suspended by the browser) */
  get started(): boolean {
    return this.ctx !== null;
  }

  /** Creates (or resumes) the AudioContext; call from a user gesture. */
  start(): void {
    if (!this.ctx) {
      this.ctx = new AudioContext({ latencyHint: "interactive" });
      this.gain = this.ctx.createGain();
      this.gain.gain.value = this.volume;
      this.gain.connect(this.ctx.destination);
      this.ctx.addEventListener("statechange", () => this.refreshStats());
    }
    if (this.ctx.state === "suspended") void this.ctx.resume().catch(() => undefined);
    this.refreshStats();
  }

  setVolume(v: number): void {
    this.volume = Math.max(0, Math.min(2, v));
    if (this.gain && this.ctx) this.gain.gain.setTargetAtTime(this.volume, this.ctx.currentTime, 0.02);
  }

  /** Plays a frame after the ones queued (nothing before start()). Returns whether it was
   * scheduled. */
  push(frame: AcousticAudioFrame): boolean {
    const ctx = this.ctx;
    const gain = this.gain;
    if (!ctx || !gain || ctx.state === "closed" || frame.length === 0) return false;
    this.stats.decoded++;
    const signal = this.pick(frame);
    if (!signal) {
      this.stats.skipped++;
      return false;
    }
    const now = ctx.currentTime;
    if (this.nextTime < now + 0.005) {
      if (this.stats.scheduled > 0) this.stats.underruns++;
      this.nextTime = now + START_LEAD_S;
    }
    if (this.nextTime - now > MAX_AHEAD_S) {
      this.stats.dropped++;
      this.refreshStats();
      return false;
    }
    const buffer = ctx.createBuffer(1, frame.length, frame.sampleRateHz);
    buffer.copyToChannel(signal, 0);
    const src = ctx.createBufferSource();
    src.buffer = buffer;
    src.connect(gain);
    src.onended = () => {
      this.playing.delete(src);
      src.disconnect();
    };
    src.start(this.nextTime);
    this.playing.add(src);
    this.nextTime += buffer.duration;
    this.stats.scheduled++;
    this.refreshStats();
    return true;
  }

  /** Stops what is queued (a new selection, sound off); the context stays for later. */
  flush(): void {
    for (const src of this.playing) {
      try {
        src.stop();
      } catch {
        /* not started yet or already ended */
      }
    }
    this.playing.clear();
    this.nextTime = 0;
    this.refreshStats();
  }

  close(): void {
    this.flush();
    void this.ctx?.close().catch(() => undefined);
    this.ctx = null;
    this.gain = null;
    this.stats.contextState = "closed";
  }

  refreshStats(): PlayerStats {
    const ctx = this.ctx;
    if (!ctx) return this.stats;
    this.stats.contextState = ctx.state;
    this.stats.outputRateHz = ctx.sampleRate;
    this.stats.bufferedMs = Math.max(0, this.nextTime - ctx.currentTime) * 1000;
    const out = (ctx.baseLatency || 0) + (ctx.outputLatency || 0);
    this.stats.outputLatencyMs = out * 1000;
    return this.stats;
  }

  /** The signal to play: the chosen selection's channel, or all channels mixed (averaged, so
   * several loud points do not clip). null: the chosen selection is not in the frame. */
  private pick(frame: AcousticAudioFrame): Float32Array<ArrayBuffer> | null {
    if (this.mode !== "mix") {
      const i = frame.selections.indexOf(this.mode);
      return i >= 0 ? frame.channels[i] : null;
    }
    const n = frame.channels.length;
    if (n === 1) return frame.channels[0];
    const out = new Float32Array(frame.length);
    for (const ch of frame.channels) for (let i = 0; i < out.length; i++) out[i] += ch[i] / n;
    return out;
  }
}
