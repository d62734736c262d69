import {resolve} from 'node:path'

import {isNotOneOff, replicaNumber} from '../docker/containers.js'
import {connectEngine, engineMessage, type ContainerState, type Engine} from '../docker/engine.js'
import {
  desiredContainer,
  LABELS,
  readProjectEnv,
  runningGateway,
  resolveEnvironment,
  projectContext,
} from '../docker/spec.js'
import {probeCommand, waitAllHealthy} from '../docker/health.js'
import {removeQuietly} from '../docker/rollback.js'
import {GatewayError, OperationError, UsageError} from '../errors.js'
import {loadManifest, MANIFEST_FILE} from '../manifest/load.js'
import {gatewayContainerName} from '../manifest/model.js'
import type {Manifest} from '../manifest/schema.js'
import {buildStackSpec, PROJECT_PATHS} from '../manifest/stack.js'
import {acquireProjectLock, type LockOwner} from '../util/lock.js'
import {systemClock, type Clock} from '../util/retry.js'
import {changeGateway, GatewayChangeError} from './apply.js'
import {drainWorkers, type DrainResult, type ReloadResult} from './nginx.js'
import {saveReplicaCounts, scaleManifestOnly} from './replica-counts.js'
import {planService} from './scale-plan.js'
import type {ScaleResult, ServiceScale} from './scale-result.js'
import {describeTargets, type ScaleTargets} from './targets.js'
import {keptReplicaState, startReplica, stopReplica, type Replica} from './replicas.js'
import {followsDns, readUpstreamsFile, renderUpstreamsWith, upstreamHosts, upstreamsPath} from './upstreams.js'
import {withoutServiceAlias} from './dns-upstream.js'
import {scaleByDns} from './scale-dns.js'
import type {Progress} from '../util/progress.js'

/**
 * `scale web=N`: replicas in and out of the NGINX upstream without a failed request.
 *
 * When upstreams.conf is in the resolve form (`server web:8000 resolve`, NGINX >= 1.27.3) replicas
 * join and leave through the service name's DNS alias, with no reload: see scale-dns.ts. Otherwise
 * (older NGINX, or a file listing containers) the reload path below:
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

// The result and its summary live in scale-result.ts; importers of this module keep finding them here.
export {describeScale, type ScaleResult, type ServiceScale} from './scale-result.js'

export const DEFAULT_HEALTH_TIMEOUT_MS = 120_000

export interface ScaleOptions {
  engine?: Engine
  clock?: Clock
  /** The shell environment, which wins over `.env` in `${VAR}` references, as in `up`. */
  env?: NodeJS.ProcessEnv
  onProgress?: Progress
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

function checkTargets(manifest: Manifest, targets: ScaleTargets): void {
  for (const service of Object.keys(targets)) {
    if (manifest.services[service]?.kind !== 'django' || !Object.hasOwn(manifest.services, service)) {
      throw new UsageError(`gateway.yaml has no Django service "${service}" to scale`)
    }
  }
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
  progress: Progress,
): Promise<ScaleResult> {
  const stack = buildStackSpec(manifest)
  const engine = options.engine ?? (await connectEngine())
  const env = options.env ?? process.env
  const containers = (await engine.containers({[LABELS.project]: stack.project})).filter(isNotOneOff)
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
  // The file decides the path: servers with `resolve` follow DNS (no reload); any other form reloads.
  const byDns = followsDns(previousText, Object.keys(targets))
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

    // The same context `up` uses: replicas are the containers Compose would make.
    const context = projectContext(manifest, stack, {
      dir: root,
      imageIds,
      environment,
      dotenv: await readProjectEnv(root),
      env,
    })
    for (const plan of plans) {
      for (const stale of plan.replace) {
        progress(`Removing ${stale.name} (${stale.status}), to create it again`)
        await engine.removeContainer(stale.id)
      }

      for (const number of plan.create) {
        const desired = desiredContainer(plan.spec, number, context)
        // On the DNS path a new replica gets the service name only once healthy (scale-dns.ts).
        toWait.push(
          await startReplica(engine, byDns ? withoutServiceAlias(desired) : desired, stack.project, progress, created),
        )
      }

      for (const kept of plan.keep) {
        if (kept.health === 'starting')
          toWait.push({id: kept.id, name: kept.name, service: plan.spec.service, number: replicaNumber(kept)})
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

  if (byDns)
    return scaleByDns({
      engine,
      root,
      stack,
      targets,
      plans,
      created,
      gateway: gatewayRef,
      clock,
      started,
      progress,
      warnings,
      waited: toWait.map((replica) => replica.id),
      fail: (error, notes) => withRollbackNote(error, notes, retryHint),
    })

  // ---- 2. the new upstream (the reload path) -------------------------------------------------------
  const changes: Record<string, string[]> = {}
  const served: Record<string, string[]> = {}
  for (const plan of plans) {
    const members: Array<ContainerState | Replica> = []
    for (const kept of plan.keep) {
      const waited = toWait.some((replica) => replica.id === kept.id)
      const state = await keptReplicaState(engine, kept, waited)
      if (state.serves) members.push(kept)
      else warnings.push(`${kept.name} is ${state.why}: left out of the upstream`)
    }

    members.push(...created.filter((replica) => replica.service === plan.spec.service))
    members.sort(
      (a, b) => ('number' in a ? a.number : replicaNumber(a)) - ('number' in b ? b.number : replicaNumber(b)),
    )
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
    text = await renderUpstreamsWith(manifest, current, changes, 'reload')
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
    if (text !== previousText)
      progress(
        `Writing ${PROJECT_PATHS.upstreams}: ${Object.entries(changes)
          .map(([service, hosts]) => `${service} -> ${hosts.join(', ')}`)
          .join('; ')}`,
      )
    try {
      reload = await changeGateway(
        engine,
        gatewayRef,
        text === previousText ? [] : [{path: upstreamsPath(root), content: text}],
        {clock, reloadTimeoutMs: options.reloadTimeoutMs, onProgress: progress, keepNewFiles: true},
      )
    } catch (error) {
      if (!(error instanceof GatewayChangeError)) throw error
      const {rollback} = error
      const notes: string[] = []
      if (previous === undefined)
        notes.push(`There was no ${PROJECT_PATHS.upstreams} before; the new one is left for inspection.`)
      else if (text !== previousText && rollback.restored)
        notes.push(`Restored the previous ${PROJECT_PATHS.upstreams}.`)
      if (rollback.reloaded) notes.push('Reloaded NGINX with it.')
      if (rollback.failure) notes.push(`Could not fully restore the gateway: ${rollback.failure}`)
      // The workers that loaded the failed file may still hold requests for the replicas removed below.
      if (rollback.reload)
        await drainWorkers(engine, gatewayRef, rollback.reload.oldWorkers, {clock, timeoutMs: options.drainTimeoutMs})
      const removed = await removeQuietly(engine, created)
      if (removed.length > 0) notes.push(`Removed the replica(s) this run created: ${removed.join(', ')}.`)
      notes.push(
        `The gateway keeps serving ${
          Object.entries(current)
            .map(([service, hosts]) => `${service}: ${hosts.join(', ')}`)
            .join('; ') || 'its previous configuration'
        }.`,
      )
      throw withRollbackNote(error.cause, notes, retryHint)
    }

    progress(
      `Reload confirmed: workers ${reload!.oldWorkers.join(', ') || 'none'} -> ${reload!.newWorkers.join(', ')} (${reload!.ms} ms)`,
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
  for (const container of [...leaving].sort(
    (a, b) => replicaNumber(b) - replicaNumber(a) || a.name.localeCompare(b.name),
  )) {
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
