import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App.tsx";
import { createSessionStore } from "./session.ts";
import "./styles.css";

const sessions = createSessionStore();

// A sign-in link (`keyplane console link`) carries its one-time code in the fragment, which the
// browser sends to no server and no Referer: it leaves the address bar (and the history) at once, and
// is exchanged for a session. A refusal is shown on the sign-in page (sessions.problem()).
const code = new URLSearchParams(location.hash.slice(1)).get("code");
if (code) {
  history.replaceState(history.state, "", `${location.pathname}${location.search}`);
  sessions.redeem(code).catch(() => {});
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App sessions={sessions} />
  </StrictMode>,
);
