// The acoustic camera's method and band picker. A new method applies at once; a band is
// applied with its button (or Enter). What the station refuses is the caller's to show (as
// problem details); the form then keeps what was typed so it can be corrected.

import type { AcousticMethod, AcousticParameters, AcousticParametersChange, BandConfig, BandKind } from "../api";
import { h } from "../util";

/** Nominal mid-band frequencies of one-third-octave bands, IEC 61260-1:2014 (Annex E),
 * 25 Hz to 20 kHz. */
export const THIRD_OCTAVE_HZ = [
  25, 31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800, 1000, 1250, 1600,
  2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000, 12500, 16000, 20000,
];

/** Nominal mid-band frequencies of octave bands, IEC 61260-1:2014 (Annex E), 31.5 Hz to 16 kHz. */
export const OCTAVE_HZ = [31.5, 63, 125, 250, 500, 1000, 2000, 4000, 8000, 16000];

const METHODS: Record<AcousticMethod, string> = {
  conventional: "conventional beamforming (dB)",
  clean_sc: "CLEAN-SC (dB)",
  music: "MUSIC (pseudo-spectrum)",
  seed_music: "ball-mill MUSIC (pseudo-spectrum)",
};

const KINDS: Partial<Record<BandKind, string>> = {
  third_octave: "third octave",
  octave: "octave",
  range: "range",
};

export function fmtHz(hz: number | null | undefined): string {
  if (hz === null || hz === undefined || !Number.isFinite(hz)) return "—";
  return hz >= 1000 ? `${+(hz / 1000).toFixed(3)} kHz` : `${+hz.toFixed(1)} Hz`;
}

/** A band as the station names it ("4 kHz third octave", "1 kHz–7 kHz"). */
export function bandText(b: BandConfig): string {
  switch (b.kind) {
    case "third_octave":
      return `${fmtHz(b.centre_hz)} third octave`;
    case "octave":
      return `${fmtHz(b.centre_hz)} octave`;
    case "narrow":
      return `${fmtHz(b.centre_hz)} bin`;
    case "range":
      return `${fmtHz(b.low_hz)}–${fmtHz(b.high_hz)}`;
    case "custom":
      return `${(b.ranges_hz ?? []).length} bands`;
    default:
      return String(b.kind);
  }
}

function nearest(list: number[], hz: number): number {
  return list.reduce((best, f) => (Math.abs(Math.log(f / hz)) < Math.abs(Math.log(best / hz)) ? f : best), list[0]);
}

export class AcousticParamsForm {
  readonly el: HTMLElement;
  /** A change to send (method at once, band with Apply). */
  onApply: ((change: AcousticParametersChange) => void) | null = null;
  private readonly method: HTMLSelectElement;
  private readonly kind: HTMLSelectElement;
  private readonly centre: HTMLSelectElement;
  private readonly low: HTMLInputElement;
  private readonly high: HTMLInputElement;
  private readonly apply: HTMLButtonElement;
  private readonly rangeBox: HTMLElement;
  /** the band the station uses now (a configured custom band is kept as it is) */
  private current: BandConfig | null = null;
  /** the band fields were edited and not applied yet: refreshes leave them alone */
  private dirty = false;
  /** the band the fields show (as JSON) */
  private shown = "";

  constructor() {
    this.method = h(
      "select",
      { "data-testid": "method-select", "aria-label": "method" },
      ...Object.entries(METHODS).map(([v, label]) => h("option", { value: v }, label)),
    );
    this.kind = h("select", { "data-testid": "band-kind", "aria-label": "band kind" });
    this.centre = h("select", { "data-testid": "band-centre", "aria-label": "band centre" });
    const num = (testid: string, label: string): HTMLInputElement =>
      h("input", { type: "number", min: 1, step: "any", class: "hz", "data-testid": testid, "aria-label": label });
    this.low = num("band-low", "band low Hz");
    this.high = num("band-high", "band high Hz");
    this.rangeBox = h("span", { class: "ac-range-hz" }, this.low, h("span", { class: "muted" }, "–"), this.high, h("span", { class: "muted" }, "Hz"));
    this.apply = h("button", { type: "button", class: "btn", "data-testid": "band-apply" }, "Apply band");
    this.el = h(
      "div",
      { class: "ac-params", "data-testid": "acoustic-params" },
      h("label", { class: "ac-field" }, h("span", { class: "muted" }, "method"), this.method),
      h("label", { class: "ac-field" }, h("span", { class: "muted" }, "band"), this.kind),
      this.centre,
      this.rangeBox,
      this.apply,
    );
    this.method.addEventListener("change", () => {
      this.onApply?.({ method: this.method.value as AcousticMethod });
    });
    this.kind.addEventListener("change", () => {
      this.dirty = true;
      this.fillCentres();
      this.showKind();
    });
    for (const el of [this.centre, this.low, this.high]) el.addEventListener("input", () => (this.dirty = true));
    this.apply.addEventListener("click", () => this.applyBand());
    this.el.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.target === this.low || ev.target === this.high)) this.applyBand();
    });
  }

  /** Shows the station's parameters; band fields being edited stay as they are unless
   * `force` (after an answer to this form). */
  show(p: AcousticParameters, force = false): void {
    if (document.activeElement !== this.method || force) this.method.value = p.method;
    this.current = p.band;
    const sig = JSON.stringify(p.band);
    if (!force && (this.dirty || sig === this.shown)) return; // being edited, or unchanged
    this.shown = sig;
    this.dirty = false;
    const kinds = { ...KINDS };
    if (!(p.band.kind in kinds)) kinds[p.band.kind] = `${p.band.kind} (configured)`;
    this.kind.replaceChildren(...Object.entries(kinds).map(([v, label]) => h("option", { value: v }, label)));
    this.kind.value = p.band.kind;
    this.fillCentres(p.band.centre_hz ?? 4000);
    if (p.band.low_hz) this.low.value = String(p.band.low_hz);
    if (p.band.high_hz) this.high.value = String(p.band.high_hz);
    this.showKind();
  }

  /** The band fields were answered (applied or refused): refreshes may fill them again. */
  settle(): void {
    this.dirty = false;
  }

  /** Puts the method select back to what the station uses (a refused change). */
  revertMethod(p: AcousticParameters): void {
    this.method.value = p.method;
  }

  setBusy(busy: boolean): void {
    this.apply.disabled = busy;
    this.method.disabled = busy;
  }

  private fillCentres(prefer?: number): void {
    const list = this.kind.value === "octave" ? OCTAVE_HZ : THIRD_OCTAVE_HZ;
    const want = prefer ?? (Number(this.centre.value) || 4000);
    const pick = nearest(list, want);
    this.centre.replaceChildren(
      ...list.map((f) => h("option", { value: f, selected: f === pick }, fmtHz(f))),
    );
    this.centre.value = String(pick);
  }

  private showKind(): void {
    const k = this.kind.value;
    this.centre.hidden = k !== "third_octave" && k !== "octave";
    this.rangeBox.hidden = k !== "range";
  }

  private applyBand(): void {
    const kind = this.kind.value as BandKind;
    let band: BandConfig;
    if (kind === "third_octave" || kind === "octave") {
      band = { kind, centre_hz: Number(this.centre.value) };
    } else if (kind === "range") {
      band = { kind, centre_hz: null, low_hz: Number(this.low.value), high_hz: Number(this.high.value) };
    } else if (this.current) {
      band = this.current; // a configured narrow or custom band, re-applied as it is
    } else {
      return;
    }
    this.onApply?.({ band });
  }
}
