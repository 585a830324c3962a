// Per-device cards (state, ring-buffer fill, recorder) and the error counters (only the
// non-zero ones, each with its last message as a tooltip).

import type { BufferStatus, RecorderStatus, StationStatus } from "../api";
import { fmtBytes, fmtInt, fmtNum, fmtRate, h } from "../util";
import { deviceBadge, recorderBadge } from "./badges";

function kv(label: string, value: string, opts: { warn?: boolean; testid?: string; title?: string } = {}): HTMLElement {
  return h(
    "div",
    { class: "kv" },
    h("span", { class: "k" }, label),
    h("span", { class: `v num${opts.warn ? " warn" : ""}`, "data-testid": opts.testid, title: opts.title }, value),
  );
}

function fillBar(ratio: number): HTMLElement {
  const pct = Math.max(0, Math.min(1, Number.isFinite(ratio) ? ratio : 0)) * 100;
  const bar = h("div", { class: "bar-fill" });
  bar.style.width = `${pct.toFixed(1)}%`;
  return h("div", { class: "bar", title: `${pct.toFixed(1)} % full` }, bar);
}

function recorderBlock(device: string, r: RecorderStatus): HTMLElement {
  const open = r.segment;
  return h(
    "div",
    { class: "recorder", "data-testid": `recorder-${device}` },
    h(
      "div",
      { class: "rec-head" },
      h("span", { class: "k" }, "recorder"),
      recorderBadge(r.state, r.directory),
      h("span", { class: "seg-name num", title: open ?? "", "data-testid": `current-segment-${device}` }, open ?? "no open segment"),
    ),
    h(
      "div",
      { class: "kv-grid" },
      kv("rows rec.", fmtInt(r.rows_recorded), { testid: `rows-recorded-${device}` }),
      kv("segments", fmtInt(r.segments_closed)),
      kv("written", fmtBytes(r.bytes_written)),
      kv("missed rows", fmtInt(r.missed_rows), { warn: r.missed_rows > 0 }),
      kv("disk free", r.free_bytes == null ? "—" : fmtBytes(r.free_bytes), {
        warn: r.state === "disk_full",
        testid: `disk-free-${device}`,
        title: r.min_free_bytes == null ? undefined : `recording stops below ${fmtBytes(r.min_free_bytes)}`,
      }),
      r.lost_rows ? kv("lost rows", fmtInt(r.lost_rows), { warn: true, title: "not recorded: disk full or a failed write" }) : null,
      r.retention_deleted_files
        ? kv("retention", `${fmtInt(r.retention_deleted_files)} deleted`, { title: `${fmtBytes(r.retention_deleted_bytes)} freed` })
        : null,
    ),
    r.last_error ? h("div", { class: "error-line", title: r.last_error }, r.last_error) : null,
  );
}

/** The cards of every device of `st`, with `buf`'s fill when known. */
export function deviceCards(st: StationStatus, buf: BufferStatus | null): HTMLElement[] {
  return st.devices.map((d) => {
    const b = buf?.devices[d.name];
    const r = st.recorder[d.name];
    const fill = b ? b.fill_ratio : Number.NaN;
    return h(
      "div",
      { class: "device-card", "data-device": d.name, "data-testid": `device-card-${d.name}` },
      h(
        "div",
        { class: "device-head" },
        h("span", { class: "device-name" }, d.name),
        h("span", { class: "muted" }, `${d.driver}${d.simulated ? " (simulated)" : ""} · ${fmtRate(d.sample_rate_hz)} · ${d.channels.length} ch`),
        deviceBadge(d.state, d.last_error || undefined),
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
      r ? recorderBlock(d.name, r) : h("div", { class: "muted small" }, "recorder off"),
    );
  });
}

/** Non-zero error counters of `st` (plus device errors and skipped live samples). */
export function errorCounters(st: StationStatus): HTMLElement[] {
  const nonZero: [string, number][] = Object.entries(st.errors).filter(([, v]) => v);
  for (const d of st.devices) if (d.device_errors) nonZero.push([`${d.name}.device_errors`, d.device_errors]);
  if (st.live.samples_skipped) nonZero.push(["live.samples_skipped", st.live.samples_skipped]);
  return nonZero.map(([k, v]) =>
    h(
      "div",
      { class: "kv err", title: st.error_messages[k] ?? undefined, "data-testid": `error-${k}` },
      h("span", { class: "k" }, k),
      h("span", { class: "v num" }, fmtInt(v)),
    ),
  );
}
