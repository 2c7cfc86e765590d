import { WorkflowTemplate } from "@kubernetes-models/argo-workflows/argoproj.io/v1alpha1/WorkflowTemplate";
import { ExternalSecret } from "@kubernetes-models/external-secrets/external-secrets.io/v1/ExternalSecret";
import { SecretStore } from "@kubernetes-models/external-secrets/external-secrets.io/v1/SecretStore";
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

// Every object is checked with the validators of the kubernetes-models-ts project: Kubernetes kinds
// against the API's own OpenAPI schemas (kubernetes-models), the custom resources against schemas
// generated from the projects' Go API types and their validation markers, which their CRDs are
// generated from too (@kubernetes-models/external-secrets, @kubernetes-models/argo-workflows).
// Like the CRDs, those schemas accept fields they do not list (the API server prunes them), so a
// misspelt optional field is not caught here.

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: any;
}

type Model = new (data: any) => { validate(): void };

const MODELS: Record<string, Model> = {
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
  "external-secrets.io/v1/SecretStore": SecretStore,
  "external-secrets.io/v1/ExternalSecret": ExternalSecret,
  "argoproj.io/v1alpha1/WorkflowTemplate": WorkflowTemplate,
};

const DNS_1123_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The problems of one object (empty when valid): its schema, and what every object needs. */
export function validateObject(object: K8sObject): string[] {
  const problems: string[] = [];
  if (!object.metadata?.name || !DNS_1123_NAME.test(object.metadata.name) || object.metadata.name.length > 253)
    problems.push(`metadata.name '${object.metadata?.name}' is not a DNS-1123 name`);
  const key = `${object.apiVersion}/${object.kind}`;
  const model = MODELS[key];
  if (model) {
    try {
      new model(object).validate();
    } catch (error) {
      problems.push((error as Error).message);
    }
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
