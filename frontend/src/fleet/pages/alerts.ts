// The alert list: filtered by state, severity and machine, newest first (GET /api/alerts),
// refreshed every 5 s and soon after a live update. An operator acknowledges an active alert
// or clears an open one, with a comment (POST /api/alerts/{id}/acknowledge | clear); a viewer
// is told by the server (403, shown in the problem display). Machines' names are text.

import { hashFor } from "../../shell/router";
import { fmtInt, h, settings, setText } from "../../util";
import { type Alert, type AlertState, type Severity, acknowledgeAlert, clearAlert, getAlerts } from "../api";
import { fmtAgo, fmtIso } from "../format";
import type { FleetPageContext, MountedPage } from "./types";

/** `window.__rigwatch.alerts` */
export interface AlertsDebug {
  loads: number;
  shown: number;
  acknowledged: number;
  cleared: number;
}

const STATES: AlertState[] = ["active", "acknowledged", "cleared"];
const FILTER_KEY = "fleet.alerts.states";

export function mount(root: HTMLElement, ctx: FleetPageContext): MountedPage {
  const dbg = ctx.expose<AlertsDebug>({ loads: 0, shown: 0, acknowledged: 0, cleared: 0 });
  const saved = settings.get(FILTER_KEY);
  const states = new Set<AlertState>(saved ? (saved.split(",").filter((s) => STATES.includes(s as AlertState)) as AlertState[]) : ["active", "acknowledged"]);
  let severity: Severity | "" = "";
  let machine = "";

  const stateBoxes = STATES.map((s) => {
    const box = h("input", { type: "checkbox", "data-testid": `state-${s}` });
    box.checked = states.has(s);
    box.addEventListener("change", () => {
      if (box.checked) states.add(s);
      else states.delete(s);
      settings.set(FILTER_KEY, [...states].join(","));
      void refresh();
    });
    return h("label", { class: "filter-item" }, box, h("span", {}, s));
  });
  const sevSelect = h(
    "select",
    { "data-testid": "severity" },
    h("option", { value: "" }, "any severity"),
    h("option", { value: "critical" }, "critical"),
    h("option", { value: "warning" }, "warning"),
  );
  sevSelect.addEventListener("change", () => {
    severity = sevSelect.value as Severity | "";
    void refresh();
  });
  const machineInput = h("input", { type: "search", placeholder: "machine id", "data-testid": "machine-filter", size: 18 });
  let typing = 0;
  machineInput.addEventListener("input", () => {
    window.clearTimeout(typing);
    typing = window.setTimeout(() => {
      machine = machineInput.value.trim();
      void refresh();
    }, 300);
  });
  const countEl = h("span", { class: "muted num", "data-testid": "alert-count" }, "—");
  const list = h("div", { class: "alert-list", "data-testid": "alert-list" });
  root.append(
    h(
      "section",
      { class: "panel alerts-panel" },
      h("div", { class: "panel-head alerts-filter" }, h("h2", {}, "Alerts"), ...stateBoxes, sevSelect, machineInput, h("span", { class: "spacer" }), countEl),
      list,
    ),
  );

  /** alert id -> the open acknowledge/clear form (kept across refreshes) */
  let openForm: { id: string; action: "acknowledge" | "clear"; comment: string } | null = null;
  let last: Alert[] = [];

  function actionForm(a: Alert, action: "acknowledge" | "clear"): HTMLElement {
    const comment = h("input", { type: "text", placeholder: "comment", maxlength: 2000, "data-testid": "ack-comment", size: 32 });
    comment.value = openForm?.comment ?? "";
    comment.addEventListener("input", () => {
      if (openForm) openForm.comment = comment.value;
    });
    const ok = h("button", { type: "submit", class: "btn primary", "data-testid": "ack-confirm" }, action);
    const cancel = h("button", { type: "button", class: "btn", "data-testid": "ack-cancel" }, "cancel");
    const form = h("form", { class: "ack-form" }, comment, ok, cancel);
    cancel.addEventListener("click", () => {
      openForm = null;
      render(last);
    });
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      ok.disabled = true;
      const call = action === "acknowledge" ? acknowledgeAlert : clearAlert;
      call(a.id, comment.value)
        .then(() => {
          if (action === "acknowledge") dbg.acknowledged++;
          else dbg.cleared++;
          openForm = null;
          void refresh();
        })
        .catch((err: unknown) => {
          ok.disabled = false;
          ctx.problems.report(err);
        });
    });
    window.setTimeout(() => comment.focus(), 0);
    return form;
  }

  function actions(a: Alert): HTMLElement {
    if (openForm?.id === a.id) return actionForm(a, openForm.action);
    const cell = h("span", { class: "alert-actions" });
    const open = (action: "acknowledge" | "clear"): void => {
      openForm = { id: a.id, action, comment: "" };
      render(last);
    };
    if (a.state === "active") {
      const b = h("button", { type: "button", class: "btn", "data-testid": "ack" }, "acknowledge…");
      b.addEventListener("click", () => open("acknowledge"));
      cell.append(b);
    }
    if (a.state !== "cleared") {
      const b = h("button", { type: "button", class: "btn", "data-testid": "clear" }, "clear…");
      b.addEventListener("click", () => open("clear"));
      cell.append(b);
    }
    return cell;
  }

  function who(a: Alert): string {
    const parts: string[] = [];
    if (a.acknowledged_by) parts.push(`acknowledged by ${a.acknowledged_by} ${fmtAgo(a.acknowledged_at)}${a.acknowledged_comment ? `: “${a.acknowledged_comment}”` : ""}`);
    if (a.cleared_by) parts.push(`cleared by ${a.cleared_by} ${fmtAgo(a.cleared_at)}${a.cleared_comment ? `: “${a.cleared_comment}”` : ""}`);
    return parts.join(" · ");
  }

  function render(alerts: Alert[]): void {
    last = alerts;
    dbg.shown = alerts.length;
    setText(countEl, `${fmtInt(alerts.length)} shown`);
    if (!alerts.length) {
      list.replaceChildren(h("div", { class: "empty" }, "no alerts match"));
      return;
    }
    const rows = alerts.map((a) => {
      const name = ctx.fleet.nameOf(a.machine_id);
      return h(
        "tr",
        { "data-testid": "alert-row", "data-alert": a.id, "data-state": a.state, class: `alert-${a.state}` },
        h("td", {}, h("span", { class: `badge sev-${a.severity}` }, a.severity)),
        h("td", {}, h("span", { class: `astate astate-${a.state}`, "data-testid": "alert-state" }, a.state)),
        h(
          "td",
          {},
          h("a", { href: hashFor("machine", [a.machine_id]), "data-testid": "alert-machine" }, name ?? a.machine_id),
          name && name !== a.machine_id ? h("div", { class: "muted small num" }, a.machine_id) : null,
        ),
        h("td", { class: "num" }, a.rule_id),
        h("td", {}, a.message, who(a) ? h("div", { class: "muted small", "data-testid": "alert-who" }, who(a)) : null),
        h("td", { class: "num", title: fmtIso(a.opened_at) }, fmtIso(a.opened_at)),
        h("td", { class: "num", title: fmtIso(a.last_seen_at) }, fmtAgo(a.last_seen_at)),
        h("td", { class: "num r" }, fmtInt(a.count)),
        h("td", {}, actions(a)),
      );
    });
    list.replaceChildren(
      h(
        "table",
        { class: "data-table" },
        h("thead", {}, h("tr", {}, ...["severity", "state", "machine", "rule", "message", "opened", "last seen", "count", ""].map((c) => h("th", {}, c)))),
        h("tbody", {}, ...rows),
      ),
    );
  }

  let inFlight = false;
  let again = false;
  async function refresh(): Promise<void> {
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    try {
      const alerts = await getAlerts({ state: [...states], severity: severity || undefined, machine_id: machine || undefined, limit: 500 });
      dbg.loads++;
      ctx.problems.clear("alerts");
      // an open form is not re-rendered under the typing hand unless its alert changed
      render(alerts);
    } catch (err) {
      ctx.problems.report(err, "alerts");
    } finally {
      inFlight = false;
      if (again) {
        again = false;
        void refresh();
      }
    }
  }

  let soon = 0;
  const unsubscribe = ctx.live.subscribe({
    onSnapshot: () => undefined,
    onUpdate: () => {
      if (soon) return;
      soon = window.setTimeout(() => {
        soon = 0;
        if (!openForm) void refresh();
      }, 1000);
    },
  });
  const timer = window.setInterval(() => {
    if (!openForm) void refresh();
  }, 5000);
  void refresh();

  return {
    unmount() {
      unsubscribe();
      window.clearInterval(timer);
      window.clearTimeout(soon);
      window.clearTimeout(typing);
    },
  };
}
