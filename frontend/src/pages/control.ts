// Control page: control authority (take it under a name, release it; the page renews it while
// held), the valve panel (commanded and acknowledged state of each output, switches that send
// the valve bank's 9-bit word), the step motors, the scenario runner (state, scenario picker,
// Arm / Disarm / Run / Hold / Resume / Reset, the step in progress) with Abort always at hand,
// the redlines beside a small live chart of their channels, and the audit log (newest first,
// CSV download). The station's control state comes over the live WebSocket: the page asks for
// it (`subscribe_control`) and redraws from each `control_state` frame and each `valve_state`
// frame; GET /api/control is asked once when the page is shown and, only while the WebSocket
// is down, every 5 s. Every refused command is shown as the station's problem details, with
// the reason.
// Without control authority the commands are disabled and the page says who holds it; Abort
// needs no authority. A station without `[control]` shows that it has none.

import {
  type Actuator,
  ApiError,
  type ControlState,
  type RunnerAction,
  abortRunner,
  getControl,
  runnerAction,
  setValves,
  startScenario,
  stepMotor,
} from "../api";
import { AuditView } from "../components/audit";
import { problemOf } from "../components/problems";
import { RedlinePanel } from "../components/redlines";
import { type RunnerIntent, RunnerPanel } from "../components/runner";
import {
  MotorPanel,
  ValvePanel,
  bankWord,
  describeActuator,
  energised,
  positions,
  safeWord,
  valveBank,
} from "../components/valves";
import { controlSession } from "../control-session";
import type { ControlFrame } from "../live-client";
import { h, mountHtml, setText, settings } from "../util";
import type { MountedPage, PageContext } from "./types";
import "./control.css";

/** GET /api/control while the WebSocket is down (with it, the station pushes every change) */
const FALLBACK_POLL_MS = 5000;
const AUDIT_MS = 2000;
const STATE_PROBLEM = "control-state";
const AUDIT_PROBLEM = "control-audit";

/** `window.__rigwatch.control` */
export interface ControlDebug {
  mounted: boolean;
  /** null until the first control state arrived; false: the station has no control part */
  available: boolean | null;
  /** answers of GET /api/control (once when shown, then only while the WebSocket is down) */
  polls: number;
  /** `control_state` frames applied */
  pushes: number;
  /** `valve_state` frames applied, and the bits of the last one */
  valveFrames: number;
  valveBits: number[];
  /** states dropped because a newer one had been applied (frames or poll answers) */
  stale: number;
  /** the live WebSocket is open (the state comes over it) */
  live: boolean;
  runnerState: string;
  holder: string;
  /** this client holds control authority */
  held: boolean;
  heartbeats: number;
  commands: number;
  refusals: number;
  lastRefusal: { request: string; status: number; detail: string } | null;
  auditRows: number;
  auditFetches: number;
  actuators: string[];
  chart: unknown;
}

const HTML = `
<div class="ctl-none" data-ref="none" data-testid="no-control" hidden>
  <p><b>This station has no control part</b> (no <code>[control]</code> section in its configuration):
  no valves, motors or scenarios to command.</p>
</div>
<div class="ctl-layout" data-ref="layout" hidden>
  <section class="panel ctl-bar" data-testid="authority-panel">
    <div class="auth">
      <span class="auth-dot" data-ref="authDot"></span>
      <span class="auth-text" data-ref="authText" data-testid="authority-status">…</span>
    </div>
    <form class="auth-form" data-ref="authForm">
      <input type="text" data-ref="client" data-testid="client-name" aria-label="your name" placeholder="your name"
        maxlength="80" pattern="[A-Za-z0-9_.@:\\- ]+" required>
      <button type="submit" class="btn primary" data-ref="take" data-testid="take-control">Take control</button>
      <button type="button" class="btn" data-ref="release" data-testid="release-control">Release</button>
      <input type="password" data-ref="token" data-testid="operator-token" aria-label="operator token"
        placeholder="operator token" title="needed when the station listens beyond localhost" autocomplete="off">
    </form>
    <div class="spacer"></div>
    <div class="bar-state"><span class="muted small">runner</span><span data-ref="barState" class="runner-state" data-testid="bar-runner-state">—</span></div>
    <button type="button" class="abort-btn" data-ref="abort" data-testid="abort"
      title="run the abort sequence now (needs no control authority)">ABORT</button>
  </section>
  <div class="ctl-main">
    <section class="panel ctl-valves">
      <div class="panel-head">
        <h2>Valves</h2>
        <span class="muted small">commanded / acknowledged by the device</span>
        <div class="spacer"></div>
        <button type="button" class="btn" data-ref="allSafe" data-testid="valves-safe"
          title="send every output of the valve bank its safe position">All safe</button>
      </div>
      <div class="act-grid" data-ref="valves" data-testid="valve-panel"></div>
      <div class="valve-refusal" data-ref="valveRefusal" data-testid="valve-refusal" role="status" hidden></div>
      <div class="panel-head sub"><h2>Motors</h2></div>
      <div class="motor-list" data-ref="motors" data-testid="motor-panel"></div>
    </section>
    <div class="ctl-side">
      <section class="panel" data-testid="runner-panel">
        <div class="panel-head"><h2>Scenario runner</h2></div>
        <div data-ref="runner"></div>
      </section>
      <section class="panel ctl-redlines" data-testid="redline-panel">
        <div class="panel-head"><h2>Redlines</h2><div class="spacer"></div>
          <span class="muted small" data-ref="redlineInfo"></span></div>
        <div data-ref="redlines" class="redline-host"></div>
      </section>
    </div>
  </div>
  <section class="panel ctl-audit" data-testid="audit-panel">
    <div class="panel-head">
      <h2>Audit log</h2><span class="muted small">newest first</span>
      <div class="spacer"></div>
      <span class="muted small num" data-ref="auditCount" data-testid="audit-count"></span>
      <a class="btn" data-ref="csv" data-testid="audit-csv" download="control_audit.csv">CSV</a>
    </div>
    <div class="audit-host" data-ref="audit" data-testid="audit-log"></div>
  </section>
</div>`;

const REFS = [
  "none", "layout", "authDot", "authText", "authForm", "client", "take", "release", "token", "barState",
  "abort", "allSafe", "valves", "valveRefusal", "motors", "runner", "redlineInfo", "redlines", "auditCount",
  "csv", "audit",
] as const;

export function mount(root: HTMLElement, ctx: PageContext): MountedPage {
  const els = mountHtml(root, HTML, REFS);
  const client = els.client as HTMLInputElement;
  const token = els.token as HTMLInputElement;
  const take = els.take as HTMLButtonElement;
  const release = els.release as HTMLButtonElement;
  const abortBtn = els.abort as HTMLButtonElement;
  const allSafe = els.allSafe as HTMLButtonElement;
  const session = controlSession();
  client.value = settings.get("control.client") ?? "";
  token.value = session.token ?? "";

  const audit = new AuditView();
  const redlines = new RedlinePanel(ctx.live);
  const debug = ctx.expose<ControlDebug>({
    mounted: true,
    available: null,
    polls: 0,
    pushes: 0,
    valveFrames: 0,
    valveBits: [],
    stale: 0,
    live: false,
    runnerState: "",
    holder: "",
    held: session.held,
    heartbeats: session.heartbeats,
    commands: 0,
    refusals: 0,
    lastRefusal: null,
    auditRows: 0,
    auditFetches: 0,
    actuators: [],
    chart: redlines.debug,
  });

  let state: ControlState | null = null;
  /** actuators with a command of this page in flight */
  const busy = new Set<string>();
  let fallbackTimer = 0;
  let auditTimer = 0;
  let lastRunnerState = "";
  /** the WebSocket is open: the station pushes the state, no polling */
  let wsOpen = false;
  /** `seq` of the last `control_state` applied on this connection (0: none yet) */
  let lastSeq = 0;
  /** states applied from the WebSocket: a poll answer asked for before one of them is older */
  let pushEpoch = 0;

  (els.csv as HTMLAnchorElement).href = audit.csvUrl;
  els.audit.append(audit.table.el);
  els.redlines.append(redlines.el);

  const holdsAuthority = (): boolean =>
    session.held && state !== null && state.authority.holder !== "" && state.authority.holder === session.holder;

  // ---- commands ------------------------------------------------------------------------------

  /** Runs a command: refusals are shown (problem details, and `inline` with the reason). */
  async function command<T>(fn: () => Promise<T>, inline?: (reason: string) => void): Promise<T | null> {
    debug.commands++;
    try {
      const out = await fn();
      return out;
    } catch (err) {
      const { request, problem } = problemOf(err);
      debug.refusals++;
      debug.lastRefusal = { request, status: problem.status, detail: problem.detail };
      ctx.problems.report(err);
      inline?.(problem.detail);
      return null;
    } finally {
      if (!wsOpen) void poll(); // with the WebSocket, the change comes as control_state
      void refreshAudit();
    }
  }

  const showValveRefusal = (what: string) => (reason: string) => {
    els.valveRefusal.hidden = false;
    els.valveRefusal.replaceChildren(h("b", {}, `${what} refused: `), h("span", { "data-testid": "valve-refusal-reason" }, reason));
  };

  async function setValve(name: string, pos: string): Promise<void> {
    const bank = state ? valveBank(state.actuators) : null;
    if (!bank || !bank.some((a) => a.name === name)) {
      ctx.problems.report(new Error(`${name} is not an output of a 9-output valve bank: no command for it`));
      return;
    }
    busy.add(name);
    render();
    const ok = await command(() => setValves(bankWord(bank, name, pos), session.auth()), showValveRefusal(`${name} → ${pos}`));
    busy.delete(name);
    if (ok) els.valveRefusal.hidden = true;
    render();
  }

  async function allSafePositions(): Promise<void> {
    const bank = state ? valveBank(state.actuators) : null;
    if (!bank) return;
    for (const a of bank) busy.add(a.name);
    render();
    const ok = await command(() => setValves(safeWord(bank), session.auth()), showValveRefusal("all safe"));
    for (const a of bank) busy.delete(a.name);
    if (ok) els.valveRefusal.hidden = true;
    render();
  }

  async function moveMotor(a: Actuator, id: number, angle: number): Promise<void> {
    busy.add(a.name);
    render();
    await command(() => stepMotor({ motor_id: id, angle }, session.auth()), showValveRefusal(`${a.name} → ${angle}°`));
    busy.delete(a.name);
    render();
  }

  async function runnerIntent(intent: RunnerIntent, scenario: string): Promise<void> {
    const label = intent === "start" ? `run ${scenario}` : intent;
    const refused = (reason: string): void => runner.showRefusal(label, reason);
    const ok =
      intent === "start"
        ? await command(async () => {
            const out = await startScenario(scenario, session.auth());
            if (out.status !== "ok") refused(out.message);
            return out.status === "ok" ? out : null;
          }, refused)
        : await command(() => runnerAction(intent as RunnerAction, session.auth()), refused);
    if (ok) runner.clearRefusal();
  }

  async function abort(): Promise<void> {
    abortBtn.classList.add("pressed");
    const ok = await command(() => abortRunner("abort pressed on the control page", session.auth()), (reason) =>
      runner.showRefusal("abort", reason),
    );
    abortBtn.classList.remove("pressed");
    if (ok) runner.clearRefusal();
  }

  const runner = new RunnerPanel(
    {
      onIntent: (intent, scenario) => void runnerIntent(intent, scenario),
      onScenario: (s) => settings.set("control.scenario", s),
    },
    settings.get("control.scenario") ?? "o2cleaning",
  );
  els.runner.append(runner.el);
  const valves = new ValvePanel(els.valves, { onSet: (name, pos) => void setValve(name, pos) });
  const motors = new MotorPanel(els.motors, { onMove: (a, id, angle) => void moveMotor(a, id, angle) });

  abortBtn.addEventListener("click", () => void abort());
  allSafe.addEventListener("click", () => void allSafePositions());

  // ---- authority -----------------------------------------------------------------------------

  els.authForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = client.value.trim();
    if (!name) return;
    settings.set("control.client", name);
    session.setToken(token.value);
    void command(() => session.request(name));
  });
  release.addEventListener("click", () => void command(() => session.release()));
  token.addEventListener("change", () => session.setToken(token.value));
  const stopSession = session.subscribe((e) => {
    debug.heartbeats = session.heartbeats;
    debug.held = session.held;
    if (e.kind === "lost") {
      ctx.problems.report(
        new ApiError("POST /api/control/authority", {
          ...problemOf(e.error).problem,
          title: "Control authority lost",
        }),
      );
    }
    if (e.kind === "renewed") {
      // the lease's countdown is the one thing the station does not push on a heartbeat
      const st = state;
      if (st && e.authority && st.authority.holder === e.authority.holder) {
        state = { ...st, authority: { ...st.authority, expires_in_s: e.authority.expires_in_s } };
        render();
      }
    } else if (!wsOpen) {
      void poll();
    } else {
      render();
    }
  });

  function renderAuthority(st: ControlState): void {
    const holder = st.authority.holder;
    const mine = holdsAuthority();
    let text: string;
    let tone: string;
    if (mine) {
      const left = st.authority.expires_in_s;
      text = `You control the station as ${holder}${left !== null && left !== undefined ? ` · lease renewed, ${left.toFixed(1)} s left` : ""}`;
      tone = "mine";
    } else if (holder) {
      text = `${holder} controls the station — you are watching (commands disabled)`;
      tone = "other";
    } else {
      text = "Nobody controls the station — take control to command (commands disabled)";
      tone = "none";
    }
    setText(els.authText, text);
    els.authText.dataset.holder = holder;
    els.authText.dataset.mine = mine ? "yes" : "no";
    els.authDot.dataset.tone = tone;
    root.dataset.authority = tone;
    take.hidden = mine;
    take.textContent = holder ? "Request control" : "Take control";
    release.hidden = !mine;
    client.hidden = mine;
  }

  // ---- state ---------------------------------------------------------------------------------

  function render(): void {
    const st = state;
    if (!st) return;
    const mine = holdsAuthority();
    renderAuthority(st);
    setText(els.barState, st.runner.state);
    els.barState.dataset.state = st.runner.state;
    root.dataset.runner = st.runner.state;
    valves.render(st.actuators, mine, busy);
    motors.render(st.actuators, mine, busy);
    allSafe.disabled = !mine || !valveBank(st.actuators) || busy.size > 0;
    runner.render(st.runner, st.scenarios, mine);
    redlines.render(st);
    setText(
      els.redlineInfo,
      st.redlines.active.length ? `${st.redlines.active.length} watched` : "none watched",
    );
    debug.runnerState = st.runner.state;
    debug.holder = st.authority.holder;
    debug.held = session.held;
    debug.actuators = st.actuators.map(describeActuator);
  }

  function showAvailable(available: boolean): void {
    debug.available = available;
    els.none.hidden = available;
    els.layout.hidden = !available;
  }

  function applyState(st: ControlState): void {
    ctx.problems.clear(STATE_PROBLEM);
    const available = st.actuators.length > 0 || st.scenarios.length > 0;
    showAvailable(available);
    state = st;
    if (!available) return;
    render();
    if (st.runner.state !== lastRunnerState) {
      lastRunnerState = st.runner.state;
      void refreshAudit();
    }
  }

  /** The valve bank's outputs as a `valve_state` frame says (`bits`: 1 energised, as
   * acknowledged; `unknown`: outputs nobody knows); false when it does not fit the bank. */
  function applyValveBits(bits: number[], unknown: number[]): boolean {
    const st = state;
    const bank = st ? valveBank(st.actuators) : null;
    if (!st || !bank || bank.length !== bits.length) return false;
    const index = new Map(bank.map((a, i) => [a.name, i]));
    const lost = new Set(unknown);
    const actuators = st.actuators.map((a): Actuator => {
      const i = index.get(a.name);
      if (i === undefined) return a;
      if (lost.has(i)) return { ...a, acknowledged: null, status: "unknown" };
      const pos = positions(a).find((p) => energised(a, p) === (bits[i] === 1));
      return pos === undefined ? a : { ...a, acknowledged: pos };
    });
    state = { ...st, actuators };
    return true;
  }

  function onControlFrame(f: ControlFrame): void {
    if (!debug.mounted) return;
    if (f.type === "control_state") {
      if (f.seq <= lastSeq) {
        debug.stale++;
        return;
      }
      lastSeq = f.seq;
      pushEpoch++;
      debug.pushes++;
      applyState(f.state);
    } else if (f.type === "valve_state") {
      if (!applyValveBits(f.valves, f.unknown)) return;
      pushEpoch++;
      debug.valveFrames++;
      debug.valveBits = f.valves;
      render();
    }
  }

  async function poll(): Promise<void> {
    const epoch = pushEpoch;
    try {
      const st = await getControl();
      if (!debug.mounted) return;
      debug.polls++;
      if (epoch !== pushEpoch) {
        debug.stale++; // the WebSocket brought a newer state meanwhile
        return;
      }
      applyState(st);
    } catch (err) {
      if (!debug.mounted) return;
      if (err instanceof ApiError && err.status === 404) showAvailable(false);
      else ctx.problems.report(err, STATE_PROBLEM);
    }
  }

  async function refreshAudit(): Promise<void> {
    if (debug.available !== true) return;
    try {
      await audit.refresh();
      ctx.problems.clear(AUDIT_PROBLEM);
    } catch (err) {
      if (debug.mounted) ctx.problems.report(err, AUDIT_PROBLEM);
    }
    debug.auditRows = audit.length;
    debug.auditFetches = audit.fetches;
    setText(els.auditCount, `${audit.length} rows`);
  }

  /** Polls every FALLBACK_POLL_MS, the first after `delayMs`, until the WebSocket is open. */
  function fallbackLoop(delayMs: number): void {
    window.clearTimeout(fallbackTimer);
    fallbackTimer = window.setTimeout(() => {
      void poll().finally(() => {
        if (debug.mounted && !wsOpen) fallbackLoop(FALLBACK_POLL_MS);
      });
    }, delayMs);
  }

  function stopFallback(): void {
    window.clearTimeout(fallbackTimer);
    fallbackTimer = 0;
  }

  function auditLoop(): void {
    void refreshAudit().finally(() => {
      if (debug.mounted) auditTimer = window.setTimeout(auditLoop, AUDIT_MS);
    });
  }

  const stopStatus = ctx.status.subscribe((st) => redlines.setDevices(st.devices));
  void poll(); // the state at once, whatever the WebSocket's state
  const control = ctx.live.listenControl({ onFrame: onControlFrame }, { state: true });
  let firstConnState = true;
  const stopLive = ctx.live.onState((conn) => {
    const open = conn === "open";
    const first = firstConnState;
    firstConnState = false;
    if (!first && open === wsOpen) return;
    wsOpen = open;
    debug.live = open;
    lastSeq = 0; // another connection: the station's seq may have started over
    if (open) stopFallback();
    else fallbackLoop(first ? FALLBACK_POLL_MS : 0); // just polled when first
  });
  auditLoop();

  return {
    unmount(): void {
      debug.mounted = false;
      stopFallback();
      window.clearTimeout(auditTimer);
      control.close();
      stopLive();
      stopSession();
      stopStatus();
      redlines.destroy();
      ctx.problems.clear(STATE_PROBLEM);
      ctx.problems.clear(AUDIT_PROBLEM);
    },
  };
}
