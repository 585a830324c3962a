// Station status panels, refreshed from REST: header (station, mode, uptime), per-device
// buffer and recorder cards, and error counters (only the non-zero ones).

import type { BufferStatus, StationStatus } from "./api";
import { byId, fmtBytes, fmtDuration, fmtInt, fmtNum, fmtRate, h, setText } from "./util";

function kv(label: string, value: string, opts: { warn?: boolean; testid?: string; title?: string } = {}): HTMLElement {
  return h(
    "div",
    { class: "kv" },
    h("span", { class: "k" }, label),
    h("span", { class: `v num${opts.warn ? " warn" : ""}`, "data-testid": opts.testid, title: opts.title }, value),
  );
}

function stateBadge(state: string): HTMLElement {
  const s = state.toLowerCase();
  const cls = /run|record|ok|open|active|stream/.test(s)
    ? "ok"
    : /err|fail|fault|crash/.test(s)
      ? "bad"
      : /stop|idle|closed|off/.test(s)
        ? "idle"
        : "warn";
  return h("span", { class: `badge ${cls}` }, state);
}

function fillBar(ratio: number): HTMLElement {
  const pct = Math.max(0, Math.min(1, Number.isFinite(ratio) ? ratio : 0)) * 100;
  const bar = h("div", { class: "bar-fill" });
  bar.style.width = `${pct.toFixed(1)}%`;
  return h("div", { class: "bar", title: `${pct.toFixed(1)} % full` }, bar);
}

export class StatusView {
  private readonly station = byId("station-name");
  private readonly mode = byId("station-mode");
  private readonly uptime = byId("uptime");
  private readonly clients = byId("live-clients");
  private readonly devices = byId("device-cards");
  private readonly errors = byId("error-counters");
  private readonly errorList = byId("error-list");
  private readonly statusMsg = byId("status-msg");
  lastStatus: StationStatus | null = null;

  /** Shows why the last refresh failed (null: it worked); stale panels are dimmed. */
  showError(msg: string | null): void {
    document.body.classList.toggle("stale", !!msg);
    this.statusMsg.hidden = !msg;
    setText(this.statusMsg, msg ?? "");
  }

  render(st: StationStatus, buf: BufferStatus | null): void {
    this.lastStatus = st;
    setText(this.station, st.station);
    document.title = `${st.station} · rigwatch`;
    setText(this.mode, st.mode);
    this.mode.dataset.mode = st.mode;
    setText(this.uptime, fmtDuration(st.uptime_s));
    setText(this.clients, fmtInt(st.live?.clients));

    const cards = st.devices.map((d) => {
      const b = buf?.devices?.[d.name];
      const r = st.recorder?.[d.name];
      const fill = b ? b.fill_ratio : Number.NaN;
      const card = h(
        "div",
        { class: "device-card", "data-device": d.name, "data-testid": `device-card-${d.name}` },
        h(
          "div",
          { class: "device-head" },
          h("span", { class: "device-name" }, d.name),
          h("span", { class: "muted" }, `${d.driver} · ${fmtRate(d.sample_rate_hz)} · ${d.channels.length} ch`),
          stateBadge(d.state),
        ),
        h(
          "div",
          { class: "buffer-row", "data-testid": `buffer-${d.name}` },
          h("span", { class: "k" }, "buffer"),
          fillBar(fill),
          h("span", { class: "v num", "data-testid": `buffer-fill-${d.name}` }, b ? `${fmtNum(fill * 100, 1)} %` : "—"),
        ),
        h(
          "div",
          { class: "kv-grid" },
          kv("rows", b ? fmtInt(b.rows_available) : "—", { title: b ? `capacity ${fmtInt(b.capacity_rows)}` : undefined }),
          kv("available", b ? `${fmtNum(b.seconds_available, 1)} s` : "—", { testid: `buffer-seconds-${d.name}` }),
          kv("memory", b ? fmtBytes(b.memory_bytes) : "—"),
          kv("blocks", fmtInt(d.blocks)),
          d.device_errors ? kv("device errors", fmtInt(d.device_errors), { warn: true }) : null,
        ),
        d.last_error ? h("div", { class: "error-line", title: d.last_error }, d.last_error) : null,
        r ? this.recorderBlock(d.name, r) : h("div", { class: "muted small" }, "recorder off"),
      );
      return card;
    });
    this.devices.replaceChildren(...cards);

    const nonZero = Object.entries(st.errors ?? {}).filter(([, v]) => v);
    for (const d of st.devices) if (d.device_errors) nonZero.push([`${d.name}.device_errors`, d.device_errors]);
    if (st.live?.samples_skipped) nonZero.push(["live.samples_skipped", st.live.samples_skipped]);
    this.errors.hidden = nonZero.length === 0;
    this.errorList.replaceChildren(
      ...nonZero.map(([k, v]) =>
        h(
          "div",
          { class: "kv err", title: st.error_messages?.[k] ?? undefined, "data-testid": `error-${k}` },
          h("span", { class: "k" }, k),
          h("span", { class: "v num" }, fmtInt(v)),
        ),
      ),
    );
  }

  private recorderBlock(device: string, r: NonNullable<StationStatus["recorder"][string]>): HTMLElement {
    const open = r.current_segment ?? r.segment ?? null;
    return h(
      "div",
      { class: "recorder", "data-testid": `recorder-${device}` },
      h(
        "div",
        { class: "rec-head" },
        h("span", { class: "k" }, "recorder"),
        stateBadge(r.state),
        h("span", { class: "seg-name num", title: open ?? "", "data-testid": `current-segment-${device}` }, open ?? "no open segment"),
      ),
      h(
        "div",
        { class: "kv-grid" },
        kv("rows rec.", fmtInt(r.rows_recorded), { testid: `rows-recorded-${device}` }),
        kv("segments", fmtInt(r.segments_closed)),
        kv("written", fmtBytes(r.bytes_written)),
        kv("missed rows", fmtInt(r.missed_rows), { warn: r.missed_rows > 0 }),
      ),
      r.last_error ? h("div", { class: "error-line", title: r.last_error }, r.last_error) : null,
    );
  }
}

/** Calls fn now and then every intervalMs after each call settles (never overlapping). */
export function poll(fn: () => Promise<void>, intervalMs: number): () => void {
  let timer = 0;
  let stopped = false;
  const tick = async (): Promise<void> => {
    try {
      await fn();
    } finally {
      if (!stopped) timer = window.setTimeout(tick, intervalMs);
    }
  };
  void tick();
  return () => {
    stopped = true;
    window.clearTimeout(timer);
  };
}
