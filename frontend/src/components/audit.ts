// The audit log of the Control page: every command from REST, WebSocket, a scenario, an abort
// or a watchdog, newest first (who, what, when, the result, the interlock or redline
// involved), fetched incrementally from GET /api/control/audit, with its CSV download link.

import { type AuditEntry, auditCsvUrl, getAudit } from "../api";
import { h } from "../util";
import { DataTable } from "./table";

/** Rows kept on the page (the CSV export has them all). */
const KEEP = 400;
/** The first fetch reaches back this far (the log's times are the station's, UTC). */
const FIRST_WINDOW_MS = 12 * 3600 * 1000;

const RESULT_TONE: Record<string, string> = { ok: "ok", refused: "warn", failed: "bad", expired: "bad" };

function timeOf(e: AuditEntry): string {
  const d = new Date(e.time);
  if (Number.isNaN(d.getTime())) return e.time;
  const p = (n: number, w = 2): string => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function why(e: AuditEntry): string {
  return [e.interlock && `interlock ${e.interlock}`, e.redline && `redline ${e.redline}`, e.reason]
    .filter(Boolean)
    .join(" · ");
}

export class AuditView {
  readonly table: DataTable<AuditEntry>;
  readonly csvUrl = auditCsvUrl();
  private rows: AuditEntry[] = [];
  private lastTime: string | null = null;
  private busy = false;
  fetches = 0;

  constructor() {
    this.table = new DataTable<AuditEntry>({
      key: (e) => String(e.id),
      rowTestId: "audit-row",
      rowClass: (e) => `audit-${e.result} audit-act-${e.action}`,
      rowTitle: (e) => (e.value ? `value: ${e.value}` : undefined),
      empty: "no commands yet",
      columns: [
        { label: "time", width: "96px", className: "num", cell: (e) => timeOf(e), title: (e) => e.time },
        { label: "who", width: "120px", cell: (e) => e.who, title: (e) => e.who },
        { label: "source", width: "70px", cell: (e) => e.source },
        { label: "action", width: "84px", cell: (e) => h("span", { "data-testid": "audit-action" }, e.action) },
        { label: "target", width: "24%", cell: (e) => h("span", { class: "num" }, e.target), title: (e) => e.target },
        {
          label: "result",
          width: "78px",
          cell: (e) =>
            h("span", { class: `badge ${RESULT_TONE[e.result] ?? "idle"}`, "data-testid": "audit-result" }, e.result),
        },
        { label: "scenario", width: "96px", cell: (e) => e.scenario },
        { label: "why", cell: (e) => h("span", { "data-testid": "audit-why" }, why(e)), title: (e) => why(e) },
      ],
    });
  }

  get length(): number {
    return this.rows.length;
  }

  get newest(): AuditEntry | undefined {
    return this.rows[0];
  }

  /** Fetches rows newer than the newest shown (the first time: the last 12 h). Throws
   * ApiError (404: the station has no control part). */
  async refresh(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const since = this.lastTime ?? new Date(Date.now() - FIRST_WINDOW_MS).toISOString();
      const got = await getAudit({ since, limit: 5000 });
      this.fetches++;
      const known = new Set(this.rows.map((r) => r.id));
      const fresh = got.filter((r) => !known.has(r.id));
      if (fresh.length) {
        this.rows = [...fresh.reverse(), ...this.rows].sort((a, b) => b.id - a.id).slice(0, KEEP);
        this.lastTime = this.rows[0].time;
      }
      this.table.setRows(this.rows);
    } finally {
      this.busy = false;
    }
  }
}
