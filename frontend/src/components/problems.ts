// The one place failed requests are shown: each as its RFC 9457 problem details (status,
// title, detail, and the invalid fields when the server names them), with the request that
// failed, in a stack under the header. Every entry can be dismissed; the same problem again
// counts up instead of stacking; a problem of a background refresh (key given) goes away
// by itself once that refresh works again.

import { ApiError, type FieldProblem, type Problem } from "../api";
import { errorText, h, setText } from "../util";

export interface ProblemsDebug {
  /** problems reported since the page was loaded */
  reported: number;
  /** reports left out because the shell handles them otherwise (`ignore`) */
  ignored: number;
  /** entries on screen now */
  visible: number;
  last: { request: string; status: number; title: string; detail: string } | null;
}

interface Entry {
  id: string;
  el: HTMLElement;
  count: HTMLElement;
  n: number;
}

/** The problem of anything thrown: the server's when there is one. */
export function problemOf(err: unknown): { request: string; problem: Problem } {
  if (err instanceof ApiError) return { request: err.request, problem: err.problem };
  return {
    request: "",
    problem: { type: "about:blank", title: "Error in the page", status: 0, detail: errorText(err) },
  };
}

function fieldList(errors: FieldProblem[]): HTMLElement {
  return h(
    "ul",
    { class: "problem-fields", "data-testid": "problem-fields" },
    ...errors.map((e) =>
      h("li", { "data-testid": "problem-field" }, h("code", {}, e.field), h("span", {}, e.reason)),
    ),
  );
}

export interface ProblemsOptions {
  /** Failures the shell answers in another way (the fleet's login form for a request that
   * needed a login): reported ones for which it returns true are not shown. */
  ignore?(err: unknown): boolean;
}

export class ProblemsView {
  private readonly entries = new Map<string, Entry>();
  readonly debug: ProblemsDebug = { reported: 0, ignored: 0, visible: 0, last: null };

  constructor(
    private readonly root: HTMLElement,
    private readonly opts: ProblemsOptions = {},
  ) {
    root.addEventListener("click", (ev) => {
      const b = (ev.target as HTMLElement).closest<HTMLElement>("[data-dismiss]");
      if (b?.dataset.dismiss) this.dismiss(b.dataset.dismiss);
    });
    root.addEventListener("keydown", (ev) => {
      if (ev.key !== "Escape") return;
      const el = (ev.target as HTMLElement).closest<HTMLElement>("[data-problem-id]");
      if (el?.dataset.problemId) this.dismiss(el.dataset.problemId);
    });
  }

  /** Shows what went wrong. `key` names a repeated background request: its entry is
   * replaced by the next failure and removed by clear(key). Returns the entry's id ("" when
   * `ignore` left it out). */
  report(err: unknown, key?: string): string {
    if (this.opts.ignore?.(err)) {
      this.debug.ignored++;
      return "";
    }
    const { request, problem } = problemOf(err);
    const id = key ?? `${request}|${problem.status}|${problem.title}|${problem.detail}`;
    this.debug.reported++;
    this.debug.last = { request, status: problem.status, title: problem.title, detail: problem.detail };
    const old = this.entries.get(id);
    if (old && old.el.dataset.detail === problem.detail) {
      old.n++;
      setText(old.count, `×${old.n}`);
      old.count.hidden = false;
      return id;
    }
    if (old) old.el.remove();
    const el = this.render(id, request, problem);
    const count = el.querySelector<HTMLElement>("[data-ref=count]") as HTMLElement;
    this.entries.set(id, { id, el, count, n: 1 });
    this.root.prepend(el);
    this.debug.visible = this.entries.size;
    return id;
  }

  /** Removes the entry of `key` (its request works again). */
  clear(key: string): void {
    if (this.entries.has(key)) this.dismiss(key);
  }

  dismiss(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    e.el.remove();
    this.entries.delete(id);
    this.debug.visible = this.entries.size;
  }

  private render(id: string, request: string, p: Problem): HTMLElement {
    const status = p.status ? String(p.status) : "—";
    const tone = p.status >= 500 || p.status === 0 ? "bad" : "warn";
    const el = h(
      "div",
      {
        class: `problem tone-${tone}`,
        role: "alert",
        tabindex: -1,
        "data-testid": "problem",
        "data-problem-id": id,
        "data-status": p.status,
        "data-detail": p.detail,
      },
      h(
        "div",
        { class: "problem-head" },
        h("span", { class: "problem-status num", "data-testid": "problem-status" }, status),
        h("b", { class: "problem-title", "data-testid": "problem-title" }, p.title),
        h("span", { class: "problem-count num", "data-ref": "count", hidden: true }, ""),
        h("span", { class: "spacer" }),
        request ? h("span", { class: "problem-request num", "data-testid": "problem-request" }, request) : null,
        h(
          "button",
          { type: "button", class: "problem-dismiss", "data-dismiss": id, "data-testid": "problem-dismiss", title: "dismiss", "aria-label": "dismiss" },
          "×",
        ),
      ),
      h("p", { class: "problem-detail", "data-testid": "problem-detail" }, p.detail),
      p.errors?.length ? fieldList(p.errors) : null,
      p.type && p.type !== "about:blank" ? h("a", { class: "problem-type", href: p.type, target: "_blank", rel: "noreferrer" }, p.type) : null,
    );
    return el;
  }
}
