import {spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'

import {Certificate} from '@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate'
import {Issuer} from '@kubernetes-models/cert-manager/cert-manager.io/v1/Issuer'
import {Deployment} from 'kubernetes-models/apps/v1/Deployment'
import {NetworkPolicy} from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy'
import {PodDisruptionBudget} from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import {ConfigMap} from 'kubernetes-models/v1/ConfigMap'
import {Namespace} from 'kubernetes-models/v1/Namespace'
import {Secret} from 'kubernetes-models/v1/Secret'
import {Service} from 'kubernetes-models/v1/Service'

/**
 * The Kubernetes API's own OpenAPI schemas, as the kubernetes-models packages ship them (compiled with
 * ajv), for every kind the export writes. A kind missing here fails the test rather than passing
 * unchecked.
 */
const MODELS: Record<string, new (data: never) => {validate(): void}> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'cert-manager.io/v1/Issuer': Issuer,
  'cert-manager.io/v1/Certificate': Certificate,
}

/** Throws with the schema's own message when the document does not validate. */
export function validateAgainstSchema(document: {apiVersion?: string; kind?: string}): void {
  const key = `${document.apiVersion}/${document.kind}`
  const Model = MODELS[key]
  if (!Model) throw new Error(`no schema for ${key}: add its model to test/helpers/kubernetes.ts`)
  new Model(structuredClone(document) as never).validate()
}

/**
 * kubectl for `kubectl kustomize`: $KUBECTL, else the one on PATH. Absent, the test fails and says how
 * to install it (Debian's forky suite has kubectl; .ci/run installs it).
 */
export function findKubectl(): string {
  const candidate = process.env.KUBECTL ?? 'kubectl'
  const probe = spawnSync(candidate, ['version', '--client'], {encoding: 'utf8'})
  if (probe.status === 0) return candidate
  const where =
    process.env.KUBECTL && !existsSync(process.env.KUBECTL) ? ` (${process.env.KUBECTL} does not exist)` : ''
  throw new Error(
    `kubectl not found${where}: install it (Debian forky's kubectl package, as .ci/run does) or set KUBECTL`,
  )
}
