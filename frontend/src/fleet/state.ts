// The fleet as the dashboard knows it: every machine's id, name, position and colour, loaded
// from GET /api/fleet/map (columnar) and kept current by the live stream's snapshot and
// `machine_update` deltas, applied in place. Listeners (the map, the header's counts) are
// told once per animation frame which machines changed. A machine the map does not know yet
// (registered after the load) makes it load again.

import type { ProblemsView } from "../components/problems";
import { type FleetMap, getFleetMap } from "./api";
import { COLOURS, colourCode } from "./colours";
import type { FleetLive, MachineUpdate, Snapshot } from "./live";

export interface FleetChange {
  /** everything changed (a load): positions, names, colours */
  full: boolean;
  /** indices of machines whose colour changed (when not full) */
  changed: number[];
}

/** `window.__rigwatch.fleet` */
export interface FleetDebug {
  loaded: boolean;
  loads: number;
  count: number;
  /** machines per colour */
  counts: Record<string, number>;
  /** live colour changes applied to known machines */
  applied: number;
  /** ms from navigation start to the end of the first load */
  loadedAtMs: number;
}

export class FleetState {
  ids: string[] = [];
  names: string[] = [];
  lat = new Float64Array(0);
  lon = new Float64Array(0);
  /** colour code per machine (colours.ts) */
  colour = new Uint8Array(0);
  readonly counts = new Array<number>(COLOURS.length).fill(0);
  private index = new Map<string, number>();
  private listeners = new Set<(c: FleetChange) => void>();
  private pending: Set<number> | null = null;
  private pendingFull = false;
  private frame = 0;
  private reloadTimer = 0;
  private loading: Promise<void> | null = null;
  private unsubscribe: (() => void) | null = null;
  readonly debug: FleetDebug = { loaded: false, loads: 0, count: 0, counts: {}, applied: 0, loadedAtMs: Number.NaN };

  constructor(
    private readonly live: FleetLive,
    private readonly problems: ProblemsView,
  ) {}

  get loaded(): boolean {
    return this.debug.loaded;
  }

  indexOf(id: string): number | undefined {
    return this.index.get(id);
  }

  nameOf(id: string): string | undefined {
    const i = this.index.get(id);
    return i === undefined ? undefined : this.names[i];
  }

  /** Calls `fn` with each change (and at once with a full one when loaded). */
  subscribe(fn: (c: FleetChange) => void): () => void {
    this.listeners.add(fn);
    if (this.loaded) fn({ full: true, changed: [] });
    return () => this.listeners.delete(fn);
  }

  /** Loads the map (again); the live stream's state is applied on top. */
  load(): Promise<void> {
    if (!this.loading) {
      this.loading = this.fetch().finally(() => {
        this.loading = null;
      });
    }
    return this.loading;
  }

  private async fetch(): Promise<void> {
    let m: FleetMap;
    try {
      m = await getFleetMap();
    } catch (err) {
      this.problems.report(err, "fleet-map");
      return;
    }
    this.problems.clear("fleet-map");
    this.apply(m);
    this.unsubscribe?.();
    // the live stream's state now (snapshot + updates since), then each update
    this.unsubscribe = this.live.subscribe({
      onSnapshot: (s) => this.onSnapshot(s),
      onUpdate: (u) => this.onUpdate(u),
    });
    this.debug.loads++;
    if (!this.debug.loaded) this.debug.loadedAtMs = performance.now();
    this.debug.loaded = true;
    this.notify(null);
  }

  private apply(m: FleetMap): void {
    const n = m.id.length;
    this.ids = m.id;
    this.names = m.name;
    this.lat = new Float64Array(n);
    this.lon = new Float64Array(n);
    this.colour = new Uint8Array(n);
    this.index = new Map();
    this.counts.fill(0);
    for (let i = 0; i < n; i++) {
      this.index.set(m.id[i], i);
      this.lat[i] = m.latitude[i] ?? Number.NaN;
      this.lon[i] = m.longitude[i] ?? Number.NaN;
      const c = colourCode(m.colour[i]);
      this.colour[i] = c;
      this.counts[c]++;
    }
    this.debug.count = n;
    this.syncCounts();
  }

  private setColour(id: string, colour: string): boolean {
    const i = this.index.get(id);
    if (i === undefined) {
      this.scheduleReload();
      return false;
    }
    const c = colourCode(colour);
    if (this.colour[i] === c) return false;
    this.counts[this.colour[i]]--;
    this.counts[c]++;
    this.colour[i] = c;
    this.debug.applied++;
    (this.pending ??= new Set()).add(i);
    return true;
  }

  private onSnapshot(s: Snapshot): void {
    const m = s.machines;
    for (let i = 0; i < m.machine_id.length; i++) this.setColour(m.machine_id[i], m.status[i]);
    this.schedule();
  }

  private onUpdate(u: MachineUpdate): void {
    if (this.setColour(u.machine_id, u.status)) this.schedule();
  }

  private scheduleReload(): void {
    if (this.reloadTimer) return;
    this.reloadTimer = window.setTimeout(() => {
      this.reloadTimer = 0;
      void this.load();
    }, 1000);
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      const changed = this.pending;
      this.pending = null;
      if (changed?.size || this.pendingFull) this.notify(changed);
    });
  }

  private notify(changed: Set<number> | null): void {
    const full = changed === null || this.pendingFull;
    this.pendingFull = false;
    this.syncCounts();
    const change: FleetChange = { full, changed: changed ? [...changed] : [] };
    for (const fn of this.listeners) {
      try {
        fn(change);
      } catch (err) {
        this.problems.report(err);
      }
    }
  }

  private syncCounts(): void {
    COLOURS.forEach((c, i) => {
      this.debug.counts[c] = this.counts[i];
    });
  }
}
