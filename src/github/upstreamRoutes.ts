// The GitHub routes Keyplane calls, as templates for metric labels (a filled URL would be unbounded and
// would name installations, owners and repositories), and the outcome label of an HTTP status.

export const MINT_ROUTE = "POST /app/installations/{installation_id}/access_tokens";
export const REVOKE_ROUTE = "DELETE /installation/token";

const ROUTES = [
  MINT_ROUTE,
  "GET /app/installations/{installation_id}",
  "DELETE /app/installations/{installation_id}",
  "PUT /app/installations/{installation_id}/suspended",
  "DELETE /app/installations/{installation_id}/suspended",
  "GET /app/installations",
  "GET /app",
  "GET /repos/{owner}/{repo}/installation",
  "GET /orgs/{org}/installation",
  "GET /users/{username}/installation",
  REVOKE_ROUTE,
  "GET /installation/repositories",
  "GET /user/installations",
].map((template) => {
  const [method, path] = template.split(" ") as [string, string];
  return { template, method, regex: new RegExp(`^${path.replace(/\{[^}]+\}/g, "[^/]+")}$`) };
});

export function routeTemplate(method: string, pathname: string): string {
  const found = ROUTES.find((r) => r.method === method && r.regex.test(pathname));
  return found ? found.template : `${method} (other)`;
}

export function outcomeOf(status: number): string {
  if (status < 400) return "success";
  if (status === 401) return "unauthorized";
  if (status === 403) return "forbidden";
  if (status === 404) return "not_found";
  if (status === 422) return "unprocessable";
  if (status === 429) return "rate_limited";
  if (status >= 500) return "server_error";
  return "client_error";
}
