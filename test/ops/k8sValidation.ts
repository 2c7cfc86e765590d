import { readFileSync } from "node:fs";
import path from "node:path";
import { Ajv, type AnySchema, type ValidateFunction } from "ajv";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { Job } from "kubernetes-models/batch/v1/Job";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Container } from "kubernetes-models/v1/Container";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { PodSecurityContext } from "kubernetes-models/v1/PodSecurityContext";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { Volume } from "kubernetes-models/v1/Volume";
import { ROOT } from "./opsFiles.ts";

// Kubernetes objects are checked against the API's own OpenAPI schemas (kubernetes-models compiles
// them into validators); custom resources against their CRDs' openAPIV3Schema, vendored in
// test/ops/schemas and checked with ajv.

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: any;
}

type Model = new (data: any) => { validate(): void };

const CORE: Record<string, Model> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "batch/v1/Job": Job,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
};

const CRDS: Record<string, string> = {
  "external-secrets.io/v1/SecretStore": "external-secrets.io_v1_SecretStore.json",
  "external-secrets.io/v1/ExternalSecret": "external-secrets.io_v1_ExternalSecret.json",
  "argoproj.io/v1alpha1/WorkflowTemplate": "argoproj.io_v1alpha1_WorkflowTemplate.json",
};

const DNS_1123_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * A CRD schema as the API server applies it with strict field validation: an object that lists its
 * properties (and does not preserve unknown fields) accepts no other field. The vendored data stays
 * as the CRD has it; this is done here.
 */
export function strictStructural(schema: any): any {
  if (Array.isArray(schema)) return schema.map(strictStructural);
  if (!schema || typeof schema !== "object") return schema;
  const out: any = {};
  for (const [k, v] of Object.entries(schema)) out[k] = k === "default" || k === "enum" ? v : strictStructural(v);
  if (out.type === "object" && out.properties && !out["x-kubernetes-preserve-unknown-fields"] && out.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

function createAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false });
  ajv.addKeyword({ keyword: "x-kubernetes-preserve-unknown-fields" });
  ajv.addKeyword({ keyword: "x-kubernetes-map-type" });
  ajv.addKeyword({
    keyword: "x-kubernetes-int-or-string",
    schemaType: "boolean",
    validate: (on: boolean, data: unknown) => !on || typeof data === "string" || Number.isInteger(data),
    errors: false,
  });
  ajv.addFormat("int32", { type: "number", validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat("int64", { type: "number", validate: (n: number) => Number.isSafeInteger(n) });
  return ajv;
}

const ajv = createAjv();
const compiled = new Map<string, ValidateFunction>();

export function crdSchema(key: string): AnySchema {
  const file = CRDS[key];
  if (!file) throw new Error(`no vendored schema for ${key}`);
  const { $comment: _comment, ...schema } = JSON.parse(readFileSync(path.join(ROOT, "test/ops/schemas", file), "utf8"));
  return schema as AnySchema;
}

/** The problems of one object (empty when valid): its schema, and what every object needs. */
export function validateObject(object: K8sObject): string[] {
  const problems: string[] = [];
  if (!object.metadata?.name || !DNS_1123_NAME.test(object.metadata.name) || object.metadata.name.length > 253) problems.push(`metadata.name '${object.metadata?.name}' is not a DNS-1123 name`);
  const key = `${object.apiVersion}/${object.kind}`;
  const model = CORE[key];
  if (model) {
    try {
      new model(object).validate();
    } catch (error) {
      problems.push((error as Error).message);
    }
  } else if (CRDS[key]) {
    let validate = compiled.get(key);
    if (!validate) {
      validate = ajv.compile(strictStructural(crdSchema(key)));
      compiled.set(key, validate);
    }
    if (!validate(object)) problems.push(...(validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}${e.params && "additionalProperty" in e.params ? ` (${e.params.additionalProperty})` : ""}`));
  } else {
    problems.push(`no schema for ${key}`);
  }
  return problems;
}

/** The Kubernetes core types Argo embeds (containers, volumes, the pod security context), checked against their own schemas. */
export function validateCoreType(kind: "Container" | "Volume" | "PodSecurityContext", value: unknown): string[] {
  const model = { Container, Volume, PodSecurityContext }[kind] as Model;
  try {
    new model(value).validate();
    return [];
  } catch (error) {
    return [`${kind}: ${(error as Error).message}`];
  }
}
