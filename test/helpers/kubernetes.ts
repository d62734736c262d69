import {execFile} from 'node:child_process'
import {existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'

import {parse} from 'yaml'

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
export async function findKubectl(): Promise<string> {
  const candidate = process.env.KUBECTL ?? 'kubectl'
  const probe = await runProgram(candidate, ['version', '--client'], 60_000)
  if (probe.status === 0) return candidate
  const where =
    process.env.KUBECTL && !existsSync(process.env.KUBECTL) ? ` (${process.env.KUBECTL} does not exist)` : ''
  throw new Error(
    `kubectl not found${where}: install it (Debian forky's kubectl package, as .ci/run does) or set KUBECTL`,
  )
}

/** A document of an export, read back as plain YAML. */
export type KubeDoc = any

/** Every resource file of an export folder, parsed (kustomization.yaml left out). */
export function exportDocuments(dir: string): KubeDoc[] {
  return readdirSync(dir)
    .filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml')
    .sort()
    .map((file) => parse(readFileSync(join(dir, file), 'utf8')))
}

/**
 * `docker run` arguments that run the exported gateway as its Deployment runs it: the ConfigMap and
 * Secrets laid out under `tree` where the pod's volumes mount them, the pod's user, a read-only root
 * with only /tmp writable, every capability dropped. Plus `--add-host` for the cluster DNS names.
 */
export function gatewayPodArgs(docs: KubeDoc[], tree: string, hosts: string[]): string[] {
  const deployment = docs.find((doc) => doc.kind === 'Deployment' && doc.metadata.name === 'gateway')
  const pod = deployment.spec.template.spec
  const [container] = pod.containers
  const configMap = docs.find((doc) => doc.kind === 'ConfigMap').data
  const mounts: string[] = []
  for (const mount of container.volumeMounts) {
    const volume = pod.volumes.find((entry: KubeDoc) => entry.name === mount.name)
    const source = volume.configMap ?? volume.secret
    if (volume.emptyDir) {
      mounts.push('--tmpfs', `${mount.mountPath}:uid=${pod.securityContext.runAsUser}`)
      continue
    }

    const secret = volume.secret && docs.find((doc) => doc.kind === 'Secret' && doc.metadata.name === source.secretName)
    // An optional Secret that does not exist yet (cert-manager's, before issuance): an empty folder.
    if (!mount.subPath) mkdirSync(join(tree, mount.mountPath), {recursive: true})
    for (const item of volume.secret && !secret && volume.secret.optional ? [] : source.items) {
      if (mount.subPath && item.path !== mount.subPath) continue
      const content = secret ? Buffer.from(secret.data[item.key], 'base64') : configMap[item.key]
      const target = join(tree, mount.mountPath, mount.subPath ? '' : item.path)
      mkdirSync(dirname(target), {recursive: true})
      // 0644 stands in for the pod's fsGroup: the container's user reads them, as in the pod.
      writeFileSync(target, content, {mode: 0o644})
    }

    mounts.push('-v', `${join(tree, mount.mountPath)}:${mount.mountPath}:ro`)
  }

  return [
    '--read-only',
    '--user',
    `${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`,
    '--cap-drop',
    'ALL',
    '--security-opt',
    'no-new-privileges',
    ...hosts.flatMap((host) => ['--add-host', `${host}:127.0.0.1`]),
    ...mounts,
  ]
}

/**
 * Run a program without blocking the test worker (a synchronous spawn of a slow `docker run` can keep
 * it from answering vitest in time on a loaded machine).
 */
export function runProgram(
  command: string,
  args: string[],
  timeoutMs = 120_000,
): Promise<{status: number | null; stdout: string; stderr: string}> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      {encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024},
      (error, stdout, stderr) => {
        const code = error && typeof error.code === 'number' ? error.code : error ? null : 0
        resolve({status: code, stdout, stderr: stderr || (error && code === null ? error.message : '')})
      },
    )
  })
}
