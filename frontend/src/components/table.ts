// A table of rows built from column definitions: sticky header, keyboard-activatable rows,
// one selected row, and no re-render when the rows did not change (tables refresh on timers).

import { h } from "../util";

type Cell = Node | string | null;

export interface Column<T> {
  label: string;
  cell(row: T): Cell;
  /** "r": right-aligned (numbers) */
  align?: "r";
  /** CSS width of the column, e.g. "80px" or "20%" */
  width?: string;
  className?: string;
  title?(row: T): string | undefined;
}

export interface TableOpts<T> {
  columns: Column<T>[];
  /** unique key of a row (data-key) */
  key(row: T): string;
  /** what identifies a row's content: rows are re-rendered only when one changes */
  version?(row: T): string;
  rowClass?(row: T): string;
  rowTitle?(row: T): string | undefined;
  rowTestId?: string;
  empty: string;
  /** a row was clicked or Enter/Space was pressed on it (not on a link inside it) */
  onActivate?(row: T): void;
}

export class DataTable<T> {
  readonly el: HTMLElement;
  private rows: T[] = [];
  private signature: string | null = null;
  private selectedKey: string | null = null;

  constructor(private readonly opts: TableOpts<T>) {
    this.el = h("div", { class: "table-wrap" });
    this.el.addEventListener("click", (ev) => {
      const target = ev.target as HTMLElement;
      if (target.closest("a, button, input")) return; // they do their own thing
      this.activate(target);
    });
    this.el.addEventListener("keydown", (ev) => {
      if (ev.key !== "Enter" && ev.key !== " ") return;
      if ((ev.target as HTMLElement).closest("a, button, input")) return;
      ev.preventDefault();
      this.activate(ev.target as HTMLElement);
    });
  }

  get length(): number {
    return this.rows.length;
  }

  /** Replaces the rows; renders only when keys or versions changed. */
  setRows(rows: T[]): void {
    const version = this.opts.version ?? this.opts.key;
    const sig = rows.map((r) => `${this.opts.key(r)}\u0000${version(r)}`).join("\u0001");
    this.rows = rows;
    if (sig === this.signature) return;
    this.signature = sig;
    this.render();
  }

  /** Marks one row as selected (null: none). */
  select(key: string | null): void {
    this.selectedKey = key;
    for (const tr of this.el.querySelectorAll<HTMLElement>("tbody tr[data-key]")) {
      const on = tr.dataset.key === key;
      tr.classList.toggle("selected", on);
      tr.setAttribute("aria-selected", on ? "true" : "false");
    }
  }

  private activate(target: HTMLElement): void {
    const tr = target.closest<HTMLElement>("tr[data-key]");
    if (!tr || !this.opts.onActivate) return;
    const row = this.rows.find((r) => this.opts.key(r) === tr.dataset.key);
    if (row !== undefined) this.opts.onActivate(row);
  }

  private render(): void {
    const o = this.opts;
    if (!this.rows.length) {
      this.el.replaceChildren(h("div", { class: "empty" }, o.empty));
      return;
    }
    const colgroup = h("colgroup", {}, ...o.columns.map((c) => h("col", { style: c.width ? `width:${c.width}` : undefined })));
    const head = h(
      "thead",
      {},
      h("tr", {}, ...o.columns.map((c) => h("th", { class: c.align === "r" ? "r" : undefined, scope: "col" }, c.label))),
    );
    const body = h(
      "tbody",
      {},
      ...this.rows.map((row) => {
        const key = o.key(row);
        const cls = [o.rowClass?.(row) ?? "", key === this.selectedKey ? "selected" : ""].join(" ").trim();
        return h(
          "tr",
          {
            "data-key": key,
            "data-testid": o.rowTestId,
            tabindex: o.onActivate ? 0 : undefined,
            class: cls || undefined,
            title: o.rowTitle?.(row),
            "aria-selected": key === this.selectedKey ? "true" : "false",
          },
          ...o.columns.map((c) =>
            h("td", { class: [c.align === "r" ? "r" : "", c.className ?? ""].join(" ").trim() || undefined, title: c.title?.(row) }, c.cell(row)),
          ),
        );
      }),
    );
    this.el.replaceChildren(h("table", { class: "data-table" }, colgroup, head, body));
  }
}
