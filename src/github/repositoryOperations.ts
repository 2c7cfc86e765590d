import { isRecord, messageCode, num, providerFetch, str } from "../providers/http.ts";
import { ProviderError } from "../providers/provider.ts";

// The few repository operations an agent's contribution takes (fork, a commit through the contents
// API, a pull request), made with whatever token acts for the principal: its linked identity's
// user token or an installation token. Failures are ProviderErrors with GitHub's message as a code
// (resource_not_accessible_by_integration, not_found, validation codes), never the token.

const API_VERSION = "2022-11-28";

export interface RepositoryApi {
  apiUrl: string;
  timeoutMs: number;
}

export interface RepositoryRef {
  owner: string;
  name: string;
}

async function call(api: RepositoryApi, token: string, method: "GET" | "POST" | "PUT", path: string, json?: unknown) {
  const response = await providerFetch("github", api.timeoutMs, {
    method,
    url: `${api.apiUrl}${path}`,
    bearer: token,
    headers: { accept: "application/vnd.github+json", "x-github-api-version": API_VERSION },
    ...(json === undefined ? {} : { json }),
  });
  return { status: response.status, body: isRecord(response.body) ? response.body : {} };
}

const repoPath = (repo: RepositoryRef) => `/repos/${encodeURIComponent(repo.owner)}/${encodeURIComponent(repo.name)}`;

/** GitHub's refusal as a ProviderError: 401/403/404 are the token's limits (rejected), 422 the request's (invalid). */
function refusal(status: number, body: Record<string, unknown>): ProviderError {
  const errors = Array.isArray(body.errors) ? body.errors : [];
  // "A pull request already exists for …", or the field and what is wrong with it (head invalid).
  const detail = errors
    .map((e) => (isRecord(e) ? (str(e.message) ?? (str(e.field) && str(e.code) ? `${str(e.field)} ${str(e.code)}` : undefined)) : undefined))
    .find(Boolean);
  const code = messageCode(detail ?? body.message, `http_${status}`);
  return new ProviderError("github", code, status === 401 || status === 403 || status === 404 ? "rejected" : "invalid", status);
}

export interface ForkedRepository {
  fullName: string;
  url: string;
  owner: string;
  defaultBranch: string;
}

/** POST /repos/{owner}/{repo}/forks: into the token's user account, or `organization`. GitHub answers 202 and creates it. */
export async function forkRepository(
  api: RepositoryApi,
  token: string,
  source: RepositoryRef,
  options: { organization?: string } = {},
): Promise<ForkedRepository> {
  const { status, body } = await call(api, token, "POST", `${repoPath(source)}/forks`, {
    ...(options.organization ? { organization: options.organization } : {}),
    default_branch_only: true,
  });
  const fullName = str(body.full_name);
  const owner = isRecord(body.owner) ? str(body.owner.login) : undefined;
  if ((status === 202 || status === 200) && fullName && owner) {
    return { fullName, url: str(body.html_url) ?? "", owner, defaultBranch: str(body.default_branch) ?? "main" };
  }
  throw refusal(status, body);
}

/** The commit a branch points at, or undefined when there is no such branch. */
export async function branchHead(api: RepositoryApi, token: string, repo: RepositoryRef, branch: string): Promise<string | undefined> {
  const { status, body } = await call(api, token, "GET", `${repoPath(repo)}/git/ref/heads/${encodeURIComponent(branch)}`);
  if (status === 404) return undefined;
  const sha = isRecord(body.object) ? str(body.object.sha) : undefined;
  if (status === 200 && sha) return sha;
  throw refusal(status, body);
}

export async function createBranch(api: RepositoryApi, token: string, repo: RepositoryRef, branch: string, sha: string): Promise<void> {
  const { status, body } = await call(api, token, "POST", `${repoPath(repo)}/git/refs`, { ref: `refs/heads/${branch}`, sha });
  if (status !== 201) throw refusal(status, body);
}

export interface CommittedFile {
  commitSha: string;
  commitUrl?: string;
}

/** PUT /repos/{owner}/{repo}/contents/{path} on `branch`: creates the file, or updates it (its blob sha read first). */
export async function commitFile(
  api: RepositoryApi,
  token: string,
  repo: RepositoryRef,
  file: { branch: string; path: string; content: string; message: string },
): Promise<CommittedFile> {
  const path = `${repoPath(repo)}/contents/${file.path.split("/").map(encodeURIComponent).join("/")}`;
  const existing = await call(api, token, "GET", `${path}?ref=${encodeURIComponent(file.branch)}`);
  const sha = existing.status === 200 ? str(existing.body.sha) : undefined;
  if (existing.status !== 200 && existing.status !== 404) throw refusal(existing.status, existing.body);
  const { status, body } = await call(api, token, "PUT", path, {
    message: file.message,
    content: Buffer.from(file.content, "utf8").toString("base64"),
    branch: file.branch,
    ...(sha ? { sha } : {}),
  });
  const commit = isRecord(body.commit) ? body.commit : {};
  const commitSha = str(commit.sha);
  if ((status === 200 || status === 201) && commitSha) return { commitSha, commitUrl: str(commit.html_url) };
  throw refusal(status, body);
}

export interface OpenedPullRequest {
  number: number;
  url: string;
}

/** POST /repos/{owner}/{repo}/pulls: `head` is a branch of the repository or `owner:branch` of a fork. */
export async function openPullRequest(
  api: RepositoryApi,
  token: string,
  base: RepositoryRef,
  pull: { head: string; base: string; title: string; body?: string },
): Promise<OpenedPullRequest> {
  const { status, body } = await call(api, token, "POST", `${repoPath(base)}/pulls`, {
    title: pull.title,
    head: pull.head,
    base: pull.base,
    ...(pull.body ? { body: pull.body } : {}),
  });
  const number = num(body.number);
  if (status === 201 && number !== undefined) return { number, url: str(body.html_url) ?? "" };
  throw refusal(status, body);
}

/** The repository's default branch (GET /repos/{owner}/{repo}). */
export async function defaultBranch(api: RepositoryApi, token: string, repo: RepositoryRef): Promise<string> {
  const { status, body } = await call(api, token, "GET", repoPath(repo));
  const branch = str(body.default_branch);
  if (status === 200 && branch) return branch;
  throw refusal(status, body);
}
