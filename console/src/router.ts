import { useEffect, useState } from "react";

// The console's pages are paths under /console/ (the server answers every one with the app), moved
// between with the History API: no router dependency for a handful of pages.

export const BASE = "/console";

export function usePath(): string {
  const [path, setPath] = useState(current);
  useEffect(() => {
    const update = () => setPath(current());
    addEventListener("popstate", update);
    return () => removeEventListener("popstate", update);
  }, []);
  return path;
}

function current(): string {
  const path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : location.pathname;
  return path.replace(/\/+$/, "") || "/";
}

export function navigate(path: string): void {
  history.pushState(null, "", `${BASE}${path}`);
  dispatchEvent(new PopStateEvent("popstate"));
}
