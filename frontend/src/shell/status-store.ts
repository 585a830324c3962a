// GET /api/status for the whole app: polled every 2 s (never overlapping), handed to whoever
// listens (header, pages). A failed refresh is shown once in the problem display (counting
// repeats) and cleared when a refresh works again; meanwhile what is shown is dimmed as stale.

import { type StationStatus, getStatus } from "../api";
import type { ProblemsView } from "../components/problems";

const PROBLEM_KEY = "status-poll";

export class StatusStore {
  private listeners = new Set<(st: StationStatus) => void>();
  private timer = 0;
  private running = false;
  private inFlight: Promise<void> | null = null;
  last: StationStatus | null = null;
  /** performance.now() of the last good answer */
  receivedAt = 0;
  polls = 0;
  failures = 0;

  constructor(
    private readonly problems: ProblemsView,
    private readonly intervalMs = 2000,
  ) {}

  /** Calls `fn` with every new status (at once with the last one, if any); returns the
   * unsubscriber. */
  subscribe(fn: (st: StationStatus) => void): () => void {
    this.listeners.add(fn);
    if (this.last) fn(this.last);
    return () => this.listeners.delete(fn);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.tick();
  }

  /** Refreshes now (e.g. after a write), or waits for the refresh under way. */
  refresh(): Promise<void> {
    if (!this.inFlight) {
      this.inFlight = this.fetch().finally(() => {
        this.inFlight = null;
      });
    }
    return this.inFlight;
  }

  private async tick(): Promise<void> {
    await this.refresh();
    if (this.running) this.timer = window.setTimeout(() => void this.tick(), this.intervalMs);
  }

  stop(): void {
    this.running = false;
    window.clearTimeout(this.timer);
  }

  private async fetch(): Promise<void> {
    this.polls++;
    let st: StationStatus;
    try {
      st = await getStatus();
    } catch (err) {
      this.failures++;
      document.body.classList.add("stale");
      this.problems.report(err, PROBLEM_KEY);
      return;
    }
    document.body.classList.remove("stale");
    this.problems.clear(PROBLEM_KEY);
    this.last = st;
    this.receivedAt = performance.now();
    for (const fn of this.listeners) {
      try {
        fn(st);
      } catch (err) {
        this.problems.report(err);
      }
    }
  }
}
