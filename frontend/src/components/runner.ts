// The scenario runner's panel: its state (idle, armed, running, holding, aborting, safe,
// done) as a badge, the scenario picker, Arm / Disarm / Run / Hold / Resume / Reset (each
// enabled when this client holds authority and the runner's table allows it now), the step in
// progress, why the last abort happened, and the last refusal with its reason. Abort is the
// page's (always at hand, outside this panel).

import type { RunnerStatus } from "../api";
import { h, setText } from "../util";

/** What the operator can ask of the runner from this panel. */
export type RunnerIntent = "arm" | "disarm" | "start" | "hold" | "resume" | "reset";

const BUTTONS: { intent: RunnerIntent; label: string; title: string }[] = [
  { intent: "arm", label: "Arm", title: "idle → armed: hot actuators may leave their safe positions" },
  { intent: "disarm", label: "Disarm", title: "armed → idle" },
  { intent: "start", label: "Run", title: "run the chosen scenario" },
  { intent: "hold", label: "Hold", title: "running → holding after the step in progress" },
  { intent: "resume", label: "Resume", title: "holding → running" },
  { intent: "reset", label: "Reset", title: "safe / done → idle: acknowledge the outcome" },
];

export const RUNNER_STATES = ["idle", "armed", "running", "holding", "aborting", "safe", "done"] as const;

export interface RunnerHandlers {
  onIntent(intent: RunnerIntent, scenario: string): void;
  onScenario(scenario: string): void;
}

export class RunnerPanel {
  readonly el: HTMLElement;
  private readonly badge: HTMLElement;
  private readonly since: HTMLElement;
  private readonly select: HTMLSelectElement;
  private readonly buttons = new Map<RunnerIntent, HTMLButtonElement>();
  private readonly scenario: HTMLElement;
  private readonly step: HTMLElement;
  private readonly details: HTMLElement;
  private readonly refusal: HTMLElement;
  private scenariosSig = "";
  private chosen: string;

  constructor(handlers: RunnerHandlers, chosen: string) {
    this.chosen = chosen;
    this.badge = h("span", { class: "runner-state", "data-testid": "runner-state", "data-state": "" }, "—");
    this.since = h("span", { class: "muted small num", "data-testid": "runner-since" });
    this.select = h("select", { "data-testid": "scenario-select", "aria-label": "scenario" });
    this.select.addEventListener("change", () => {
      this.chosen = this.select.value;
      handlers.onScenario(this.chosen);
    });
    const row = h("div", { class: "runner-buttons" }, this.select);
    for (const b of BUTTONS) {
      const btn = h(
        "button",
        { type: "button", class: `btn runner-btn rb-${b.intent}`, "data-testid": `runner-${b.intent}`, title: b.title },
        b.label,
      );
      btn.addEventListener("click", () => handlers.onIntent(b.intent, this.select.value));
      this.buttons.set(b.intent, btn);
      row.append(btn);
    }
    this.scenario = h("b", { class: "num", "data-testid": "runner-scenario" }, "—");
    this.step = h("span", { class: "num", "data-testid": "runner-step" }, "—");
    this.details = h("div", { class: "runner-details small", "data-testid": "runner-details" });
    this.refusal = h("div", { class: "runner-refusal", "data-testid": "runner-refusal", role: "status", hidden: true });
    this.el = h(
      "div",
      { class: "runner" },
      h("div", { class: "runner-top" }, this.badge, this.since),
      row,
      h(
        "div",
        { class: "runner-step-line" },
        h("span", { class: "muted" }, "scenario"),
        this.scenario,
        h("span", { class: "muted" }, "step"),
        this.step,
      ),
      this.details,
      this.refusal,
    );
  }

  get scenarioChosen(): string {
    return this.select.value;
  }

  /** Draws the runner; `canCommand`: this client holds authority. */
  render(r: RunnerStatus, scenarios: readonly string[], canCommand: boolean): void {
    setText(this.badge, r.state);
    this.badge.dataset.state = r.state;
    this.since.title = `since ${r.since}`;
    setText(this.since, `since ${r.since.slice(11, 19)} UTC`);
    const sig = scenarios.join(",");
    if (sig !== this.scenariosSig) {
      this.scenariosSig = sig;
      const pick = scenarios.includes(this.chosen) ? this.chosen : (scenarios[0] ?? "");
      this.select.replaceChildren(...scenarios.map((s) => h("option", { value: s, selected: s === pick }, s)));
      this.select.value = pick;
    }
    if (r.state === "running" || r.state === "holding" || r.state === "aborting") {
      if (r.scenario && scenarios.includes(r.scenario)) this.select.value = r.scenario;
    }
    this.select.disabled = !canCommand;
    const allowed = new Set(r.allowed);
    for (const [intent, btn] of this.buttons) {
      const ok = allowed.has(intent);
      btn.disabled = !canCommand || !ok || (intent === "start" && !this.select.value);
      btn.title = !canCommand
        ? "take control to command"
        : ok
          ? (BUTTONS.find((b) => b.intent === intent)?.title ?? "")
          : `not from ${r.state}; from ${r.state}: ${r.allowed.join(", ") || "nothing (wait)"}`;
    }
    setText(this.scenario, r.scenario || "—");
    setText(this.step, r.step_index >= 0 ? `${r.step_index + 1} · ${r.step || "(unnamed)"}` : "—");
    const lines: [string, string, string][] = [];
    if (r.armed_by) lines.push(["armed by", r.armed_by, "runner-armed-by"]);
    if (r.hold_message) lines.push(["hold", r.hold_message, "runner-hold-message"]);
    if (r.abort_reason) lines.push(["abort", `${r.abort_reason}${r.abort_by ? ` — by ${r.abort_by}` : ""}`, "runner-abort"]);
    if (r.redline) lines.push(["redline", r.redline, "runner-redline"]);
    if (r.safing_failures.length) lines.push(["not safed", r.safing_failures.join("; "), "runner-safing-failures"]);
    const detailsSig = JSON.stringify(lines);
    if (this.details.dataset.sig !== detailsSig) {
      this.details.dataset.sig = detailsSig;
      this.details.replaceChildren(
        ...lines.map(([k, v, id]) =>
          h("div", { class: `rd rd-${id}` }, h("span", { class: "muted" }, k), h("span", { "data-testid": id }, v)),
        ),
      );
    }
  }

  /** Shows a refused request and its reason (until `clearRefusal`). */
  showRefusal(what: string, reason: string): void {
    this.refusal.hidden = false;
    this.refusal.replaceChildren(h("b", {}, `${what} refused: `), h("span", { "data-testid": "runner-refusal-reason" }, reason));
  }

  clearRefusal(): void {
    this.refusal.hidden = true;
    this.refusal.replaceChildren();
  }
}
