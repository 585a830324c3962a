// The world map: every machine as a dot in its status colour, clustered per zoom level
// (supercluster: a k-d tree per zoom, so 50 000 machines cluster in a fraction of a second)
// and drawn on one canvas above a Leaflet map. A cluster takes the colour of its worst member
// and shows how many machines it holds; a click on it zooms in, a click on a machine opens
// its popup. The base layer is offline: country borders of Natural Earth (world-atlas,
// 1:110m, shipped with the page); an online tile layer is added when the address says
// `?tiles=<url template>` (e.g. `https://tile.example/{z}/{x}/{y}.png`).
//
// Colours change in place as the live stream reports them (no reload): a machine drawn on
// its own is repainted at once, clusters when the index is rebuilt (throttled).

import "leaflet/dist/leaflet.css";
import L from "leaflet";
import Supercluster from "supercluster";
import type { ClusterProperties, PointFeature } from "supercluster";
import { feature } from "topojson-client";
import type { GeometryCollection, Topology } from "topojson-specification";
import countriesUrl from "world-atlas/countries-110m.json?url";
import type { FeatureCollection, Position } from "geojson";
import { hashFor } from "../../shell/router";
import { fmtInt, h, settings, setText } from "../../util";
import type { Colour } from "../api";
import { COLOURS, FILL, LABEL, STROKE } from "../colours";
import type { FleetChange } from "../state";
import type { FleetPageContext, MountedPage } from "./types";

interface PointProps {
  i: number;
}
/** Cluster properties: scalars only (supercluster copies them shallowly). */
interface ClusterProps {
  /** worst colour code of the members */
  w: number;
  /** members per colour code 0..4 (colours.ts) */
  n0: number;
  n1: number;
  n2: number;
  n3: number;
  n4: number;
}

const memberCount = (c: ClusterProps, k: number): number => [c.n0, c.n1, c.n2, c.n3, c.n4][k];
type Item = {
  x: number;
  y: number;
  r: number;
  colour: number;
  /** machine index (a single machine) or -1 */
  i: number;
  cluster: (ClusterProperties & ClusterProps) | null;
  lng: number;
  lat: number;
};

/** `window.__rigwatch.map` */
export interface MapDebug {
  ready: boolean;
  /** canvas draws */
  draws: number;
  /** items drawn by the last draw: clusters + single machines */
  clusters: number;
  points: number;
  /** machines the last draw stands for (clusters' counts + single machines) */
  drawnMachines: number;
  /** per colour: machines drawn (clusters counted by their members) */
  drawnByColour: Record<string, number>;
  rebuilds: number;
  lastRebuildMs: number;
  indexed: number;
  /** ms from navigation start to the first draw of the loaded fleet */
  firstPaintMs: number;
  filter: string[];
  zoom: number;
  /** where machine `id` is drawn (its own dot, or its cluster's disc left of the count), in
   * client (CSS) pixels */
  clientPoint(id: string): { x: number; y: number; colour: Colour; cluster: boolean } | null;
}

const FILTER_KEY = "fleet.filter";
const REBUILD_MIN_INTERVAL_MS = 250;

function parseFilter(): Set<number> {
  const saved = settings.get(FILTER_KEY);
  if (!saved) return new Set(COLOURS.map((_c, i) => i));
  const on = new Set<number>();
  for (const name of saved.split(",")) {
    const i = COLOURS.indexOf(name as Colour);
    if (i >= 0) on.add(i);
  }
  return on;
}

export function mount(root: HTMLElement, ctx: FleetPageContext): MountedPage {
  const { fleet } = ctx;
  const mapEl = h("div", { class: "fleet-map", "data-testid": "fleet-map" });
  const canvas = h("canvas", { class: "machine-canvas", "data-testid": "map-canvas" });
  const tip = h("div", { class: "map-tip", "data-testid": "map-tip", hidden: true });
  const filterEl = h("div", { class: "status-filter", "data-testid": "status-filter" });
  const drawnEl = h("div", { class: "muted small num", "data-testid": "map-drawn" }, "loading…");
  const worstEl = h("ul", { class: "worst-list", "data-testid": "worst-list" });
  const side = h(
    "aside",
    { class: "panel map-side" },
    h("div", { class: "panel-head" }, h("h2", {}, "Status")),
    filterEl,
    drawnEl,
    h("div", { class: "panel-head" }, h("h2", {}, "Needs attention")),
    worstEl,
  );
  root.append(h("div", { class: "map-layout" }, h("div", { class: "map-wrap" }, mapEl, canvas, tip), side));

  const filter = parseFilter();
  const dbg = ctx.expose<MapDebug>({
    ready: false,
    draws: 0,
    clusters: 0,
    points: 0,
    drawnMachines: 0,
    drawnByColour: {},
    rebuilds: 0,
    lastRebuildMs: 0,
    indexed: 0,
    firstPaintMs: Number.NaN,
    filter: COLOURS.filter((_c, i) => filter.has(i)),
    zoom: 0,
    clientPoint: (id) => clientPoint(id),
  });

  // ---- Leaflet with the offline base layer ----------------------------------------------------

  const map = L.map(mapEl, {
    zoomAnimation: false,
    markerZoomAnimation: false,
    fadeAnimation: false,
    minZoom: 1,
    maxZoom: 18,
    worldCopyJump: false,
    maxBounds: L.latLngBounds([-89, -200], [89, 200]),
    maxBoundsViscosity: 0.8,
    attributionControl: true,
  });
  map.attributionControl.setPrefix(false);
  map.setView([25, 10], 2);
  const tiles = new URLSearchParams(location.search).get("tiles");
  if (tiles) {
    L.tileLayer(tiles, { maxZoom: 19, attribution: "tiles: " + new URL(tiles.replace(/[{}]/g, ""), location.href).host }).addTo(map);
  }
  map.createPane("countries").style.zIndex = "300";
  const countriesRenderer = L.canvas({ padding: 0.3, pane: "countries" });
  const abort = new AbortController();
  fetch(countriesUrl, { signal: abort.signal })
    .then((r) => r.json() as Promise<Topology>)
    .then((topo) => {
      const land = unwrapAntimeridian(
        feature(topo, topo.objects.countries as GeometryCollection) as FeatureCollection,
      );
      // each polygon is made with these options: the renderer is a path option
      const opts = { renderer: countriesRenderer, pane: "countries" } as L.GeoJSONOptions;
      L.geoJSON(land, {
        ...opts,
        interactive: false,
        style: {
          color: "#50647d",
          weight: 0.7,
          fillColor: tiles ? "transparent" : "#1c2634",
          fillOpacity: tiles ? 0 : 1,
        },
      }).addTo(map);
      map.attributionControl.addAttribution("borders: Natural Earth");
    })
    .catch((err: unknown) => {
      if (!abort.signal.aborted) ctx.problems.report(err);
    });

  // ---- the cluster index ------------------------------------------------------------------------

  let index: Supercluster<PointProps, ClusterProps> | null = null;
  let lastRebuild = 0;
  let rebuildTimer = 0;

  function rebuild(): void {
    const t0 = performance.now();
    const features: PointFeature<PointProps>[] = [];
    const n = fleet.ids.length;
    for (let i = 0; i < n; i++) {
      const lat = fleet.lat[i];
      const lon = fleet.lon[i];
      if (!Number.isFinite(lat) || !Number.isFinite(lon) || !filter.has(fleet.colour[i])) continue;
      features.push({ type: "Feature", properties: { i }, geometry: { type: "Point", coordinates: [lon, lat] } });
    }
    const colour = fleet.colour;
    index = new Supercluster<PointProps, ClusterProps>({
      radius: 48,
      maxZoom: 12, // past it every machine is drawn on its own (index time: ~half of 16)
      map: (p) => {
        const c = colour[p.i];
        return { w: c, n0: +(c === 0), n1: +(c === 1), n2: +(c === 2), n3: +(c === 3), n4: +(c === 4) };
      },
      reduce: (a, b) => {
        if (b.w < a.w) a.w = b.w;
        a.n0 += b.n0;
        a.n1 += b.n1;
        a.n2 += b.n2;
        a.n3 += b.n3;
        a.n4 += b.n4;
      },
    });
    index.load(features);
    lastRebuild = performance.now();
    dbg.rebuilds++;
    dbg.indexed = features.length;
    dbg.lastRebuildMs = lastRebuild - t0;
  }

  /** Rebuilds now, or as soon as the last rebuild is REBUILD_MIN_INTERVAL_MS old. */
  function scheduleRebuild(): void {
    if (rebuildTimer) return;
    const wait = Math.max(0, lastRebuild + REBUILD_MIN_INTERVAL_MS - performance.now());
    rebuildTimer = window.setTimeout(() => {
      rebuildTimer = 0;
      rebuild();
      draw();
    }, wait);
  }

  // ---- drawing ----------------------------------------------------------------------------------

  let items: Item[] = [];
  const ctx2d = canvas.getContext("2d") as CanvasRenderingContext2D;

  function fitCanvas(): void {
    const dpr = window.devicePixelRatio || 1;
    const w = mapEl.clientWidth;
    const hgt = mapEl.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(hgt * dpr);
      canvas.style.width = `${w}px`;
      canvas.style.height = `${hgt}px`;
    }
  }

  function bbox(): [number, number, number, number] {
    const b = map.getBounds();
    let west = b.getWest();
    let east = b.getEast();
    if (east - west >= 360) {
      west = -180;
      east = 180;
    }
    return [Math.max(-180, west), Math.max(-90, b.getSouth()), Math.min(180, east), Math.min(90, b.getNorth())];
  }

  function draw(): void {
    fitCanvas();
    const dpr = window.devicePixelRatio || 1;
    ctx2d.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx2d.clearRect(0, 0, canvas.width, canvas.height);
    items = [];
    dbg.zoom = map.getZoom();
    if (!index) return;
    const found = index.getClusters(bbox(), Math.round(map.getZoom()));
    let clusters = 0;
    let points = 0;
    let machines = 0;
    const byColour = [0, 0, 0, 0, 0];
    for (const f of found) {
      const [lng, lat] = f.geometry.coordinates;
      const p = map.latLngToContainerPoint([lat, lng]);
      const props = f.properties as Partial<ClusterProperties> & Partial<ClusterProps> & Partial<PointProps>;
      if (props.cluster) {
        const c = props as ClusterProperties & ClusterProps;
        const r = Math.min(30, 10 + 5 * Math.log10(c.point_count));
        items.push({ x: p.x, y: p.y, r, colour: c.w, i: -1, cluster: c, lng, lat });
        clusters++;
        machines += c.point_count;
        for (let k = 0; k < 5; k++) byColour[k] += memberCount(c, k);
      } else {
        const i = props.i as number;
        const colour = fleet.colour[i]; // the colour now, even before the next rebuild
        items.push({ x: p.x, y: p.y, r: 6, colour, i, cluster: null, lng, lat });
        points++;
        machines++;
        byColour[colour]++;
      }
    }
    // the worst on top
    items.sort((a, b) => b.colour - a.colour);
    ctx2d.lineWidth = 1.5;
    ctx2d.textAlign = "center";
    ctx2d.textBaseline = "middle";
    ctx2d.font = '600 11px system-ui, "Segoe UI", Roboto, sans-serif';
    for (const it of items) {
      const name = COLOURS[it.colour];
      ctx2d.beginPath();
      ctx2d.arc(it.x, it.y, it.r, 0, 2 * Math.PI);
      ctx2d.fillStyle = FILL[name];
      ctx2d.fill();
      ctx2d.strokeStyle = STROKE[name];
      ctx2d.stroke();
      if (it.cluster) {
        // a ring: clusters read as groups, single machines as dots
        ctx2d.beginPath();
        ctx2d.arc(it.x, it.y, it.r + 3, 0, 2 * Math.PI);
        ctx2d.strokeStyle = FILL[name];
        ctx2d.globalAlpha = 0.45;
        ctx2d.lineWidth = 3;
        ctx2d.stroke();
        ctx2d.globalAlpha = 1;
        ctx2d.lineWidth = 1.5;
        ctx2d.fillStyle = name === "yellow" || name === "green" ? "#06110b" : "#ffffff";
        ctx2d.fillText(String(it.cluster.point_count_abbreviated), it.x, it.y + 0.5);
      }
    }
    dbg.draws++;
    dbg.clusters = clusters;
    dbg.points = points;
    dbg.drawnMachines = machines;
    COLOURS.forEach((c, k) => {
      dbg.drawnByColour[c] = byColour[k];
    });
    setText(drawnEl, `${fmtInt(machines)} machines drawn · ${fmtInt(clusters)} clusters · ${fmtInt(points)} single`);
    if (fleet.loaded && Number.isNaN(dbg.firstPaintMs)) {
      requestAnimationFrame(() => {
        if (Number.isNaN(dbg.firstPaintMs)) dbg.firstPaintMs = performance.now();
      });
    }
  }

  let frame = 0;
  function scheduleDraw(): void {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      draw();
    });
  }

  // ---- where a machine is, what is under the pointer ------------------------------------------

  function clientPoint(id: string): ReturnType<MapDebug["clientPoint"]> {
    const i = fleet.indexOf(id);
    if (i === undefined || !index) return null;
    const rect = canvas.getBoundingClientRect();
    const own = items.find((it) => it.i === i);
    if (own) return { x: rect.left + own.x, y: rect.top + own.y, colour: COLOURS[own.colour], cluster: false };
    for (const it of items) {
      if (!it.cluster) continue;
      const leaves = index.getLeaves(it.cluster.cluster_id, Number.POSITIVE_INFINITY);
      if (leaves.some((l) => l.properties.i === i)) {
        return { x: rect.left + it.x - 0.75 * it.r, y: rect.top + it.y, colour: COLOURS[it.colour], cluster: true };
      }
    }
    return null;
  }

  function itemAt(x: number, y: number): Item | null {
    for (let k = items.length - 1; k >= 0; k--) {
      const it = items[k];
      const dx = it.x - x;
      const dy = it.y - y;
      if (dx * dx + dy * dy <= (it.r + 3) * (it.r + 3)) return it;
    }
    return null;
  }

  function clusterSummary(c: ClusterProps): string {
    return COLOURS.map((name, k) => (memberCount(c, k) ? `${fmtInt(memberCount(c, k))} ${LABEL[name]}` : ""))
      .filter((s) => s)
      .join(" · ");
  }

  map.on("mousemove", (ev: L.LeafletMouseEvent) => {
    const it = itemAt(ev.containerPoint.x, ev.containerPoint.y);
    mapEl.style.cursor = it ? "pointer" : "";
    if (!it) {
      tip.hidden = true;
      return;
    }
    // names are machines' text: set as text, never as markup
    tip.textContent = it.cluster
      ? `${fmtInt(it.cluster.point_count)} machines: ${clusterSummary(it.cluster)}`
      : `${fleet.names[it.i]} (${fleet.ids[it.i]}) · ${LABEL[COLOURS[fleet.colour[it.i]]]}`;
    tip.style.left = `${it.x + it.r + 8}px`;
    tip.style.top = `${it.y - 10}px`;
    tip.hidden = false;
  });
  map.on("mouseout", () => {
    tip.hidden = true;
  });

  map.on("click", (ev: L.LeafletMouseEvent) => {
    const it = itemAt(ev.containerPoint.x, ev.containerPoint.y);
    if (!it || !index) return;
    if (it.cluster) {
      const z = Math.min(index.getClusterExpansionZoom(it.cluster.cluster_id), 18);
      map.setView([it.lat, it.lng], z);
      return;
    }
    const i = it.i;
    const colour = COLOURS[fleet.colour[i]];
    const body = h(
      "div",
      { class: "machine-popup", "data-testid": "machine-popup" },
      h("b", { "data-testid": "popup-name" }, fleet.names[i]),
      h("div", { class: "muted num" }, fleet.ids[i]),
      h("div", {}, h("i", { class: "dot", style: `background:${FILL[colour]}` }), ` ${LABEL[colour]}`),
      h("a", { href: hashFor("machine", [fleet.ids[i]]), "data-testid": "popup-open" }, "open machine →"),
    );
    L.popup({ offset: [0, -4] }).setLatLng([it.lat, it.lng]).setContent(body).openOn(map);
  });

  // ---- the status filter and the list of machines needing attention ---------------------------

  const filterBoxes = COLOURS.map((name, k) => {
    const box = h("input", { type: "checkbox", "data-colour": name, "data-testid": `filter-${name}` });
    box.checked = filter.has(k);
    box.addEventListener("change", () => {
      if (box.checked) filter.add(k);
      else filter.delete(k);
      dbg.filter = COLOURS.filter((_c, j) => filter.has(j));
      settings.set(FILTER_KEY, dbg.filter.join(","));
      rebuild();
      draw();
    });
    const count = h("b", { class: "num" }, "—");
    const label = h(
      "label",
      { class: "filter-item", title: `${name}` },
      box,
      h("i", { class: "dot", style: `background:${FILL[name]}; border-color:${STROKE[name]}` }),
      h("span", {}, LABEL[name]),
      count,
    );
    return { label, count };
  });
  filterEl.replaceChildren(...filterBoxes.map((f) => f.label));

  function renderSide(): void {
    COLOURS.forEach((_c, k) => setText(filterBoxes[k].count, fmtInt(fleet.counts[k])));
    const worst: number[] = [];
    for (let i = 0; i < fleet.ids.length && worst.length < 100; i++) {
      if (fleet.colour[i] <= 1) worst.push(i); // red, black
    }
    if (!worst.length) {
      worstEl.replaceChildren(h("li", { class: "muted" }, fleet.loaded ? "nothing critical or inaccessible" : "loading…"));
      return;
    }
    worstEl.replaceChildren(
      ...worst.map((i) =>
        h(
          "li",
          { "data-machine": fleet.ids[i] },
          h("i", { class: "dot", style: `background:${FILL[COLOURS[fleet.colour[i]]]}` }),
          h("a", { href: hashFor("machine", [fleet.ids[i]]) }, fleet.names[i]),
        ),
      ),
    );
  }

  // ---- wiring -----------------------------------------------------------------------------------

  let sideTimer = 0;
  function onChange(c: FleetChange): void {
    if (c.full) {
      rebuild();
      draw();
    } else {
      // single machines at once; clusters (and the filter) with the next rebuild
      scheduleDraw();
      scheduleRebuild();
    }
    dbg.ready = true;
    if (!sideTimer) {
      sideTimer = window.setTimeout(() => {
        sideTimer = 0;
        renderSide();
      }, c.full ? 0 : 300);
    }
  }

  map.on("move zoom resize viewreset", scheduleDraw);
  const resizeObs = new ResizeObserver(() => {
    map.invalidateSize({ pan: false });
    scheduleDraw();
  });
  resizeObs.observe(mapEl);
  const unsubscribe = fleet.subscribe(onChange);
  renderSide();

  return {
    unmount() {
      abort.abort();
      unsubscribe();
      resizeObs.disconnect();
      window.clearTimeout(rebuildTimer);
      window.clearTimeout(sideTimer);
      if (frame) cancelAnimationFrame(frame);
      map.remove();
      dbg.ready = false;
    },
  };
}

/** Rings of Natural Earth that cross the antimeridian (Russia, Fiji, Antarctica) jump from
 * +180 to -180 degrees; drawn as they are, the jump is a line across the whole map. Each
 * ring's longitudes are made continuous instead (a part may then lie beyond 180 degrees). */
function unwrapAntimeridian(fc: FeatureCollection): FeatureCollection {
  const unwrap = (ring: Position[]): void => {
    for (let i = 1; i < ring.length; i++) {
      const prev = ring[i - 1][0];
      while (ring[i][0] - prev > 180) ring[i][0] -= 360;
      while (ring[i][0] - prev < -180) ring[i][0] += 360;
    }
  };
  for (const f of fc.features) {
    const g = f.geometry;
    if (g.type === "Polygon") g.coordinates.forEach(unwrap);
    else if (g.type === "MultiPolygon") g.coordinates.forEach((poly) => poly.forEach(unwrap));
  }
  return fc;
}
