import {readdir, rm, stat} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {parseEnv} from 'node:util'

import {UsageError} from '../../errors.js'
import {loadManifest} from '../../manifest/load.js'
import {djangoServices, secretKeyVariable, usesAuth} from '../../manifest/model.js'
import type {Manifest} from '../../manifest/schema.js'
import {PROJECT_PATHS} from '../../manifest/stack.js'
import {renderGateway, type ClusterTarget} from '../../render/gateway.js'
import type {PlannedFile} from '../../render/plan.js'
import {readFileIfExists, statIfExists, writePlan} from '../../util/files.js'
import {
  ACME_SOLVER,
  ACME_SOLVER_PORT,
  CLUSTER_DOMAIN,
  GATEWAY_CONTAINER_PORTS,
  WRITABLE_DIR,
  type ExportContext,
  type KubernetesOptions,
  type SecretMaterial,
} from './model.js'
import {kubernetesOptions, type KubernetesFlags} from './options.js'
import {HEADER, KUSTOMIZATION_FILE, renderKubernetes} from './registry.js'
import {GATEWAY_AUTH_FILES} from './secret.js'

export type FileStatus = 'created' | 'changed' | 'unchanged' | 'removed'

export interface KubernetesExportResult {
  out: string
  namespace: string
  files: Array<{path: string; status: FileStatus}>
}

/** How soon the gateway sees a new or removed replica: CoreDNS answers with a 5 s TTL for pods. */
const RESOLVER_VALID = '5s'

export function clusterTarget(manifest: Manifest, options: KubernetesOptions): ClusterTarget {
  return {
    namespace: options.namespace,
    clusterDomain: CLUSTER_DOMAIN,
    resolver: options.resolver,
    resolverValid: RESOLVER_VALID,
    ports: GATEWAY_CONTAINER_PORTS,
    publicPorts: {http: 80, https: 443},
    workerProcesses: 2,
    writableDir: WRITABLE_DIR,
    ...(manifest.tls.mode === 'certbot'
      ? {acmeSolver: `http://${ACME_SOLVER}.${options.namespace}.svc.${CLUSTER_DOMAIN}:${ACME_SOLVER_PORT}`}
      : {}),
  }
}

async function requiredFile(dir: string, path: string, why: string): Promise<string> {
  const content = await readFileIfExists(join(dir, path))
  if (content === undefined) {
    throw new UsageError(`${path} is missing (${why})`, {
      hint: 'Run `create-gateway render` in the project to write it, then export again.',
    })
  }

  return content.toString('utf8')
}

/**
 * The project's secrets from disk, never generated here: the cluster must accept the credentials the
 * project already hands out, and the export must come out the same on every run.
 */
export async function readSecretMaterial(dir: string, manifest: Manifest): Promise<SecretMaterial> {
  const env = parseEnv(await requiredFile(dir, PROJECT_PATHS.env, "the Django services' SECRET_KEY"))
  const secretKeys: Record<string, string> = {}
  for (const service of djangoServices(manifest)) {
    const variable = secretKeyVariable(service.name)
    const value = env[variable]
    if (!value) {
      throw new UsageError(`${PROJECT_PATHS.env} has no ${variable} (service "${service.name}")`, {
        hint: 'Run `create-gateway render` in the project to add it, then export again.',
      })
    }

    secretKeys[service.name] = value
  }

  // Only what the routes use, under the names the gateway reads them by in /etc/nginx/secrets/.
  const gatewayAuth: Record<string, string> = {}
  for (const file of GATEWAY_AUTH_FILES) {
    if (usesAuth(manifest, file.mode))
      gatewayAuth[file.key] = await requiredFile(dir, file.source, `a route uses ${file.mode} auth`)
  }

  const certificate =
    manifest.tls.mode === 'self-signed'
      ? {
          chain: await requiredFile(dir, `${PROJECT_PATHS.certs}/fullchain.pem`, 'tls.mode is self-signed'),
          key: await requiredFile(dir, `${PROJECT_PATHS.certs}/privkey.pem`, 'tls.mode is self-signed'),
        }
      : undefined
  return {secretKeys, gatewayAuth, ...(certificate ? {certificate} : {})}
}

/** Everything the resource builders need; reads the project, writes nothing. */
export async function loadExportContext(dir: string, flags: KubernetesFlags): Promise<ExportContext> {
  const manifest = await loadManifest(dir)
  const options = kubernetesOptions(manifest, flags)
  const cluster = clusterTarget(manifest, options)
  return {
    manifest,
    options,
    secrets: await readSecretMaterial(resolve(dir), manifest),
    gatewayFiles: await renderGateway(manifest, cluster),
  }
}

/**
 * --out must be a folder of its own: absent, empty, or an earlier export (its kustomization.yaml
 * carries our header). Anything else would mix the user's files with ours, or overwrite them.
 */
async function checkOut(out: string, project: string): Promise<string[]> {
  if (out === project) throw new UsageError('--out: give the export a folder of its own, not the project folder')
  const info = await statIfExists(out)
  if (info === undefined) return []
  if (!info.isDirectory()) throw new UsageError(`--out: ${out} is a file, not a folder`)
  const entries = await readdir(out)

  if (entries.length === 0) return entries
  const kustomization = (await readFileIfExists(join(out, KUSTOMIZATION_FILE)))?.toString('utf8')
  if (!kustomization?.startsWith(HEADER))
    throw new UsageError(`--out: ${out} is not empty and holds no earlier export`, {
      hint: 'Choose a new folder, or the folder an earlier `export kubernetes` wrote.',
    })
  return entries
}

async function fileStatus(out: string, file: PlannedFile): Promise<FileStatus> {
  const path = join(out, file.path)
  const existing = await readFileIfExists(path)
  if (existing === undefined) return 'created'
  if (!existing.equals(Buffer.from(file.content))) return 'changed'
  // A Secret left world-readable is written again with its mode.
  return ((await stat(path)).mode & 0o777) === (file.mode ?? 0o644) ? 'unchanged' : 'changed'
}

/**
 * `create-gateway export kubernetes`: the project as kustomize-ready manifests in `out`. Only the files
 * whose bytes differ are written (atomically, Secrets 0600); files of an earlier export that the project
 * no longer has (a removed service) are deleted. Returns what happened to each file.
 */
export async function exportKubernetes(
  dir: string,
  out: string,
  flags: KubernetesFlags = {},
): Promise<KubernetesExportResult> {
  const target = resolve(out)
  const context = await loadExportContext(dir, flags)
  const entries = await checkOut(target, resolve(dir))
  const plan = renderKubernetes(context)

  const files: KubernetesExportResult['files'] = []
  const changed: PlannedFile[] = []
  for (const file of plan) {
    const status = await fileStatus(target, file)
    files.push({path: file.path, status})
    if (status !== 'unchanged') changed.push(file)
  }

  await writePlan(target, changed, {update: true})

  const planned = new Set(plan.map((file) => file.path))
  for (const entry of entries.sort()) {
    if (planned.has(entry) || !entry.endsWith('.yaml')) continue
    const content = (await readFileIfExists(join(target, entry)))?.toString('utf8')
    if (!content?.startsWith(HEADER)) continue
    await rm(join(target, entry))
    files.push({path: entry, status: 'removed'})
  }

  return {out: target, namespace: context.options.namespace, files}
}
