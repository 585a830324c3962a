// The five status colours of the fleet (src/rigwatch/fleet/rules.py Colour) and how they are
// drawn. A cluster takes the colour of its worst member: red (a critical metric) before black
// (not accessible: its controller or sensors do not answer), yellow (a warning), grey (no
// fresh data) and green.

import type { Colour } from "./api";

/** Every colour, in the order of the legend and the counts. */
export const COLOURS: readonly Colour[] = ["red", "black", "yellow", "grey", "green"];

/** code (index into COLOURS) of a colour; unknown names count as grey */
export function colourCode(c: string): number {
  const i = COLOURS.indexOf(c as Colour);
  return i < 0 ? COLOURS.indexOf("grey") : i;
}


export const FILL: Record<Colour, string> = {
  red: "#ff4d5e",
  black: "#05070a",
  yellow: "#ffd166",
  grey: "#8593a3",
  green: "#2ecc8f",
};

export const STROKE: Record<Colour, string> = {
  red: "#ffd0d5",
  black: "#e6edf5",
  yellow: "#3a2e00",
  grey: "#d9e1ea",
  green: "#0b3d2a",
};

export const LABEL: Record<Colour, string> = {
  red: "critical",
  black: "not accessible",
  yellow: "warning",
  grey: "no data",
  green: "ok",
};
