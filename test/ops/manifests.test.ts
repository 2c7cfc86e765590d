import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseGitHubTokenArgs } from "../../src/tokenWriter/run.ts";
import { loadConfig } from "../../src/config.ts";
import { loadGitHubApps } from "../../src/github/appRegistry.ts";
import { createMetrics } from "../../src/metrics.ts";
import { validateCoreType, validateObject, type K8sObject } from "./k8sValidation.ts";
import { ROOT, filesUnder, readYaml } from "./opsFiles.ts";

const APPS = ["rex", "clippy", "qa", "triage", "security"];
const K8S = "ops/k8s";
const ARGO = "ops/argo";

function kustomization(dir: string): { resources: string[]; namespace?: string; images?: Array<{ name: string; newName?: string; newTag?: string }> } {
  return readYaml(`${dir}/kustomization.yaml`)[0] as any;
}

/** The objects a kustomization lists, as written (before kustomize's namespace and image edits). */
function objectsOf(dir: string): Array<K8sObject & { file: string }> {
  return kustomization(dir).resources.flatMap((file) => readYaml(`${dir}/${file}`).map((o) => ({ ...(o as K8sObject), file: `${dir}/${file}` })));
}

const k8s = objectsOf(K8S);
const argo = objectsOf(ARGO);
const all = [...k8s, ...argo];
const byKind = (kind: string, objects = all) => objects.filter((o) => o.kind === kind);
const one = (kind: string, name: string) => {
  const found = all.filter((o) => o.kind === kind && o.metadata.name === name);
  expect(found, `${kind}/${name}`).toHaveLength(1);
  return found[0]!;
};
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) => Object.entries(selector).every(([k, v]) => labels[k] === v);

interface PodSpecLike {
  securityContext?: any;
  containers: any[];
  initContainers?: any[];
  volumes?: any[];
}

/** Every workload's pod: the Deployment's, the Job's, and each Argo template's (with the spec-level pod settings). */
function pods(): Array<{ where: string; pod: PodSpecLike }> {
  const out: Array<{ where: string; pod: PodSpecLike }> = [];
  for (const o of [...byKind("Deployment"), ...byKind("Job")]) out.push({ where: `${o.kind}/${o.metadata.name}`, pod: o.spec.template.spec });
  for (const wft of byKind("WorkflowTemplate")) {
    for (const t of wft.spec.templates) {
      if (!t.container) continue;
      out.push({
        where: `WorkflowTemplate/${wft.metadata.name}/${t.name}`,
        pod: {
          securityContext: wft.spec.securityContext,
          containers: [t.container, ...(t.sidecars ?? [])],
          initContainers: t.initContainers,
          volumes: [...(wft.spec.volumes ?? []), ...(t.volumes ?? [])],
        },
      });
    }
  }
  return out;
}

describe("every YAML file parses", () => {
  const files = [...filesUnder("ops", [".yaml", ".yml"]), "docker-compose.yml"];

  it("ops/ and docker-compose.yml", () => {
    expect(files.length).toBeGreaterThanOrEqual(15);
    for (const file of files) expect(() => readYaml(file), file).not.toThrow();
  });

  it("each kustomization lists every manifest beside it, and only existing ones", () => {
    for (const dir of [K8S, ARGO]) {
      const listed = kustomization(dir).resources;
      const configurations = (kustomization(dir) as { configurations?: string[] }).configurations ?? [];
      const present = readdirSync(path.join(ROOT, dir)).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml" && !configurations.includes(f));
      expect(new Set(listed), dir).toEqual(new Set(present));
      expect(new Set(listed).size).toBe(listed.length);
    }
  });

  it("the Grafana dashboard is JSON", () => {
    expect(() => JSON.parse(readFileSync(path.join(ROOT, "ops/grafana/keyplane.json"), "utf8"))).not.toThrow();
  });
});

describe("every Kubernetes object is valid against its schema", () => {
  it("the core objects against the Kubernetes API's schemas, the custom resources against their projects' generated schemas", () => {
    expect(all.length).toBeGreaterThan(20);
    const problems = all.flatMap(({ file, ...o }) => validateObject(o as K8sObject).map((p) => `${file}: ${o.kind}/${o.metadata?.name}: ${p}`));
    expect(problems).toEqual([]);
  });

  it("the containers, volumes and pod security contexts inside Argo templates against Kubernetes' own", () => {
    const problems: string[] = [];
    for (const wft of byKind("WorkflowTemplate")) {
      problems.push(...validateCoreType("PodSecurityContext", wft.spec.securityContext));
      for (const v of wft.spec.volumes ?? []) problems.push(...validateCoreType("Volume", v));
      for (const t of wft.spec.templates) {
        for (const v of t.volumes ?? []) problems.push(...validateCoreType("Volume", v));
        // Argo names the main container itself; a UserContainer may also say mirrorVolumeMounts.
        if (t.container) problems.push(...validateCoreType("Container", { name: "main", ...t.container }));
        for (const c of [...(t.initContainers ?? []), ...(t.sidecars ?? [])]) {
          const { mirrorVolumeMounts: _m, ...container } = c;
          problems.push(...validateCoreType("Container", container));
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it("catch what they should (the checks are not vacuous)", () => {
    const { file: _f1, ...deployment } = structuredClone(one("Deployment", "keyplane"));
    deployment.spec.template.spec.containers[0].securityContext.runAsUser = "nobody";
    expect(validateObject(deployment).join()).toMatch(/containers\/0\/securityContext\/runAsUser must be integer/);
    const { file: _f2, ...es } = structuredClone(one("ExternalSecret", "github-app-rex"));
    es.spec.target.creationPolicy = "Sometimes";
    delete es.spec.data[0].remoteRef.key;
    const problems = validateObject(es).join("\n");
    expect(problems).toMatch(/target\/creationPolicy must be equal to one of the allowed values/);
    expect(problems).toMatch(/data\/0\/remoteRef must have required property key\b/);
    const { file: _f3, ...store } = structuredClone(one("SecretStore", "aws-secrets-manager"));
    store.spec.provider.aws.service = "SecretManager";
    expect(validateObject(store).join("\n")).toMatch(/provider\/aws\/service must be equal to one of the allowed values/);
    const { file: _f4, ...twoProviders } = structuredClone(one("SecretStore", "aws-secrets-manager"));
    twoProviders.spec.provider.fake = { data: [] };
    expect(validateObject(twoProviders).join("\n")).toMatch(/spec\/provider must NOT have more than 1 property/);
    const { file: _f5, ...wft } = structuredClone(one("WorkflowTemplate", "github-token"));
    delete wft.spec.arguments.parameters[0].name;
    wft.spec.templates[0].initContainers[0] = { image: "x" };
    const wftProblems = validateObject(wft).join("\n");
    expect(wftProblems).toMatch(/arguments\/parameters\/0 must have required property name\b/);
    expect(wftProblems).toMatch(/initContainers\/0 must have required property name\b/);
    // An API version the operator no longer serves has no validator.
    expect(validateObject({ ...es, apiVersion: "external-secrets.io/v1beta1" })).toContain("no schema for external-secrets.io/v1beta1/ExternalSecret");
  });
});

describe("security settings", () => {
  it("every pod runs as non-root with seccomp RuntimeDefault; every container without privileges, capabilities or a writable root", () => {
    const found = pods();
    expect(found.map((p) => p.where)).toEqual(
      expect.arrayContaining(["Deployment/keyplane", "Job/keyplane-migrate", "WorkflowTemplate/github-token/main", "WorkflowTemplate/github-token-watch/main"]),
    );
    for (const { where, pod } of found) {
      expect(pod.securityContext?.runAsNonRoot, where).toBe(true);
      expect(pod.securityContext?.seccompProfile?.type, where).toBe("RuntimeDefault");
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        const at = `${where}/${c.name ?? "main"}`;
        expect(c.securityContext?.allowPrivilegeEscalation, at).toBe(false);
        expect(c.securityContext?.readOnlyRootFilesystem, at).toBe(true);
        expect(c.securityContext?.capabilities?.drop, at).toEqual(["ALL"]);
        expect(c.securityContext?.capabilities?.add, at).toBeUndefined();
        expect(c.securityContext?.privileged ?? false, at).toBe(false);
        expect(c.securityContext?.runAsNonRoot ?? pod.securityContext.runAsNonRoot, at).toBe(true);
        expect(c.resources?.limits?.memory, at).toBeDefined();
        expect(c.resources?.requests?.memory, at).toBeDefined();
      }
    }
    // Keyplane's own pods: the image's user, and no Kubernetes API token.
    for (const o of [one("Deployment", "keyplane"), one("Job", "keyplane-migrate")]) {
      const pod = o.spec.template.spec;
      expect(pod.securityContext).toMatchObject({ runAsUser: 65532, runAsGroup: 65532 });
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(one("ServiceAccount", pod.serviceAccountName).automountServiceAccountToken).toBe(false);
    }
    expect(one("Namespace", "keyplane").metadata.labels?.["pod-security.kubernetes.io/enforce"]).toBe("restricted");
  });

  it("writes go to volumes only: the data directory and /tmp are emptyDirs, the app secrets read-only", () => {
    const config = one("ConfigMap", "keyplane-config").data;
    for (const o of [one("Deployment", "keyplane"), one("Job", "keyplane-migrate")]) {
      const pod = o.spec.template.spec;
      const mounts = Object.fromEntries(pod.containers[0].volumeMounts.map((m: any) => [m.mountPath, m]));
      const volume = (name: string) => pod.volumes.find((v: any) => v.name === name);
      expect(volume(mounts[config.KEYPLANE_DATA_DIR].name).emptyDir).toBeDefined();
      expect(volume(mounts["/tmp"].name).emptyDir).toBeDefined();
      for (const m of Object.values(mounts) as any[]) if (volume(m.name).projected || volume(m.name).secret) expect(m.readOnly).toBe(true);
    }
  });
});

describe("the Deployment", () => {
  const deployment = one("Deployment", "keyplane");
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];

  it("runs 2+ replicas of serve with probes on /healthz and /readyz, a zero-downtime rollout and resources", () => {
    expect(deployment.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(container.args).toEqual(["serve"]);
    expect(container.livenessProbe.httpGet.path).toBe("/healthz");
    expect(container.readinessProbe.httpGet.path).toBe("/readyz");
    expect(container.startupProbe.httpGet.path).toBe("/healthz");
    for (const probe of [container.livenessProbe, container.readinessProbe, container.startupProbe])
      expect(container.ports.map((p: any) => p.name)).toContain(probe.httpGet.port);
    expect(container.ports[0].containerPort).toBe(4000);
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    expect(container.lifecycle.preStop.sleep.seconds).toBeGreaterThan(0);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(container.lifecycle.preStop.sleep.seconds);
    expect(container.resources.requests.cpu).toBeDefined();
    expect(container.resources.limits.memory).toBeDefined();
    expect(matches(deployment.spec.selector.matchLabels, deployment.spec.template.metadata.labels)).toBe(true);
    // One image for every command, pinned by the kustomization.
    const images = kustomization(K8S).images!.map((i) => i.name);
    for (const o of [deployment, one("Job", "keyplane-migrate")]) expect(images).toContain(o.spec.template.spec.containers[0].image);
  });

  it("its configuration loads: the ConfigMap with the secrets the ExternalSecret provides is a valid production config", () => {
    const config = one("ConfigMap", "keyplane-config").data;
    const runtime = one("ExternalSecret", "keyplane-runtime");
    const fromSecrets = Object.fromEntries(runtime.spec.data.map((d: any) => [d.secretKey, ""]));
    expect(Object.keys(fromSecrets).sort()).toEqual([
      "DATABASE_URL",
      "KEYPLANE_ENCRYPTION_KEYS",
      "KEYPLANE_PREVIOUS_SIGNING_KEYS",
      "KEYPLANE_SIGNING_KEY",
      "REDIS_URL",
    ]);
    expect(container.envFrom).toEqual([{ configMapRef: { name: "keyplane-config" } }, { secretRef: { name: runtime.spec.target.name } }]);
    const signingKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const parsed = loadConfig({
      ...config,
      DATABASE_URL: "postgres://keyplane:pw@db.internal:5432/keyplane",
      REDIS_URL: "redis://:pw@redis.internal:6379",
      KEYPLANE_SIGNING_KEY: signingKey,
      KEYPLANE_PREVIOUS_SIGNING_KEYS: "none",
      KEYPLANE_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString("base64")}`,
    });
    expect(parsed.env).toBe("production");
    expect(parsed.migrateOnStart).toBe(false);
    expect(parsed.trustedProxies).toEqual(["10.0.0.0/8"]);
  });

  it("mounts each app's secret as GITHUB_APPS_DIR/<app>/<file> with exactly the file names Keyplane reads", () => {
    const config = one("ConfigMap", "keyplane-config").data;
    const mount = container.volumeMounts.find((m: any) => m.mountPath === config.GITHUB_APPS_DIR);
    expect(mount?.readOnly).toBe(true);
    const volume = pod.volumes.find((v: any) => v.name === mount.name);
    expect(volume.projected).toBeDefined();
    // Read as Kubernetes reads YAML (1.1): 0440 is octal, files readable by the pod's group (fsGroup).
    expect(volume.projected.defaultMode).toBe(0o440);
    // What the kubelet would write: every item of every source, at its path.
    const dir = mkdtempSync(path.join(tmpdir(), "keyplane-apps-"));
    try {
      const secrets = new Map(byKind("ExternalSecret").map((es) => [es.spec.target.name, es]));
      const slugs = one("ConfigMap", "keyplane-github-app-slugs").data;
      for (const source of volume.projected.sources) {
        for (const item of (source.secret ?? source.configMap).items) {
          const file = path.join(dir, item.path);
          mkdirSync(path.dirname(file), { recursive: true });
          if (source.configMap) {
            writeFileSync(file, slugs[item.key]);
            continue;
          }
          const es = secrets.get(source.secret.name);
          expect(es, `Secret ${source.secret.name} comes from an ExternalSecret`).toBeDefined();
          expect(es!.spec.data.map((d: any) => d.secretKey)).toContain(item.key);
          const app = item.path.split("/")[0];
          writeFileSync(
            file,
            item.key === "privateKey"
              ? generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" })
              : item.key === "appId"
                ? String(100 + APPS.indexOf(app))
                : randomBytes(16).toString("hex"),
          );
        }
      }
      const registry = loadGitHubApps({ dir }, { watch: false });
      try {
        expect(registry.names().sort()).toEqual([...APPS].sort());
        for (const app of APPS) expect(registry.get(app)).toMatchObject({ name: app, slug: slugs[app] });
      } finally {
        registry.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("is selected by its Service, PodDisruptionBudget, HorizontalPodAutoscaler and NetworkPolicy", () => {
    const labels = deployment.spec.template.metadata.labels;
    const service = one("Service", "keyplane");
    expect(matches(service.spec.selector, labels)).toBe(true);
    expect(container.ports.map((p: any) => p.name)).toContain(service.spec.ports[0].targetPort);
    const pdb = one("PodDisruptionBudget", "keyplane");
    expect(matches(pdb.spec.selector.matchLabels, labels)).toBe(true);
    expect(pdb.spec.minAvailable).toBeLessThan(deployment.spec.replicas);
    const hpa = one("HorizontalPodAutoscaler", "keyplane");
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: "Deployment", name: "keyplane" });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    const policy = one("NetworkPolicy", "keyplane");
    expect(matches(policy.spec.podSelector.matchLabels, labels)).toBe(true);
    expect(policy.spec.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(policy.spec.ingress.flatMap((r: any) => r.ports.map((p: any) => p.port))).toEqual([4000]);
    const egressPorts = policy.spec.egress.flatMap((r: any) => r.ports.map((p: any) => `${p.protocol}/${p.port}`));
    expect(egressPorts).toEqual(expect.arrayContaining(["UDP/53", "TCP/53", "TCP/5432", "TCP/6379", "TCP/443"]));
    // Workflow pods reach Keyplane: their label is one the policy admits.
    const clientLabel = policy.spec.ingress[0].from.find((f: any) => f.podSelector)?.podSelector.matchLabels;
    for (const wft of byKind("WorkflowTemplate")) expect(matches(clientLabel, wft.spec.podMetadata.labels)).toBe(true);
  });

  it("is migrated by a Job that runs `migrate` once with the same configuration", () => {
    const job = one("Job", "keyplane-migrate");
    const c = job.spec.template.spec.containers[0];
    expect(c.args).toEqual(["migrate"]);
    expect(c.image).toBe(container.image);
    expect(c.envFrom).toEqual(container.envFrom);
    expect(job.spec.template.spec.restartPolicy).toBe("Never");
    expect(job.spec.ttlSecondsAfterFinished).toBeGreaterThan(0);
    expect(one("ConfigMap", "keyplane-config").data.KEYPLANE_MIGRATE_ON_START).toBe("false");
  });
});

describe("External Secrets", () => {
  const store = one("SecretStore", "aws-secrets-manager");

  it("a SecretStore for AWS Secrets Manager, authenticated by an IRSA service account", () => {
    expect(store.spec.provider.aws).toMatchObject({ service: "SecretsManager", region: expect.any(String) });
    const sa = one("ServiceAccount", store.spec.provider.aws.auth.jwt.serviceAccountRef.name);
    expect(sa.metadata.annotations?.["eks.amazonaws.com/role-arn"]).toMatch(/^arn:aws:iam::\d{12}:role\/.+/);
  });

  it("one ExternalSecret per GitHub App, refreshed hourly, with the app's keys at /github-apps/<app>/…", () => {
    const apps = byKind("ExternalSecret").filter((es) => es.metadata.labels?.["app.kubernetes.io/component"] === "github-app");
    expect(apps.map((es) => es.metadata.name).sort()).toEqual(APPS.map((a) => `github-app-${a}`).sort());
    for (const app of APPS) {
      const es = one("ExternalSecret", `github-app-${app}`);
      expect(es.spec.refreshInterval).toBe("1h");
      expect(es.spec.secretStoreRef).toEqual({ kind: "SecretStore", name: store.metadata.name });
      expect(es.spec.target).toMatchObject({ name: `github-app-${app}`, creationPolicy: "Owner" });
      const keys = Object.fromEntries(es.spec.data.map((d: any) => [d.secretKey, d.remoteRef.key]));
      expect(keys).toMatchObject({ appId: `/github-apps/${app}/appId`, privateKey: `/github-apps/${app}/privateKey` });
      // Keyplane also requires the webhook secret among mounted files (src/github/appRegistry.ts).
      expect(keys).toEqual({
        appId: `/github-apps/${app}/appId`,
        privateKey: `/github-apps/${app}/privateKey`,
        webhookSecret: `/github-apps/${app}/webhookSecret`,
      });
    }
  });
});

describe("RBAC for workflows", () => {
  it("a Role allows `get` on exactly the five app secrets by name, bound to the direct-mode workflows' ServiceAccount", () => {
    const secretRules = byKind("Role").flatMap((role) =>
      role.rules.filter((r: any) => r.resources.includes("secrets") || r.resources.includes("*")).map((rule: any) => ({ role, rule })),
    );
    expect(secretRules).toHaveLength(1);
    const { role, rule } = secretRules[0]!;
    expect(rule.apiGroups).toEqual([""]);
    expect(rule.resources).toEqual(["secrets"]);
    expect(rule.verbs).toEqual(["get"]);
    expect([...rule.resourceNames].sort()).toEqual(APPS.map((a) => `github-app-${a}`).sort());
    // The names are those of the Secrets the ExternalSecrets create.
    for (const name of rule.resourceNames) expect(byKind("ExternalSecret").some((es) => es.spec.target.name === name)).toBe(true);
    const bindings = byKind("RoleBinding").filter((b) => b.roleRef.kind === "Role" && b.roleRef.name === role.metadata.name);
    expect(bindings).toHaveLength(1);
    expect(bindings[0]!.subjects).toEqual([{ kind: "ServiceAccount", name: "keyplane-workflows-direct", namespace: kustomization(K8S).namespace }]);
    one("ServiceAccount", "keyplane-workflows-direct");
    // No ClusterRole or other rule reaches secrets.
    expect(byKind("ClusterRole")).toEqual([]);
    expect(byKind("ClusterRoleBinding")).toEqual([]);
  });

  it("the ServiceAccount the WorkflowTemplates run as (brokered) may read no Secret, only what Argo's executor needs", () => {
    const account = "keyplane-workflows";
    for (const wft of byKind("WorkflowTemplate")) expect(wft.spec.serviceAccountName, wft.metadata.name).toBe(account);
    const rules = byKind("RoleBinding")
      .filter((b) => b.subjects.some((s: any) => s.kind === "ServiceAccount" && s.name === account))
      .flatMap((b) => one("Role", b.roleRef.name).rules);
    expect(rules).toEqual([{ apiGroups: ["argoproj.io"], resources: ["workflowtaskresults"], verbs: ["create", "patch"] }]);
  });
});

describe("Argo WorkflowTemplates", () => {
  const brokered = one("WorkflowTemplate", "github-token");
  const watch = one("WorkflowTemplate", "github-token-watch");
  const substitute = (arg: string, wft: K8sObject) =>
    arg.replace(/\{\{(?:inputs|workflow)\.parameters\.(\w+)\}\}/g, (_, name) => wft.spec.arguments.parameters.find((p: any) => p.name === name).value);
  const writerArgs = (c: any, wft: K8sObject) => {
    expect(c.args[0]).toBe("github-token");
    return parseGitHubTokenArgs(c.args.slice(1).map((a: string) => substitute(a, wft)));
  };

  it("take a githubApp parameter naming one of the five apps, and run as the workflows' ServiceAccount", () => {
    for (const wft of [brokered, watch]) {
      const param = wft.spec.arguments.parameters.find((p: any) => p.name === "githubApp");
      expect(param.enum).toEqual(APPS);
      expect(APPS).toContain(param.value);
      expect(wft.spec.serviceAccountName).toBe("keyplane-workflows");
      expect(argo.every((o) => o.metadata.namespace === undefined)).toBe(true);
      expect(kustomization(ARGO).namespace).toBe(kustomization(K8S).namespace);
    }
  });

  it("github-token: an initContainer writes /var/run/github/token in brokered mode into an emptyDir the main container reads", () => {
    const main = brokered.spec.templates.find((t: any) => t.name === brokered.spec.entrypoint);
    expect(main.initContainers).toHaveLength(1);
    const init = main.initContainers[0];
    const options = writerArgs(init, brokered);
    expect(options.output).toBe("/var/run/github/token");
    expect(options.watch).toBe(false);
    expect(options.spec.app).toBe(brokered.spec.arguments.parameters.find((p: any) => p.name === "githubApp").value);
    // Brokered: a Keyplane URL and a service token from a Secret volume; Keyplane's Service in the k8s kustomization.
    expect(options.brokered?.keyplaneUrl).toBe(`http://keyplane.${kustomization(K8S).namespace}.svc.cluster.local/`);
    expect(one("Service", "keyplane").spec.ports[0].port).toBe(80);
    const tokenMount = init.volumeMounts.find((m: any) => options.brokered!.tokenFile.startsWith(m.mountPath + "/"));
    const tokenVolume = brokered.spec.volumes.find((v: any) => v.name === tokenMount.name);
    expect(tokenVolume.secret.secretName).toBe("keyplane-workflow-token");
    expect(tokenMount.readOnly).toBe(true);
    // The token's directory: an emptyDir shared with the main container.
    const outMount = init.volumeMounts.find((m: any) => m.mountPath === "/var/run/github");
    expect(brokered.spec.volumes.find((v: any) => v.name === outMount.name).emptyDir).toBeDefined();
    expect(main.container.volumeMounts).toEqual(expect.arrayContaining([{ name: outMount.name, mountPath: "/var/run/github", readOnly: true }]));
    const script = [...(main.container.command ?? []), ...(main.container.args ?? [])].join("\n");
    expect(script).toContain("gh auth status");
    expect(script).toContain("git");
    expect(script).toContain("ls-remote");
    expect(script).toContain("/var/run/github/token");
    // The writer's file is 0600: the job reads it as the same user.
    expect(brokered.spec.securityContext.runAsUser).toBe(65532);
  });

  it("github-token-watch: the same first token, then a sidecar in --watch mode with its health port", () => {
    const main = watch.spec.templates.find((t: any) => t.name === watch.spec.entrypoint);
    expect(writerArgs(main.initContainers[0], watch).watch).toBe(false);
    expect(main.sidecars).toHaveLength(1);
    const sidecar = main.sidecars[0];
    const options = writerArgs(sidecar, watch);
    expect(options.watch).toBe(true);
    expect(options.output).toBe("/var/run/github/token");
    expect(options.brokered).toBeDefined();
    expect(sidecar.livenessProbe.httpGet.path).toBe("/healthz");
    expect(sidecar.ports.find((p: any) => p.name === sidecar.livenessProbe.httpGet.port).containerPort).toBe(options.healthPort);
  });

  it("name the keyplane image only where the kustomization's image edit reaches (so `images:` pins it)", () => {
    const config = readYaml(`${ARGO}/kustomizeconfig.yaml`)[0] as { images: Array<{ kind: string; path: string }> };
    const paths = new Set(config.images.filter((i) => i.kind === "WorkflowTemplate").map((i) => i.path));
    const found: string[] = [];
    const walk = (value: unknown, at: string) => {
      if (Array.isArray(value)) value.forEach((v) => walk(v, `${at}[]`));
      else if (value && typeof value === "object") for (const [k, v] of Object.entries(value)) walk(v, at ? `${at}/${k}` : k);
      else if (value === "keyplane" && at.endsWith("/image")) found.push(at);
    };
    for (const wft of [brokered, watch]) walk(wft, "");
    expect(found.length).toBeGreaterThanOrEqual(3);
    for (const at of found) expect(paths, at).toContain(at);
    expect(kustomization(ARGO).images).toEqual(kustomization(K8S).images);
  });

  it("hold no GitHub App key: no app secret, no GITHUB_APP_* variable, no GITHUB_APPS_DIR in a workflow pod", () => {
    const text = JSON.stringify(argo);
    expect(text).not.toMatch(/github-app-(rex|clippy|qa|triage|security)/);
    expect(text).not.toMatch(/GITHUB_APP/);
    for (const wft of [brokered, watch]) {
      const secrets = [...(wft.spec.volumes ?? []), ...wft.spec.templates.flatMap((t: any) => t.volumes ?? [])]
        .filter((v: any) => v.secret)
        .map((v: any) => v.secret.secretName);
      expect(secrets).toEqual(["keyplane-workflow-token"]);
    }
  });
});

describe("docker-compose.yml", () => {
  const compose = readYaml("docker-compose.yml")[0] as any;
  const services = compose.services;

  it("runs PostgreSQL, Redis, a one-shot migrate, two Keyplane replicas and a reverse proxy", () => {
    expect(Object.keys(services).sort()).toEqual(["keyplane-1", "keyplane-2", "migrate", "postgres", "proxy", "redis"]);
    expect(services.migrate.command).toEqual(["migrate"]);
    expect(services.migrate.restart).toBe("no");
    for (const name of ["keyplane-1", "keyplane-2"]) {
      const s = services[name];
      expect(s.command).toEqual(["serve"]);
      expect(s.build.dockerfile).toBe("ops/Dockerfile");
      expect(s.ports).toBeUndefined(); // reached through the proxy only
      expect(s.volumes.map((v: string) => v.split(":")[1])).toEqual(["/var/lib/keyplane"]);
      expect(s.environment.DATABASE_URL).toMatch(/^postgres:\/\/keyplane:\$\{KEYPLANE_DB_PASSWORD:\?/);
      expect(s.environment.REDIS_URL).toMatch(/^redis:\/\/:\$\{REDIS_PASSWORD:\?[^}]*\}@redis:6379$/);
      // nginx's X-Forwarded-For is believed: the valid setting of the compose network's ranges.
      expect(loadConfig({ TRUSTED_PROXIES: s.environment.TRUSTED_PROXIES }).trustedProxies.length).toBeGreaterThan(0);
    }
    // Each replica has its own data volume.
    expect(services["keyplane-1"].volumes[0].split(":")[0]).not.toBe(services["keyplane-2"].volumes[0].split(":")[0]);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: compose's own ${VAR:-default} syntax, checked as written
    expect(services.proxy.ports).toEqual(["${KEYPLANE_PORT:-4000}:8080"]);
  });

  it("has healthchecks, and starts each service once what it needs is healthy or done", () => {
    for (const name of ["postgres", "redis", "keyplane-1", "keyplane-2", "proxy"]) expect(services[name].healthcheck?.test, name).toBeDefined();
    expect(services.postgres.healthcheck.test.join(" ")).toContain("pg_isready");
    expect(services.redis.healthcheck.test.join(" ")).toContain("ping");
    expect(services.migrate.healthcheck).toEqual({ disable: true });
    // The replicas' check is the image's own script, asked for readiness.
    for (const name of ["keyplane-1", "keyplane-2"]) {
      expect(services[name].healthcheck.test).toEqual(["CMD", "/nodejs/bin/node", "/app/ops/healthcheck.mjs"]);
      expect(services[name].environment.HEALTHCHECK_PATH).toBe("/readyz");
    }
    expect(services.migrate.depends_on).toEqual({ postgres: { condition: "service_healthy" } });
    const server = {
      postgres: { condition: "service_healthy" },
      redis: { condition: "service_healthy" },
      migrate: { condition: "service_completed_successfully" },
    };
    expect(services["keyplane-1"].depends_on).toEqual(server);
    expect(services["keyplane-2"].depends_on).toEqual({ ...server, "keyplane-1": { condition: "service_healthy" } });
    expect(services.proxy.depends_on).toEqual({ "keyplane-1": { condition: "service_healthy" }, "keyplane-2": { condition: "service_healthy" } });
    // Every dependency is a service of the file.
    for (const s of Object.values(services) as any[]) for (const dep of Object.keys(s.depends_on ?? {})) expect(services[dep]).toBeDefined();
  });

  it("runs Keyplane as in Kubernetes: read-only root, its user, no capabilities", () => {
    for (const name of ["migrate", "keyplane-1", "keyplane-2"]) {
      expect(services[name]).toMatchObject({ read_only: true, user: "65532:65532", cap_drop: ["ALL"], security_opt: ["no-new-privileges:true"] });
      expect(services[name].tmpfs[0]).toMatch(/^\/tmp/);
    }
  });

  it("takes secrets from an env file that is never committed", () => {
    for (const name of ["migrate", "keyplane-1", "keyplane-2"]) expect(services[name].env_file).toBe(".env");
    expect(readFileSync(path.join(ROOT, ".gitignore"), "utf8").split("\n")).toContain(".env");
    expect(existsSync(path.join(ROOT, ".env.example"))).toBe(true);
    const example = readFileSync(path.join(ROOT, ".env.example"), "utf8");
    expect(example).not.toMatch(/^[A-Z_]*(KEY|KEYS)=.*BEGIN/m);
    expect(example).toMatch(/^REDIS_PASSWORD=/m);
    const text = readFileSync(path.join(ROOT, "docker-compose.yml"), "utf8");
    expect(text).not.toMatch(/BEGIN [A-Z ]*PRIVATE KEY/);
    // Passwords only by reference.
    expect(text).not.toMatch(/PASSWORD:\s+[^$\s]/);
  });

  it("proxies both replicas, with WebSocket upgrades on /graphql", () => {
    const mount = services.proxy.volumes[0].split(":");
    const conf = readFileSync(path.join(ROOT, mount[0]), "utf8");
    const upstream = /upstream keyplane \{([\s\S]*?)\}/.exec(conf)![1]!;
    const servers = [...upstream.matchAll(/server\s+([\w.-]+):(\d+)/g)].map((m) => `${m[1]}:${m[2]}`);
    expect(servers).toEqual(["keyplane-1:4000", "keyplane-2:4000"]);
    const graphql = /location = \/graphql \{([\s\S]*?)\n {4}\}/.exec(conf)![1]!;
    expect(graphql).toContain("proxy_pass http://keyplane;");
    expect(graphql).toMatch(/proxy_set_header Upgrade \$http_upgrade;/);
    expect(graphql).toMatch(/proxy_set_header Connection \$connection_upgrade;/);
    expect(conf).toMatch(/map \$http_upgrade \$connection_upgrade/);
    expect(graphql).toMatch(/proxy_http_version 1\.1;|/);
    expect(conf).toMatch(/proxy_http_version 1\.1;/);
    expect(conf).toMatch(/listen 8080;/);
    expect(services.proxy.healthcheck.test.join(" ")).toContain("8080/proxy-health");
  });
});

describe("monitoring", () => {
  const known = (async () => {
    const names = new Set<string>();
    for (const metric of await createMetrics({ defaultMetrics: true }).registry.getMetricsAsJSON()) {
      names.add(metric.name);
      if (String(metric.type) === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(metric.name + suffix);
    }
    return names;
  })();
  const metricsIn = (expr: string) => [...expr.matchAll(/\b(keyplane_[a-z0-9_]+)/g)].map((m) => m[1]!);

  it("every alert has a severity and a summary, and names only metrics Keyplane exports", async () => {
    const names = await known;
    const file = readYaml("ops/prometheus/alerts.yaml")[0] as any;
    const rules = file.groups.flatMap((g: any) => g.rules);
    const alerts = rules.map((r: any) => r.alert);
    expect(alerts).toEqual(
      expect.arrayContaining([
        "KeyplaneInstanceDown",
        "KeyplaneGitHubTokenFailures",
        "KeyplaneRateLimitRejectionSpike",
        "KeyplaneAuditCheckpointOverdue",
        "KeyplaneLiveEventLag",
        "KeyplaneLogStreamRefused",
        "KeyplaneLogStreamLagging",
      ]),
    );
    expect(new Set(alerts).size).toBe(alerts.length);
    for (const rule of rules) {
      expect(["critical", "warning", "info"], rule.alert).toContain(rule.labels.severity);
      expect(rule.annotations.summary, rule.alert).toBeTruthy();
      expect(rule.for, rule.alert).toMatch(/^\d+[smh]$/);
      for (const metric of metricsIn(rule.expr)) expect(names, `${rule.alert}: ${metric}`).toContain(metric);
      // Balanced parentheses and braces: a cheap guard against a broken expression.
      for (const [open, close] of [
        ["(", ")"],
        ["{", "}"],
        ["[", "]"],
      ])
        expect(rule.expr.split(open).length, rule.alert).toBe(rule.expr.split(close).length);
    }
  });

  it("the Grafana dashboard's panels query only metrics Keyplane exports", async () => {
    const names = await known;
    const dashboard = JSON.parse(readFileSync(path.join(ROOT, "ops/grafana/keyplane.json"), "utf8"));
    expect(dashboard).toMatchObject({ uid: "keyplane-overview", title: "Keyplane" });
    const targets = dashboard.panels.flatMap((p: any) => p.targets ?? []);
    expect(targets.length).toBeGreaterThan(20);
    const used = new Set(targets.flatMap((t: any) => metricsIn(t.expr)));
    for (const metric of used) expect(names, metric as string).toContain(metric);
    for (const wanted of [
      "keyplane_http_requests_total",
      "keyplane_graphql_operations_total",
      "keyplane_event_appends_total",
      "keyplane_db_pool_connections",
      "keyplane_rate_limit_rejections_total",
      "keyplane_github_token_issues_total",
      "keyplane_live_subscribers",
    ]) {
      expect(used).toContain(wanted);
    }
    const ids = dashboard.panels.map((p: any) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("ops/README.md", () => {
  it("has the runbooks", () => {
    const text = readFileSync(path.join(ROOT, "ops/README.md"), "utf8");
    const headings = [...text.matchAll(/^### (.+)$/gm)].map((m) => m[1]);
    expect(headings).toEqual(
      expect.arrayContaining([
        "First install",
        "Upgrade with migrations and zero downtime",
        "Rotating a GitHub App private key",
        "Rotating the encryption keyring (`KEYPLANE_ENCRYPTION_KEYS`)",
        "Rotating Keyplane's signing key (`KEYPLANE_SIGNING_KEY`)",
        "Suspected token leak",
        "Restoring from backup and re-verifying the audit chain",
        "Scaling out",
      ]),
    );
    // The commands and mutations they name exist.
    for (const name of ["suspendInstallation", "revokeInstallation", "revokeGitHubToken", "issuedTokens", "verifyAuditLog", "revokeAccessToken"])
      expect(text).toContain(name);
    const schema = readFileSync(path.join(ROOT, "schema/schema.graphql"), "utf8");
    for (const field of [
      "suspendInstallation(",
      "revokeInstallation(",
      "revokeGitHubToken(",
      "issuedTokens(",
      "verifyAuditLog",
      "revokeAccessToken(",
      "setTokenPolicy(",
      "issueServiceToken(",
    ])
      expect(schema).toContain(field);
  });
});
