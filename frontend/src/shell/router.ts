// Hash routes: `#/<page>/<param>...` (each part URI-encoded). No hash, or `#/`, is the default
// page. The station serves one index.html, so the hash keeps every page reloadable.

import type { Route } from "../pages/types";

export function parseHash(hash: string, defaultPage: string): Route {
  const path = hash.replace(/^#\/?/, "");
  const parts = path ? path.split("/").map((p) => safeDecode(p)) : [];
  const page = parts.shift() || defaultPage;
  return { page, params: parts.filter((p) => p !== "") };
}

export function hashFor(page: string, params: string[] = []): string {
  return `#/${[page, ...params].map(encodeURIComponent).join("/")}`;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Calls `onRoute` now and whenever the hash changes. */
export function startRouter(defaultPage: string, onRoute: (route: Route) => void): void {
  const go = (): void => onRoute(parseHash(location.hash, defaultPage));
  window.addEventListener("hashchange", go);
  go();
}
