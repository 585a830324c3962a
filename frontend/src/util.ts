// Small DOM, settings and number-formatting helpers shared by the shell and the pages.

type Attrs = Record<string, string | number | boolean | undefined>;
type Child = Node | string | null | undefined | false;

/** Creates an element: h("div", {class: "x", "data-testid": "y"}, child, ...). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c);
  }
  return el;
}

/** Returns the element with this id, or throws: index.html and the code must agree. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id} in index.html`);
  return el as T;
}

/** Fills `root` with static markup and returns its elements that carry `data-ref="name"`,
 * by name: a page's layout reads as HTML, its code reaches the parts it updates. */
export function mountHtml<K extends string>(root: HTMLElement, html: string, names: readonly K[]): Record<K, HTMLElement> {
  root.innerHTML = html;
  const out = {} as Record<K, HTMLElement>;
  for (const name of names) {
    const el = root.querySelector<HTMLElement>(`[data-ref="${name}"]`);
    if (!el) throw new Error(`page markup lacks data-ref="${name}"`);
    out[name] = el;
  }
  return out;
}

/** Settings that survive a reload (localStorage, "rigwatch." prefix); silently absent in
 * private mode. */
export const settings = {
  get(key: string): string | null {
    try {
      return localStorage.getItem(`rigwatch.${key}`);
    } catch {
      return null;
    }
  },
  set(key: string, value: string): void {
    try {
      localStorage.setItem(`rigwatch.${key}`, value);
    } catch {
      /* private mode: settings just do not persist */
    }
  },
};

/** The message of anything thrown. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Sets textContent only when it changed (keeps the DOM quiet at high update rates). */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

export function fmtInt(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  return Math.round(n).toLocaleString("en-US");
}

export function fmtNum(n: number | null | undefined, digits = 1): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  return n.toFixed(digits);
}

/** Engineering-style compact value: 3 significant digits, no exponent for usual ranges. */
export function fmtValue(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  const a = Math.abs(n);
  if (a === 0) return "0";
  if (a >= 1e5 || a < 1e-3) return n.toExponential(2);
  return n.toPrecision(3);
}

export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : v < 10 ? 2 : 1)} ${units[i]}`;
}

export function fmtDuration(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return "—";
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.floor(s % 60)}s`;
  const hrs = Math.floor(m / 60);
  return `${hrs}h ${m % 60}m`;
}

/** Whole seconds as "42 s", "3m 07s", "5h 02m", "3d 04h". */
export function fmtUptime(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return "—";
  const t = Math.max(0, Math.floor(s));
  const p2 = (n: number): string => String(n).padStart(2, "0");
  if (t < 60) return `${t} s`;
  if (t < 3600) return `${Math.floor(t / 60)}m ${p2(t % 60)}s`;
  if (t < 86400) return `${Math.floor(t / 3600)}h ${p2(Math.floor(t / 60) % 60)}m`;
  return `${Math.floor(t / 86400)}d ${p2(Math.floor(t / 3600) % 24)}h`;
}

export function fmtRate(hz: number | null | undefined): string {
  if (hz === null || hz === undefined || !Number.isFinite(hz)) return "—";
  if (hz >= 1000) return `${(hz / 1000).toFixed(hz % 1000 === 0 ? 0 : 1)} kHz`;
  return `${hz.toFixed(hz % 1 === 0 ? 0 : 1)} Hz`;
}

const pad2 = (n: number): string => String(n).padStart(2, "0");

/** Local wall-clock time of a nanosecond epoch timestamp: "2025-11-22 08:15:03". */
export function fmtTimeNs(ns: number | null | undefined): string {
  if (ns === null || ns === undefined || !Number.isFinite(ns)) return "—";
  const d = new Date(ns / 1e6);
  return (
    `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`
  );
}

/** Converts a msgpack integer (number, or bigint for 64-bit values) to a Number. */
export function toNumber(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return Number.NaN;
}
