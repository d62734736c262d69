import {readFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import {parseDocument} from 'yaml'

import type {ContainerState} from '../docker/engine.js'
import {UsageError} from '../errors.js'
import {MANIFEST_FILE, parseManifest} from '../manifest/load.js'
import type {Manifest} from '../manifest/schema.js'
import {upstreamName} from '../manifest/model.js'
import {PROJECT_PATHS, replicaNames} from '../manifest/stack.js'
import {readFileIfExists, writeFileAtomic} from '../util/files.js'
import type {Clock} from '../util/retry.js'
import type {ScaleResult} from './scale-result.js'
import {describeTargets, type ScaleTargets} from './targets.js'
import {
  readUpstreamsFile,
  renderUpstreamsWith,
  resolvingUpstreams,
  upstreamHosts,
  writeUpstreamsFile,
} from './upstreams.js'
import type {Progress} from '../util/progress.js'

/** The replica counts `scale` saves: gateway.yaml, docker-compose.yml to match, and (--manifest-only) upstreams.conf. */

/**
 * Write the new counts into gateway.yaml, editing the YAML document in place so the user's comments
 * and layout stay; the result is validated with the schema before it replaces the file.
 */
export async function saveReplicaCounts(dir: string, targets: ScaleTargets): Promise<Manifest> {
  const path = join(resolve(dir), MANIFEST_FILE)
  const document = parseDocument(await readFile(path, 'utf8'))
  for (const [service, replicas] of Object.entries(targets)) document.setIn(['services', service, 'replicas'], replicas)
  const manifest = parseManifest(document.toJS(), path)
  await writeFileAtomic(path, document.toString({lineWidth: 0}), 0o644)
  await saveComposeReplicas(dir, targets)
  return manifest
}

/**
 * The same counts in docker-compose.yml's `deploy.replicas`, edited in place: a later `docker compose
 * up -d` then keeps the replicas that scale started (and that upstreams.conf lists by name) instead of
 * removing those beyond the file's old count. Compose leaves replicas out of its config hash, so no
 * container is recreated for it.
 */
async function saveComposeReplicas(dir: string, targets: ScaleTargets): Promise<void> {
  const path = join(resolve(dir), PROJECT_PATHS.compose)
  const text = (await readFileIfExists(path))?.toString('utf8')
  if (text === undefined) return

  const document = parseDocument(text)
  let changed = false
  for (const [service, replicas] of Object.entries(targets)) {
    if (!document.hasIn(['services', service])) continue
    if (document.getIn(['services', service, 'deploy', 'replicas']) === replicas) continue
    document.setIn(['services', service, 'deploy', 'replicas'], replicas)
    changed = true
  }

  if (changed) await writeFileAtomic(path, document.toString({lineWidth: 0}), 0o644)
}

function replicasOf(manifest: Manifest, service: string): number {
  const entry = manifest.services[service]
  return entry?.kind === 'django' ? entry.replicas : 0
}

/** `scale --manifest-only`: the counts and upstreams.conf saved for the next `up`; the stack must not run. */
export async function scaleManifestOnly(
  root: string,
  manifest: Manifest,
  targets: ScaleTargets,
  containers: ContainerState[],
  started: number,
  clock: Clock,
  progress: Progress,
): Promise<ScaleResult> {
  const running = containers.filter((container) => container.running)
  if (running.length > 0) {
    throw new UsageError(
      `--manifest-only is for a stack that is not running, but these containers run: ${running.map((container) => container.name).join(', ')}`,
      {
        hint: 'Scale the running stack without --manifest-only.',
      },
    )
  }

  const current = await readUpstreamsFile(root)
  // A service that follows DNS keeps its one `server web:8000 resolve`: every replica `up` starts holds the name.
  const resolving = current === undefined ? new Set<string>() : resolvingUpstreams(current.toString('utf8'))
  const changes = Object.fromEntries(
    Object.entries(targets)
      .filter(([service]) => !resolving.has(upstreamName(service)))
      .map(([service, count]) => [service, replicaNames(manifest, service, count)]),
  )
  const text = await renderUpstreamsWith(manifest, upstreamHosts(manifest, current?.toString('utf8')), changes)
  const saved = await saveReplicaCounts(root, targets)
  if (current?.toString('utf8') !== text) await writeUpstreamsFile(root, text)
  progress(`Saved ${describeTargets(targets)} in ${MANIFEST_FILE}; \`create-gateway up\` starts that many replicas`)
  return {
    project: manifest.name,
    changed:
      current?.toString('utf8') !== text ||
      Object.entries(targets).some(([service, count]) => replicasOf(manifest, service) !== count),
    manifestOnly: true,
    services: Object.entries(targets).map(([service, count]) => ({
      service,
      from: replicasOf(manifest, service),
      to: replicasOf(saved, service) || count,
      added: [],
      removed: [],
      upstream: changes[service] ?? [service],
    })),
    reloaded: false,
    warnings: [],
    durationMs: clock.now() - started,
  }
}
