import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";

// A real browser for the console's tests: Debian's Chromium (CHROMIUM_PATH, else the usual paths),
// driven by playwright-core. Where there is none, the suites that need it are skipped with a warning
// (.ci/run installs it).

const CANDIDATES = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

export const chromiumPath = CANDIDATES.find((p): p is string => Boolean(p) && existsSync(p!));

if (!chromiumPath) console.warn("console browser tests skipped: no Chromium (apt-get install chromium, or set CHROMIUM_PATH)");

export async function launchBrowser(): Promise<Browser> {
  // As root (CI, containers) Chromium needs --no-sandbox; the pages are our own.
  return chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}

/**
 * The problems a page reports: console errors, failed requests and Content-Security-Policy
 * violations, collected from the moment the page opens (a test expects none).
 */
export function pageProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  // (a request the page itself gave up, as moving to another page does, is not a failure)
  page.on("requestfailed", (request) => {
    if (request.failure()?.errorText !== "net::ERR_ABORTED") problems.push(`request failed: ${request.url()} ${request.failure()?.errorText ?? ""}`);
  });
  return problems;
}

/** Opens the console at `url` and signs in with a pasted token, as a person does (resolves once the sign-in is sent). */
export async function signInWithToken(page: Page, url: string, token: string): Promise<void> {
  await page.goto(url);
  await page.getByLabel("Access token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
}
