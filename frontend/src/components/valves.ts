// The valve panel and the motor panel of the Control page: every actuator with what was
// commanded and what its device acknowledged (an unknown or refused state shown as such, never
// as a position), two-position switches that send a command, and an angle input per motor.
// The panels only draw and report intents; the page sends the commands.

import type { Actuator, ActuatorStatus, ValveBits } from "../api";
import { fmtNum, h } from "../util";
import type { Tone } from "./badges";

/** Fields an actuator may carry beyond today's API (used when the station sends them). */
interface ActuatorExtras {
  normally?: "open" | "closed";
  motor_id?: number;
  min_deg?: number;
  max_deg?: number;
}

const extras = (a: Actuator): ActuatorExtras => a as Actuator & ActuatorExtras;

export const isBinary = (a: Actuator): boolean => a.kind === "valve" || a.kind === "switch";

/** A binary actuator's two words: [energised-side word, other]: open/closed, on/off. */
export function positions(a: Actuator): [string, string] {
  return a.kind === "switch" ? ["on", "off"] : ["open", "closed"];
}

/** Whether `pos` energises the output: a normally-closed valve is energised open, a
 * normally-open one energised closed, a switch energised on. Valves are normally-closed unless
 * the station says otherwise (the configuration's default). */
export function energised(a: Actuator, pos: string): boolean {
  if (a.kind === "switch") return pos === "on";
  return (extras(a).normally ?? "closed") === "closed" ? pos === "open" : pos === "closed";
}

/** The STM32 valve bank: the backend with exactly 9 binary outputs, in the firmware's order
 * (the order the station lists them in); null when the station has none. */
export function valveBank(actuators: readonly Actuator[]): Actuator[] | null {
  const byBackend = new Map<string, Actuator[]>();
  for (const a of actuators) byBackend.set(a.backend, [...(byBackend.get(a.backend) ?? []), a]);
  for (const list of byBackend.values()) if (list.length === 9 && list.every(isBinary)) return list;
  return null;
}

/** The 9-bit word that sets `name` to `pos` and keeps every other output where its device
 * acknowledged it; an output whose position is unknown is sent its safe position. */
export function bankWord(bank: readonly Actuator[], name: string, pos: string): ValveBits {
  return bank.map((a) => {
    const want = a.name === name ? pos : String(a.acknowledged ?? a.safe ?? positions(a)[1]);
    return energised(a, want) ? 1 : 0;
  });
}

/** The word that puts every output of the bank in its safe position. */
export function safeWord(bank: readonly Actuator[]): ValveBits {
  return bank.map((a) => (energised(a, String(a.safe ?? positions(a)[1])) ? 1 : 0));
}

/** A step motor's id for POST /api/step_motor: the station's `motor_id` when it sends one,
 * else the number its name ends with (MOTOR1 -> 1). */
export function motorId(a: Actuator): number | null {
  const id = extras(a).motor_id;
  if (typeof id === "number") return id;
  const m = /(\d+)$/.exec(a.name);
  return m ? Number(m[1]) : null;
}

const STATUS_TONE: Record<ActuatorStatus, Tone> = {
  acknowledged: "ok",
  pending: "warn",
  refused: "bad",
  unknown: "bad",
};

const STATUS_LABEL: Record<ActuatorStatus, string> = {
  acknowledged: "ack",
  pending: "pending",
  refused: "refused",
  unknown: "unknown",
};

function posText(v: string | number | null, digits = 0, none = "unknown"): string {
  if (v === null || v === undefined) return none;
  return typeof v === "number" ? `${fmtNum(v, digits)}°` : v;
}

function statusBadge(status: ActuatorStatus): HTMLElement {
  return h(
    "span",
    { class: `badge ${STATUS_TONE[status]} act-status st-${status}`, "data-testid": "actuator-status" },
    STATUS_LABEL[status],
  );
}

/** A label and a position; `none`: what a missing value means (nothing commanded yet, or
 * unknown). */
function stateRow(label: string, value: string | number | null, testid: string, digits = 0, none = "unknown"): HTMLElement {
  const unknown = (value === null || value === undefined) && none === "unknown";
  return h(
    "div",
    { class: "act-row" },
    h("span", { class: "muted" }, label),
    h("b", { class: `num act-pos${unknown ? " unknown" : ""}`, "data-testid": testid }, posText(value, digits, none)),
  );
}

export interface ValvePanelHandlers {
  /** the operator asked for `name` -> `pos` */
  onSet(name: string, pos: string): void;
}

/** One card per binary actuator (valves and switches of every backend). */
export class ValvePanel {
  private sig = "";

  constructor(
    private readonly el: HTMLElement,
    handlers: ValvePanelHandlers,
  ) {
    el.addEventListener("click", (ev) => {
      const b = (ev.target as HTMLElement).closest<HTMLButtonElement>("button[data-valve]");
      if (!b || b.disabled) return;
      handlers.onSet(b.dataset.valve ?? "", b.dataset.pos ?? "");
    });
  }

  /** Draws `actuators` (binary ones); `enabled`: this client may command; `busy`: names with
   * a command of this page in flight. */
  render(actuators: readonly Actuator[], enabled: boolean, busy: ReadonlySet<string>): void {
    const list = actuators.filter(isBinary);
    const sig = JSON.stringify([list, enabled, [...busy]]);
    if (sig === this.sig) return;
    this.sig = sig;
    if (!list.length) {
      this.el.replaceChildren(h("div", { class: "empty" }, "no valves"));
      return;
    }
    this.el.replaceChildren(...list.map((a) => this.card(a, enabled, busy.has(a.name))));
  }

  private card(a: Actuator, enabled: boolean, busy: boolean): HTMLElement {
    const ack = a.acknowledged === null ? "" : String(a.acknowledged);
    const cmd = a.commanded === null ? "" : String(a.commanded);
    const safe = String(a.safe ?? "");
    const mismatch = a.status !== "acknowledged" || (cmd !== "" && cmd !== ack);
    const inSafe = ack !== "" && ack === safe;
    const buttons = positions(a).map((pos) =>
      h(
        "button",
        {
          type: "button",
          class: `${pos === ack ? "on" : ""}${pos === cmd && pos !== ack ? " pending" : ""}`.trim() || undefined,
          "data-valve": a.name,
          "data-pos": pos,
          "data-testid": `valve-${a.name}-${pos}`,
          "aria-pressed": pos === ack ? "true" : "false",
          disabled: !enabled || busy,
          title: enabled ? `${a.name} ${pos}` : "take control to command",
        },
        pos,
      ),
    );
    return h(
      "div",
      {
        class: `act-card${mismatch ? " mismatch" : ""}${a.hot ? " hot" : ""} st-${a.status}`,
        "data-testid": `valve-${a.name}`,
        "data-acknowledged": ack || "unknown",
        "data-commanded": cmd || "none",
        "data-status": a.status,
        "data-safe": inSafe ? "yes" : "no",
        title: `${a.backend} · ${a.kind} · since ${a.since}${a.message ? ` · ${a.message}` : ""}`,
      },
      h(
        "div",
        { class: "act-head" },
        h("b", { class: "act-name" }, a.name),
        a.hot ? h("span", { class: "tag hot", title: "hot: moves away from safe only when armed" }, "hot") : null,
        h("span", { class: "spacer" }),
        statusBadge(a.status),
      ),
      stateRow("commanded", a.commanded, "valve-commanded", 0, "none"),
      stateRow("acknowledged", a.acknowledged, "valve-acknowledged"),
      h(
        "div",
        { class: "act-foot" },
        h("div", { class: "seg act-seg", role: "group", "aria-label": `${a.name} position` }, ...buttons),
        h("span", { class: `safe-pos${inSafe ? " in-safe" : ""}`, title: "safe position" }, `safe: ${safe}`),
      ),
      a.message && a.status !== "acknowledged"
        ? h("div", { class: "act-msg small", "data-testid": "valve-message" }, a.message)
        : null,
    );
  }
}

export interface MotorPanelHandlers {
  onMove(a: Actuator, motorId: number, angle: number): void;
}

/** One row per position actuator (step motors): acknowledged and commanded angle, and an
 * angle input bounded by the motor's limits when the station gives them. */
export class MotorPanel {
  private sig = "";
  private readonly drafts = new Map<string, string>();
  private motors: Actuator[] = [];

  constructor(
    private readonly el: HTMLElement,
    private readonly handlers: MotorPanelHandlers,
  ) {
    el.addEventListener("input", (ev) => {
      const input = ev.target as HTMLInputElement;
      if (input.dataset.motor) this.drafts.set(input.dataset.motor, input.value);
    });
    el.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const form = ev.target as HTMLFormElement;
      const input = form.querySelector<HTMLInputElement>("input[data-motor]");
      const name = input?.dataset.motor ?? "";
      const a = this.motors.find((m) => m.name === name);
      const id = a ? motorId(a) : null;
      const angle = Number(input?.value);
      if (!a || id === null || input?.value.trim() === "" || !Number.isFinite(angle)) return;
      this.handlers.onMove(a, id, angle);
    });
  }

  render(actuators: readonly Actuator[], enabled: boolean, busy: ReadonlySet<string>): void {
    const list = actuators.filter((a) => a.kind === "position");
    this.motors = list;
    const sig = JSON.stringify([list, enabled, [...busy]]);
    if (sig === this.sig) return;
    this.sig = sig;
    if (!list.length) {
      this.el.replaceChildren(h("div", { class: "empty" }, "no motors"));
      return;
    }
    this.el.replaceChildren(...list.map((a) => this.row(a, enabled, busy.has(a.name))));
  }

  private row(a: Actuator, enabled: boolean, busy: boolean): HTMLElement {
    const x = extras(a);
    const lo = x.min_deg;
    const hi = x.max_deg;
    const limits = lo !== undefined && hi !== undefined ? `${lo}…${hi}°` : "limits checked by the station";
    const draft = this.drafts.get(a.name) ?? (typeof a.acknowledged === "number" ? String(a.acknowledged) : "");
    return h(
      "form",
      {
        class: `motor-row st-${a.status}`,
        "data-testid": `motor-${a.name}`,
        "data-acknowledged": a.acknowledged === null ? "unknown" : String(a.acknowledged),
        "data-status": a.status,
      },
      h("b", { class: "act-name" }, a.name),
      statusBadge(a.status),
      stateRow("ack", a.acknowledged, "motor-acknowledged", 1),
      stateRow("cmd", a.commanded, "motor-commanded", 1, "none"),
      h(
        "label",
        { class: "motor-input" },
        h("input", {
          type: "number",
          step: "any",
          min: lo,
          max: hi,
          value: draft,
          required: true,
          placeholder: "angle",
          "data-motor": a.name,
          "data-testid": `motor-angle-${a.name}`,
          "aria-label": `${a.name} angle in degrees`,
          disabled: !enabled || busy,
        }),
        h("span", { class: "muted" }, "°"),
      ),
      h(
        "button",
        { type: "submit", class: "btn", "data-testid": `motor-move-${a.name}`, disabled: !enabled || busy },
        "Move",
      ),
      h("span", { class: "muted small" }, `safe ${posText(a.safe, 0)} · ${limits}`),
    );
  }
}

/** Plain text of an actuator's state (for titles and the debug object). */
export function describeActuator(a: Actuator): string {
  return `${a.name}: commanded ${posText(a.commanded)}, acknowledged ${posText(a.acknowledged)} (${a.status})`;
}

