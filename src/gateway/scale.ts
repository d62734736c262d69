import {readFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import {parseDocument} from 'yaml'

import {connectEngine, engineMessage, type ContainerState, type Engine} from '../docker/engine.js'
import {
  desiredContainer,
  LABELS,
  readProjectEnv,
  runningGateway,
  resolveEnvironment,
  runId,
  type ProjectContext,
} from '../docker/spec.js'
import {probeCommand, waitAllHealthy} from '../docker/stack.js'
import {GatewayError, OperationError, UsageError} from '../errors.js'
import {loadManifest, MANIFEST_FILE, parseManifest} from '../manifest/load.js'
import {gatewayContainerName} from '../manifest/model.js'
import type {Manifest} from '../manifest/schema.js'
import {buildStackSpec, PROJECT_PATHS, replicaNames, type StackServiceSpec} from '../manifest/stack.js'
import {composeObject} from '../render/compose.js'
import {writeFileAtomic} from '../util/files.js'
import {acquireProjectLock, type LockOwner} from '../util/lock.js'
import {systemClock, type Clock} from '../util/retry.js'
import {drainWorkers, reloadGateway, testConfig, type DrainResult, type ReloadResult} from './nginx.js'
import type {ScaleTargets} from './targets.js'
import {removeQuietly, startReplica, stopReplica, type Replica} from './replicas.js'
import {readUpstreamsFile, renderUpstreamsWith, upstreamHosts, writeUpstreamsFile} from './upstreams.js'

/**
 * `scale web=N`: replicas in and out of the NGINX upstream without a failed request.
 *
 * Up: create and start the new replicas exactly as `up` does, wait until healthy, list them in
 * upstreams.conf, `nginx -t`, reload, confirm. Down: the leaving replicas leave the upstream first
 * (rewrite, test, reload, confirm), the old NGINX workers finish their requests and exit (closing
 * their keepalive connections to those replicas), and only then do the replicas get SIGTERM
 * (Gunicorn's graceful shutdown), highest number first.
 *
 * Any failure before the reload is confirmed restores upstreams.conf byte for byte (reloading again
 * if a reload was sent), removes the containers this run created, and leaves the gateway serving the
 * previous configuration. The confirmed reload is the point of no return: gateway.yaml is saved then,
 * so it always describes what the gateway serves.
 */

export const DEFAULT_HEALTH_TIMEOUT_MS = 120_000

export interface ScaleOptions {
  engine?: Engine
  clock?: Clock
  /** The shell environment, which wins over `.env` in `${VAR}` references, as in `up`. */
  env?: NodeJS.ProcessEnv
  onProgress?: (message: string) => void
  /** How long new replicas may take to become healthy. */
  healthTimeoutMs?: number
  /** How long NGINX may take to show new workers after a reload. */
  reloadTimeoutMs?: number
  /** How long the old NGINX workers may take to finish their requests before replicas are stopped. */
  drainTimeoutMs?: number
  /** How long to wait for another command that holds the project lock (0: fail at once). */
  lockWaitMs?: number
  /** Only save the counts (gateway.yaml and upstreams.conf) for the next `up`; the stack must not be running. */
  manifestOnly?: boolean
  /** Overrides for tests: whether a lock holder's process still runs. */
  isAlive?: (pid: number) => boolean
}

export interface ServiceScale {
  service: string
  /** Running replicas before. */
  from: number
  to: number
  added: string[]
  removed: string[]
  /** Host names the upstream lists afterwards. */
  upstream: string[]
}

export interface ScaleResult {
  project: string
  /** False when every service already ran the asked count and the upstream listed them. */
  changed: boolean
  manifestOnly: boolean
  services: ServiceScale[]
  reloaded: boolean
  reload?: Omit<ReloadResult, 'master'>
  drain?: DrainResult
  warnings: string[]
  durationMs: number
}

interface ServicePlan {
  spec: StackServiceSpec
  target: number
  existing: ContainerState[]
  keep: ContainerState[]
  /** Numbers to create; a stopped container with the number is replaced. */
  create: number[]
  replace: ContainerState[]
  leave: ContainerState[]
}

function numberOf(container: ContainerState): number {
  return Number(container.labels[LABELS.number] ?? 0)
}

function isHealthy(container: ContainerState): boolean {
  return container.running && (container.health === undefined || container.health === 'healthy')
}

/** What to do with one service's replicas: keep 1..N that run, create the missing numbers, let the rest go. */
export function planService(
  spec: StackServiceSpec,
  target: number,
  containers: ContainerState[],
  project: string,
): ServicePlan {
  const existing = containers
    .filter((container) => container.labels[LABELS.service] === spec.service)
    .sort((a, b) => numberOf(a) - numberOf(b))
  const keep: ContainerState[] = []
  const replace: ContainerState[] = []
  const leave: ContainerState[] = []
  const create: number[] = []
  for (let number = 1; number <= target; number++) {
    const candidates = existing.filter((container) => numberOf(container) === number)
    // Two containers with one number (ours and one Compose v1 made): keep the running one with our name.
    const name = `${project}-${spec.service}-${number}`
    const chosen = candidates
      .filter((container) => container.running)
      .sort((a, b) => Number(b.name === name) - Number(a.name === name))[0]
    if (chosen) keep.push(chosen)
    else create.push(number)
    for (const other of candidates) {
      if (other === chosen) continue
      if (other.running) leave.push(other)
      else replace.push(other)
    }
  }

  for (const container of existing) if (numberOf(container) > target || numberOf(container) < 1) leave.push(container)
  return {spec, target, existing, keep, create, replace, leave}
}

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
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }

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

function checkTargets(manifest: Manifest, targets: ScaleTargets): void {
  for (const service of Object.keys(targets)) {
    if (manifest.services[service]?.kind !== 'django' || !Object.hasOwn(manifest.services, service)) {
      throw new UsageError(`gateway.yaml has no Django service "${service}" to scale`)
    }
  }
}

function replicasOf(manifest: Manifest, service: string): number {
  const entry = manifest.services[service]
  return entry?.kind === 'django' ? entry.replicas : 0
}

function describeTargets(targets: ScaleTargets): string {
  return Object.entries(targets)
    .map(([service, count]) => `${service}=${count}`)
    .join(' ')
}

/** Append what the rollback did to the error that caused it, keeping its type (and exit code). */
function withRollbackNote(error: unknown, notes: string[], hint: string): Error {
  const note = notes.length > 0 ? `\n${notes.join('\n')}` : ''
  // The health wait's own hint says to run `up` again; here the thing to run again is `scale`.
  if (error instanceof GatewayError)
    return new OperationError(`${error.message}${note}`, {
      hint: error.hint && !error.hint.startsWith('Fix the cause above and run `create-gateway up`') ? error.hint : hint,
      cause: error,
    })
  return new OperationError(`${engineMessage(error)}${note}`, {hint, cause: error})
}

async function scaleManifestOnly(
  root: string,
  manifest: Manifest,
  targets: ScaleTargets,
  containers: ContainerState[],
  started: number,
  clock: Clock,
  progress: (message: string) => void,
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
  const changes = Object.fromEntries(
    Object.entries(targets).map(([service, count]) => [service, replicaNames(manifest, service, count)]),
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
      upstream: changes[service] ?? [],
    })),
    reloaded: false,
    warnings: [],
    durationMs: clock.now() - started,
  }
}

/**
 * Scale the given Django services of a running project to the given counts. Takes the project lock
 * (waiting `lockWaitMs` at most), reads gateway.yaml again under it, and throws a typed error with
 * the reason (nginx -t output, a replica's last log lines) after undoing its changes.
 */
export async function scaleServices(
  dir: string,
  manifest: Manifest,
  targets: ScaleTargets,
  options: ScaleOptions = {},
): Promise<ScaleResult> {
  const clock = options.clock ?? systemClock
  const started = clock.now()
  const progress = options.onProgress ?? (() => {})
  const root = resolve(dir)
  checkTargets(manifest, targets)
  // Bad input (a ${VAR} that .env does not set) fails before anything is locked or touched.
  const dotenv = await readProjectEnv(root)
  for (const spec of buildStackSpec(manifest).services)
    if (Object.hasOwn(targets, spec.service)) resolveEnvironment(spec, dotenv, options.env ?? process.env)

  const lock = await acquireProjectLock(root, {
    command: `scale ${describeTargets(targets)}`,
    waitMs: options.lockWaitMs ?? 0,
    clock,
    isAlive: options.isAlive,
    onWait: (owner?: LockOwner) =>
      progress(
        `Waiting for ${owner ? `\`${owner.command}\` (pid ${owner.pid})` : 'another command'} to finish with the project`,
      ),
  })
  try {
    // The holder we waited for may have changed gateway.yaml.
    const fresh = await loadManifest(root)
    checkTargets(fresh, targets)
    return await scaleLocked(root, fresh, targets, options, clock, started, progress)
  } finally {
    await lock.release()
  }
}

async function scaleLocked(
  root: string,
  manifest: Manifest,
  targets: ScaleTargets,
  options: ScaleOptions,
  clock: Clock,
  started: number,
  progress: (message: string) => void,
): Promise<ScaleResult> {
  const stack = buildStackSpec(manifest)
  const engine = options.engine ?? (await connectEngine())
  const env = options.env ?? process.env
  const containers = (await engine.containers({[LABELS.project]: stack.project})).filter(
    (container) => container.labels[LABELS.oneoff] !== 'True',
  )
  if (options.manifestOnly) return scaleManifestOnly(root, manifest, targets, containers, started, clock, progress)

  const gateway = runningGateway(containers)
  if (!gateway) {
    throw new OperationError(
      `The stack of ${stack.project} is not running: no running gateway container (${gatewayContainerName(manifest)})`,
      {
        hint: `Start it with \`create-gateway up\` (it starts services.<name>.replicas from ${MANIFEST_FILE}), or save the count for the next \`up\` with \`create-gateway scale --manifest-only ${describeTargets(targets)}\`.`,
      },
    )
  }

  const gatewayRef = {id: gateway.id, name: gateway.name}
  const warnings: string[] = []
  const plans = Object.entries(targets).map(([service, target]) =>
    planService(
      stack.services.find((spec) => spec.service === service)!,
      target,
      containers,
      stack.project,
    ),
  )
  const previous = await readUpstreamsFile(root)
  const previousText = previous?.toString('utf8')
  const current = upstreamHosts(manifest, previousText)
  const created: Replica[] = []
  const retryHint = `Fix the cause above and run \`create-gateway scale ${describeTargets(targets)}\` again; \`create-gateway logs SERVICE\` shows a replica's output.`

  // ---- 1. new replicas, created exactly as `up` creates them, then healthy --------------------------
  const toWait: Replica[] = []
  try {
    const environment: Record<string, Record<string, string>> = {}
    const imageIds: Record<string, string> = {}
    for (const plan of plans) {
      if (plan.create.length === 0) continue
      environment[plan.spec.service] = resolveEnvironment(plan.spec, await readProjectEnv(root), env)
      const image = await engine.image(plan.spec.image)
      if (!image) {
        throw new OperationError(`Image ${plan.spec.image} of ${plan.spec.service} is not on this machine`, {
          hint: 'Build it with `create-gateway up`, then scale.',
        })
      }

      imageIds[plan.spec.service] = image.id
    }

    const context: ProjectContext = {
      project: stack.project,
      dir: root,
      network: stack.network,
      imageIds,
      environment,
      runId: runId(env),
      // The whole compose file, as `up` uses it: replicas are the same containers Compose would make.
      compose: composeObject(manifest),
      variables: {...(await readProjectEnv(root)), ...env},
    }
    for (const plan of plans) {
      for (const stale of plan.replace) {
        progress(`Removing ${stale.name} (${stale.status}), to create it again`)
        await engine.removeContainer(stale.id)
      }

      for (const number of plan.create) {
        toWait.push(
          await startReplica(engine, desiredContainer(plan.spec, number, context), stack.project, progress, created),
        )
      }

      for (const kept of plan.keep) {
        if (kept.health === 'starting')
          toWait.push({id: kept.id, name: kept.name, service: plan.spec.service, number: numberOf(kept)})
      }
    }

    if (toWait.length > 0) {
      const timeoutMs = options.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS
      progress(
        `Waiting for ${toWait.map((replica) => replica.name).join(', ')} to be healthy (up to ${Math.round(timeoutMs / 1000)} s)`,
      )
      const probeOf = (service: string) =>
        probeCommand(stack.services.find((spec) => spec.service === service)?.healthcheck?.test ?? [])
      await waitAllHealthy(
        engine,
        toWait.map((replica) => ({...replica, wave: 0, probe: probeOf(replica.service)})),
        timeoutMs,
        clock,
      )
    }
  } catch (error) {
    const removed = await removeQuietly(engine, created)
    const notes = [`Nothing changed in the gateway: ${PROJECT_PATHS.upstreams} was not touched.`]
    if (removed.length > 0) notes.push(`Removed the replica(s) this run created: ${removed.join(', ')}.`)
    throw withRollbackNote(error, notes, retryHint)
  }

  // ---- 2. the new upstream -------------------------------------------------------------------------
  const changes: Record<string, string[]> = {}
  const served: Record<string, string[]> = {}
  for (const plan of plans) {
    const members: Array<ContainerState | Replica> = []
    for (const kept of plan.keep) {
      const waited = toWait.some((replica) => replica.id === kept.id)
      const state = waited ? await engine.container(kept.id) : kept
      // A replica waitAllHealthy returned for passed its healthcheck (ours, while the engine may still
      // say `starting`); any other must be healthy in the engine's eyes.
      if (state && (waited ? state.running && state.health !== 'unhealthy' : isHealthy(state))) members.push(kept)
      else warnings.push(`${kept.name} is ${state?.health ?? state?.status ?? 'gone'}: left out of the upstream`)
    }

    members.push(...created.filter((replica) => replica.service === plan.spec.service))
    members.sort((a, b) => ('number' in a ? a.number : numberOf(a)) - ('number' in b ? b.number : numberOf(b)))
    const names = members.map((member) => member.name)
    served[plan.spec.service] = names
    // `init` writes the service-name form (`server web:8000`), which already sends to every replica: a
    // scale to the current count keeps it instead of reloading NGINX to say the same thing by name.
    const untouched =
      plan.create.length === 0 &&
      plan.leave.length === 0 &&
      plan.replace.length === 0 &&
      members.length === plan.keep.length
    const byServiceName =
      current[plan.spec.service]?.length === 1 && current[plan.spec.service]?.[0] === plan.spec.service
    if (!(untouched && byServiceName)) changes[plan.spec.service] = names
  }

  let text: string
  try {
    text = await renderUpstreamsWith(manifest, current, changes)
  } catch (error) {
    const removed = await removeQuietly(engine, created)
    throw withRollbackNote(
      error,
      removed.length > 0 ? [`Removed the replica(s) this run created: ${removed.join(', ')}.`] : [],
      retryHint,
    )
  }

  const leaving = plans.flatMap((plan) => plan.leave)
  let reload: ReloadResult | undefined
  // NGINX resolves upstream names when it loads its configuration: a replica created again under a
  // name the file already lists (its container was removed by hand) has a new address, so reload too.
  if (text !== previousText || created.length > 0) {
    const rollback = async (error: unknown, reloadSent: boolean): Promise<never> => {
      const notes: string[] = []
      try {
        if (previous === undefined)
          notes.push(`There was no ${PROJECT_PATHS.upstreams} before; the new one is left for inspection.`)
        else if (text !== previousText) {
          await writeUpstreamsFile(root, previous)
          notes.push(`Restored the previous ${PROJECT_PATHS.upstreams}.`)
        }

        if (reloadSent && previous !== undefined) {
          // The master may have started workers with the new file: put the previous one back in force.
          const again = await reloadGateway(engine, gatewayRef, {clock, timeoutMs: options.reloadTimeoutMs})
          notes.push('Reloaded NGINX with it.')
          await drainWorkers(engine, gatewayRef, again.oldWorkers, {clock, timeoutMs: options.drainTimeoutMs})
        }
      } catch (restoreError) {
        notes.push(
          `Could not fully restore the gateway: ${restoreError instanceof Error ? restoreError.message.split('\n')[0] : String(restoreError)}`,
        )
      }

      const removed = await removeQuietly(engine, created)
      if (removed.length > 0) notes.push(`Removed the replica(s) this run created: ${removed.join(', ')}.`)
      notes.push(
        `The gateway keeps serving ${
          Object.entries(current)
            .map(([service, hosts]) => `${service}: ${hosts.join(', ')}`)
            .join('; ') || 'its previous configuration'
        }.`,
      )
      throw withRollbackNote(error, notes, retryHint)
    }

    try {
      if (text !== previousText) {
        progress(
          `Writing ${PROJECT_PATHS.upstreams}: ${Object.entries(changes)
            .map(([service, hosts]) => `${service} -> ${hosts.join(', ')}`)
            .join('; ')}`,
        )
        await writeUpstreamsFile(root, text)
      }

      progress(`Testing the configuration: nginx -t in ${gateway.name}`)
      await testConfig(engine, gatewayRef)
    } catch (error) {
      return rollback(error, false)
    }

    progress(`Reloading NGINX in ${gateway.name}`)
    try {
      reload = await reloadGateway(engine, gatewayRef, {clock, timeoutMs: options.reloadTimeoutMs})
    } catch (error) {
      return rollback(error, true)
    }

    progress(
      `Reload confirmed: workers ${reload.oldWorkers.join(', ') || 'none'} -> ${reload.newWorkers.join(', ')} (${reload.ms} ms)`,
    )
  }

  // ---- 3. the point of no return: the gateway serves the new upstream --------------------------------
  await saveReplicaCounts(root, targets)
  progress(`Saved ${describeTargets(targets)} in ${MANIFEST_FILE}`)

  let drain: DrainResult | undefined
  if (leaving.length > 0 && reload) {
    const timeoutMs = options.drainTimeoutMs
    progress(`Waiting for the old NGINX workers (${reload.oldWorkers.join(', ')}) to finish their requests`)
    drain = await drainWorkers(engine, gatewayRef, reload.oldWorkers, {clock, timeoutMs})
    if (!drain.drained)
      warnings.push(
        `old NGINX workers ${drain.remaining.join(', ')} were still finishing requests after ${drain.ms} ms; stopping the replicas anyway (each still gets its graceful shutdown)`,
      )
  }

  const failures: string[] = []
  const removed: string[] = []
  for (const container of [...leaving].sort((a, b) => numberOf(b) - numberOf(a) || a.name.localeCompare(b.name))) {
    try {
      await stopReplica(
        engine,
        stack.services.find((candidate) => candidate.service === container.labels[LABELS.service]),
        container,
        progress,
      )
      removed.push(container.name)
    } catch (error) {
      failures.push(`${container.name}: ${engineMessage(error)}`)
    }
  }

  if (failures.length > 0) {
    throw new OperationError(
      `Scaled to ${describeTargets(targets)} (the gateway serves the new upstream and ${MANIFEST_FILE} is saved), but could not remove:\n  ${failures.join('\n  ')}`,
      {
        hint: 'They no longer receive requests. Remove them with `docker rm -f NAME`, or run `create-gateway up`, which removes replicas beyond the saved count.',
      },
    )
  }

  const services: ServiceScale[] = plans.map((plan) => ({
    service: plan.spec.service,
    from: plan.existing.filter((container) => container.running).length,
    to: plan.target,
    added: created.filter((replica) => replica.service === plan.spec.service).map((replica) => replica.name),
    removed: removed.filter((name) => plan.leave.some((container) => container.name === name)),
    upstream: served[plan.spec.service] ?? [],
  }))
  const changed =
    reload !== undefined || created.length > 0 || removed.length > 0 || plans.some((plan) => plan.replace.length > 0)
  return {
    project: stack.project,
    changed,
    manifestOnly: false,
    services,
    reloaded: reload !== undefined,
    ...(reload ? {reload: {oldWorkers: reload.oldWorkers, newWorkers: reload.newWorkers, ms: reload.ms}} : {}),
    ...(drain ? {drain} : {}),
    warnings,
    durationMs: clock.now() - started,
  }
}

/** Human summary of a scale result, the command's output without --json. */
export function describeScale(result: ScaleResult): string {
  const seconds = (result.durationMs / 1000).toFixed(1)
  if (result.manifestOnly) {
    return `${result.project}: saved ${result.services.map((service) => `${service.service}=${service.to}`).join(' ')} in ${MANIFEST_FILE} and ${PROJECT_PATHS.upstreams}. The stack is not running; \`create-gateway up\` starts that many replicas.`
  }

  const lines: string[] = []
  if (!result.changed) {
    lines.push(
      `${result.project}: already at ${result.services.map((service) => `${service.service}=${service.to}`).join(' ')}; nothing changed (${seconds} s).`,
    )
  } else {
    lines.push(`${result.project} scaled in ${seconds} s:`)
    for (const service of result.services) {
      const parts = [`${service.from} -> ${service.to} replica(s)`]
      if (service.added.length > 0) parts.push(`added ${service.added.join(', ')}`)
      if (service.removed.length > 0) parts.push(`removed ${service.removed.join(', ')}`)
      lines.push(`  ${service.service}: ${parts.join('; ')}`)
      lines.push(`    upstream: ${service.upstream.join(', ')}`)
    }

    if (result.reload)
      lines.push(
        `  NGINX reloaded (${result.reload.ms} ms); ${result.drain ? `old workers ${result.drain.drained ? `finished in ${result.drain.ms} ms` : 'still finishing'}` : 'no replica left the upstream'}`,
      )
  }

  for (const warning of result.warnings) lines.push(`Warning: ${warning}`)
  return lines.join('\n')
}
