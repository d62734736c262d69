import {lookup} from 'node:dns/promises'
import {createServer} from 'node:net'
import {resolve} from 'node:path'

import {isNotOneOff, replicaNumber} from './containers.js'
import {GatewayError, InterruptedError, OperationError} from '../errors.js'
import {connectAddress, urlHost} from '../manifest/model.js'
import type {Manifest} from '../manifest/schema.js'
import {buildStackSpec, PROJECT_PATHS, type StackServiceSpec, type StackSpec} from '../manifest/stack.js'
import {composeObject} from '../render/compose.js'
import {retryUntil, systemClock, untilAborted, WaitTimeoutError, withTimeout, type Clock} from '../util/retry.js'
import {connectEngine, engineFailure, engineMessage, type ContainerState, type Engine} from './engine.js'
import {buildImage, type BuiltImage} from './images.js'
import {lastLogLines} from './logs.js'
import {requireSecretFiles} from './up-plan.js'
import {
  desiredContainer,
  desiredContainers,
  desiredNetworks,
  LABELS,
  planContainers,
  readProjectEnv,
  resolveEnvironment,
  runId,
  startWaves,
  type ContainerAction,
  type ContainerPlan,
  type DesiredContainer,
  type PlannedContainer,
  type ProjectContext,
} from './spec.js'

export const DEFAULT_UP_TIMEOUT_MS = 180_000
const POLL_INTERVAL_MS = 500
const LOG_LINES = 50
const DNS_TIMEOUT_MS = 2_000

export interface StackOptions {
  /** Defaults to the engine at DOCKER_HOST / the local socket. */
  engine?: Engine
  onProgress?: (message: string) => void
}

export interface UpOptions extends StackOptions {
  /** How long each wait for health may take (the Django replicas, then the gateway). */
  timeoutMs?: number
  clock?: Clock
  /** The shell environment, which wins over `.env` in `${VAR}` references as in Compose. */
  env?: NodeJS.ProcessEnv
  /**
   * Aborted when the user interrupts `up` (Ctrl-C). Checked between steps and ends health waits at
   * once; an image build already running is allowed to finish. Then what this run created is removed
   * and `upStack` throws InterruptedError.
   */
  signal?: AbortSignal
  /**
   * Changes the Django replicas behind a running gateway without taking them out of service at once
   * (the gateway layer's rolling update: new replicas in, old ones out, one upstream reload per step).
   * Without it, `up` stops and recreates changed replicas in place, as Compose does.
   */
  rollout?: Rollout
}

/** One Django service's replica changes behind a running gateway, handed to a rolling update. */
export interface ReplicaChanges {
  spec: StackServiceSpec
  /** Running replicas that stay as they are. */
  keep: ContainerState[]
  /** Running replicas whose configuration or image changed, in number order: replaced one at a time. */
  replace: Array<{existing: ContainerState; desired: DesiredContainer}>
  /** Replica numbers the manifest adds. */
  create: DesiredContainer[]
  /** Running replicas beyond the manifest's count. */
  retire: ContainerState[]
  /** This service's container for any number, e.g. the extra replica that serves while one is replaced. */
  desiredFor: (number: number) => DesiredContainer
}

export interface RolloutRequest {
  engine: Engine
  dir: string
  manifest: Manifest
  gateway: ContainerState
  services: ReplicaChanges[]
  /** How long each new replica may take to become healthy. */
  timeoutMs: number
  clock: Clock
  signal?: AbortSignal
  onProgress: (message: string) => void
}

/** Returns what it did, in `up`'s report rows. */
export type Rollout = (request: RolloutRequest) => Promise<UpContainer[]>

export interface UpContainer {
  service: string
  name: string
  number: number
  action: ContainerAction | 'remove'
  id?: string
}

export interface UpResult {
  project: string
  /** False when everything already ran with the same configuration: nothing was touched. */
  changed: boolean
  images: Array<BuiltImage & {service: string}>
  network: {name: string; created: boolean}
  containers: UpContainer[]
  /** Django services whose replicas were changed by the rolling update, behind the running gateway. */
  rolled: string[]
  urls: string[]
  /** A command that reaches the gateway from this machine, trusting the project CA when there is one. */
  curl: string
  durationMs: number
}

// ---- ports ---------------------------------------------------------------------------------------

function portField(manifest: Manifest, host: number): string {
  if (manifest.metrics?.enabled && host === manifest.metrics.port) return 'metrics.port'
  return host === manifest.ports.https ? 'ports.https' : 'ports.http'
}

function portInUse(manifest: Manifest, bind: string, port: number, cause?: unknown): OperationError {
  const field = portField(manifest, port)
  return new OperationError(
    `Port ${bind}:${port} (${field} in gateway.yaml) is already in use by another program or container`,
    {
      hint: `Stop what listens there (\`ss -ltnp 'sport = :${port}'\` shows it), or choose another ${field} in gateway.yaml and run \`create-gateway render\`, then \`create-gateway up\`.`,
      cause,
    },
  )
}

/** Is something already listening there? Only meaningful when the engine runs on this machine. */
async function portTaken(bind: string, port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const server = createServer()
    server.once('error', (error: NodeJS.ErrnoException) => resolvePromise(error.code === 'EADDRINUSE'))
    server.listen({host: bind, port, exclusive: true}, () => server.close(() => resolvePromise(false)))
  })
}

/**
 * Fail before building anything when a published port is taken by someone else. Ports that one
 * of the project's own containers publishes are skipped: `up` replaces or keeps that container.
 */
async function checkPorts(
  manifest: Manifest,
  stack: StackSpec,
  existing: ContainerState[],
  engine: Engine,
): Promise<void> {
  if (!engine.endpoint.startsWith('unix://')) return
  const ours = new Set(
    existing.flatMap((container) => container.ports.map((port) => port.replace(/->.*$/, '').replace(/^.*:/, ''))),
  )
  for (const spec of stack.services) {
    for (const port of spec.ports) {
      if (!ours.has(String(port.host)) && (await portTaken(port.bind, port.host)))
        throw portInUse(manifest, port.bind, port.host)
    }
  }
}

function startError(manifest: Manifest, spec: StackServiceSpec, name: string, error: unknown): Error {
  const message = engineMessage(error)
  if (/address already in use|port is already allocated/i.test(message)) {
    const port = spec.ports.find((candidate) => new RegExp(`:${candidate.host}\\b`).test(message)) ?? spec.ports[0]
    if (port) return portInUse(manifest, port.bind, port.host, error)
  }

  return engineFailure(`Starting ${name}`, error)
}

// ---- images --------------------------------------------------------------------------------------

/** Where gateway.yaml names each role's image, as the hint of a missing image says it. */
const IMAGE_SETTING: Record<StackServiceSpec['role'], string> = {
  django: 'images.python in gateway.yaml (init --python-image)',
  gateway: 'images.nginx in gateway.yaml (init --nginx-image)',
  exporter: 'images.exporter in gateway.yaml (init --exporter-image)',
}

/** An image used as it is (the gateway's NGINX, the exporter): local if present, else one pull attempt. */
async function ensureImage(
  engine: Engine,
  spec: StackServiceSpec,
  onProgress?: (message: string) => void,
): Promise<BuiltImage> {
  const local = await engine.image(spec.image)
  if (local) return {tag: spec.image, id: local.id, built: false}
  onProgress?.(`${spec.service}: ${spec.image} is not on this machine, pulling it`)
  try {
    await engine.pullImage(spec.image, (line) => onProgress?.(`${spec.service}: ${line}`))
  } catch (error) {
    const where = IMAGE_SETTING[spec.role]
    throw new OperationError(
      `Image ${spec.image} (${spec.service}) not found locally and the registry is unreachable (${engineMessage(error)})`,
      {
        hint: `Load or build it on this machine (fixtures/images/build.sh makes offline stand-ins), or set ${where} to an image the engine has.`,
        cause: error,
      },
    )
  }

  const pulled = await engine.image(spec.image)
  if (!pulled) throw new OperationError(`Pulled ${spec.image} (${spec.service}) but the engine does not list it`)
  return {tag: spec.image, id: pulled.id, built: false}
}

// ---- health --------------------------------------------------------------------------------------

class ContainerFailedError extends OperationError {}
class WaitAborted extends Error {}

/** A container `up` waits for; `wave` is its place in the start order (the gateway comes later). */
export interface AwaitedContainer {
  id: string
  name: string
  service: string
  wave: number
  /**
   * The container's own healthcheck command (exec form). While the engine still reports `starting`,
   * we run it ourselves: Docker runs the first check only after a whole interval (engines before 25
   * have no start_interval), and the stack serves long before that.
   */
  probe?: string[]
}

async function withLogs(engine: Engine, container: AwaitedContainer, error: unknown): Promise<Error> {
  const message = error instanceof Error ? error.message : String(error)
  const lines = await lastLogLines(engine, container.id, LOG_LINES)
  const logs =
    lines.length > 0
      ? [`Last ${lines.length} log lines of ${container.name}:`, ...lines.map((line) => `  | ${line}`)]
      : [`${container.name} wrote no logs.`]
  return new OperationError([message, ...logs].join('\n'), {
    hint: `Fix the cause above and run \`create-gateway up\` again; \`create-gateway logs ${container.service}\` shows more.`,
    cause: error,
  })
}

/** Why a container can no longer become healthy, or undefined while it still can. */
function failure(
  state: ContainerState | undefined,
  container: AwaitedContainer,
  restartsAtStart: number,
): ContainerFailedError | undefined {
  const who = `${container.name} (${container.service})`
  if (!state) return new ContainerFailedError(`${who} disappeared while waiting for it to be healthy`)
  if (state.status === 'exited' || state.status === 'dead') {
    return new ContainerFailedError(
      `${who} exited with code ${state.exitCode} before becoming healthy${state.error ? `: ${state.error}` : ''}`,
    )
  }

  if (state.status === 'restarting' || state.restartCount > restartsAtStart) {
    return new ContainerFailedError(`${who} crashed (exit code ${state.exitCode}) and is being restarted`)
  }

  if (state.health === 'unhealthy')
    return new ContainerFailedError(`${who} is unhealthy: its healthcheck keeps failing`)
  return undefined
}

async function probePasses(engine: Engine, container: AwaitedContainer): Promise<boolean> {
  try {
    return (await engine.exec(container.id, container.probe!)).exitCode === 0
  } catch {
    return false // not exec-able yet (starting, restarting): the engine's own check decides
  }
}

/** A healthcheck test in exec form (`['CMD', ...]`), or undefined for shell or disabled forms. */
export function probeCommand(test: readonly string[]): string[] | undefined {
  return test[0] === 'CMD' && test.length > 1 ? test.slice(1) : undefined
}

/**
 * Wait until the container's healthcheck passes. Stops at once when it cannot pass any more: the
 * container exited, the restart policy restarted it, or the engine already calls it unhealthy.
 */
async function waitHealthy(
  engine: Engine,
  container: AwaitedContainer,
  timeoutMs: number,
  clock: Clock,
  abort: AbortController,
): Promise<void> {
  let restartsAtStart: number | undefined
  try {
    await retryUntil(
      async () => {
        const state = await engine.container(container.id)
        restartsAtStart ??= state?.restartCount ?? 0
        const failed = failure(state, container, restartsAtStart)
        if (failed) throw failed
        if (state!.running && state!.health === 'starting' && container.probe && (await probePasses(engine, container)))
          return {...state!, health: 'healthy' as const}
        return state!
      },
      (state) => (state.health === undefined ? state.running : state.health === 'healthy'),
      {
        timeoutMs,
        intervalMs: POLL_INTERVAL_MS,
        clock,
        describe: `${container.name} (${container.service}) to be healthy`,
        explain: (state) => `state ${state.status}, health ${state.health ?? 'none'}`,
        // Another container already failed, or the user interrupted `up`: stop polling.
        signal: abort.signal,
      },
    )
  } catch (error) {
    if (error === abort.signal.reason) return
    // Interrupted: `up` is removing the containers, so what this last poll saw means nothing.
    if (abort.signal.aborted && !(abort.signal.reason instanceof WaitAborted)) return
    // Stop the other waits before reading logs, so they do not report the same failure again.
    abort.abort(new WaitAborted())
    if (error instanceof ContainerFailedError || error instanceof WaitTimeoutError)
      throw await withLogs(engine, container, error)
    throw error
  }
}

/**
 * Wait for several containers at once; the first failure ends the other waits. When a later
 * container fails (the gateway) while one it depends on has failed too (a replica crashed, so its
 * name no longer resolves), the dependency's failure is the cause and is the one reported.
 * An aborted `signal` ends every wait at once and rejects with the signal's reason.
 */
export async function waitAllHealthy(
  engine: Engine,
  containers: AwaitedContainer[],
  timeoutMs: number,
  clock: Clock,
  signal?: AbortSignal,
): Promise<void> {
  const controller = new AbortController()
  const stop = () => controller.abort(signal!.reason)
  if (signal?.aborted) stop()
  signal?.addEventListener('abort', stop, {once: true})
  let results: Array<PromiseSettledResult<void>>
  try {
    const waits = Promise.allSettled(
      containers.map((container) => waitHealthy(engine, container, timeoutMs, clock, controller)),
    )
    // A poll in flight (an inspect, a healthcheck exec) is not awaited: it ends on its own.
    results = await (signal ? untilAborted(waits, signal) : waits)
  } finally {
    signal?.removeEventListener('abort', stop)
  }

  const failed = containers.findIndex((_, index) => results[index]!.status === 'rejected')
  if (failed === -1) return
  const reason = (results[failed] as PromiseRejectedResult).reason as unknown
  for (const earlier of containers.filter((container) => container.wave < containers[failed]!.wave)) {
    const cause = failure(await engine.container(earlier.id), earlier, Number.POSITIVE_INFINITY)
    if (cause) {
      const message = reason instanceof Error ? reason.message.split('\n')[0] : String(reason)
      cause.message += ` (and then: ${message})`
      throw await withLogs(engine, earlier, cause)
    }
  }

  throw reason
}

/**
 * Promise.all that waits for every promise before failing with the first error: what the others
 * created is then recorded, and a rollback can remove it.
 */
async function settleAll<T>(promises: Array<Promise<T>>): Promise<T[]> {
  const results = await Promise.allSettled(promises)
  const rejected = results.find((result): result is PromiseRejectedResult => result.status === 'rejected')
  if (rejected) throw rejected.reason
  return results.map((result) => (result as PromiseFulfilledResult<T>).value)
}

// ---- up ------------------------------------------------------------------------------------------

/** Does the domain resolve to where the gateway listens? If not, curl needs `--resolve`. */
async function resolvesTo(domain: string, address: string): Promise<boolean> {
  try {
    const entries = await withTimeout(lookup(domain, {all: true}), DNS_TIMEOUT_MS, `${domain} to resolve`)
    return entries.some((entry) => entry.address === address)
  } catch {
    return false
  }
}

export async function stackEndpoints(manifest: Manifest): Promise<{urls: string[]; curl: string}> {
  const tls = manifest.tls.mode !== 'off'
  const port = tls ? manifest.ports.https : manifest.ports.http
  const scheme = tls ? 'https' : 'http'
  const urls = [`${scheme}://${manifest.domain}:${port}/`]
  if (tls) urls.push(`http://${manifest.domain}:${manifest.ports.http}/ (redirects to HTTPS)`)
  const address = connectAddress(manifest.bind)
  const parts = ['curl']
  if (manifest.tls.mode === 'self-signed') parts.push('--cacert', `${PROJECT_PATHS.certs}/ca.pem`)
  if (!(await resolvesTo(manifest.domain, address)))
    parts.push('--resolve', `${manifest.domain}:${port}:${urlHost(address)}`)
  parts.push(`${scheme}://${manifest.domain}:${port}/`)
  return {urls, curl: parts.join(' ')}
}

/**
 * The Django services whose replicas a rolling update changes: the gateway runs and stays, the
 * service already has running replicas, and every change to it is one a rolling update can make
 * (a stopped or foreign-named replica goes the plain way, with the rest of its service).
 */
function rollingChanges(stack: StackSpec, plan: ContainerPlan, context: ProjectContext): ReplicaChanges[] {
  const gateway = plan.containers.find((item) => item.desired.role === 'gateway')
  if (gateway?.action !== 'keep') return []
  const changes: ReplicaChanges[] = []
  for (const spec of stack.services.filter((candidate) => candidate.role === 'django')) {
    const items = plan.containers.filter((item) => item.desired.service === spec.service)
    const extra = plan.remove.filter((container) => container.labels[LABELS.service] === spec.service)
    const rollable = (item: PlannedContainer) =>
      item.action === 'keep' ||
      item.action === 'create' ||
      (item.action === 'recreate' && item.existing!.running && item.existing!.name === item.desired.name)
    if (!items.every(rollable) || !extra.every((container) => container.running)) continue
    const change: ReplicaChanges = {
      spec,
      keep: items.filter((item) => item.action === 'keep').map((item) => item.existing!),
      replace: items
        .filter((item) => item.action === 'recreate')
        .map((item) => ({existing: item.existing!, desired: item.desired})),
      create: items.filter((item) => item.action === 'create').map((item) => item.desired),
      retire: extra,
      desiredFor: (number) => desiredContainer(spec, number, context),
    }
    const serving = change.keep.length + change.replace.length
    if (serving > 0 && change.replace.length + change.create.length + change.retire.length > 0) changes.push(change)
  }

  return changes
}

/** Remove what this run created, newest first. Errors here must not hide the error that caused it. */
async function rollback(engine: Engine, created: string[], network: string | undefined): Promise<string[]> {
  const done: string[] = []
  for (const id of [...created].reverse()) {
    try {
      await engine.removeContainer(id)
      done.push(`container ${id.slice(0, 12)}`)
    } catch {}
  }

  if (network) {
    try {
      await engine.removeNetwork(network)
      done.push('network')
    } catch {}
  }

  return done
}

/** What an interrupted `up` says: how much of what it created it removed, and what may be left. */
function interrupted(
  created: string[],
  undone: string[],
  network: string | undefined,
  cause: unknown,
): InterruptedError {
  const removed = undone.filter((item) => item.startsWith('container ')).length
  const networkRemoved = network !== undefined && undone.includes('network')
  let message = `Interrupted: removed ${removed} container(s)${networkRemoved ? ` and network ${network}` : ''} this run created`
  const left = [
    created.length > removed ? `${created.length - removed} container(s)` : '',
    network && !networkRemoved ? `network ${network}` : '',
  ].filter(Boolean)
  if (left.length > 0) message += `; could not remove ${left.join(' and ')}: \`create-gateway down\` removes them`
  return new InterruptedError(message, {cause})
}

/**
 * Build, create and start the stack of a project, then wait until every container is healthy.
 * Running it again changes only what differs from the manifest (config hash). On any failure it
 * removes the containers and network this run created and throws with the reason and the logs.
 */
export async function upStack(dir: string, manifest: Manifest, options: UpOptions = {}): Promise<UpResult> {
  const clock = options.clock ?? systemClock
  const started = clock.now()
  const progress = options.onProgress ?? (() => {})
  const timeoutMs = options.timeoutMs ?? DEFAULT_UP_TIMEOUT_MS
  const root = resolve(dir)
  const stack = buildStackSpec(manifest)

  // Bad input fails before the engine is touched.
  const dotenv = await readProjectEnv(root)
  const environment = Object.fromEntries(
    stack.services.map((spec) => [spec.service, resolveEnvironment(spec, dotenv, options.env ?? process.env)]),
  )

  // Compose secrets (each Django service's SECRET_KEY) are files of the project: Compose refuses to
  // start without them, and so does `up`, before the engine is touched.
  requireSecretFiles(root, stack)

  // Between steps: stop when the user interrupted. Before the try below nothing exists to remove yet.
  const checkpoint = () => {
    if (options.signal?.aborted) throw new InterruptedError('Interrupted: removed 0 container(s) this run created')
  }

  const engine = options.engine ?? (await connectEngine())
  checkpoint()
  const existing = await engine.containers({[LABELS.project]: stack.project})
  await checkPorts(manifest, stack, existing, engine)

  // Images used as they are first: a missing one fails in seconds, before a long build.
  const images: UpResult['images'] = []
  for (const spec of stack.services) {
    checkpoint()
    if (!spec.build) images.push({...(await ensureImage(engine, spec, progress)), service: spec.service})
  }

  for (const spec of stack.services) {
    if (!spec.build) continue
    checkpoint()
    const image = await buildImage(engine, {
      service: spec.service,
      context: resolve(root, spec.build.context),
      dockerfile: spec.build.dockerfile,
      tag: spec.image,
      labels: {[LABELS.project]: stack.project, [LABELS.service]: spec.service, [LABELS.ownProject]: stack.project},
      onProgress: progress,
    })
    images.push({...image, service: spec.service})
  }

  checkpoint()

  const imageIds = Object.fromEntries(images.map((image) => [image.service, image.id]))
  const context: ProjectContext = {
    project: stack.project,
    dir: root,
    network: stack.network,
    imageIds,
    environment,
    runId: runId(options.env ?? process.env),
    compose: composeObject(manifest),
    variables: {...dotenv, ...(options.env ?? process.env)},
  }
  const fullPlan = planContainers(desiredContainers(stack, context), existing)
  // Behind a running gateway, changed replicas are rolled (after the rest is up); the plain path below
  // handles everything else, and all of a first `up`.
  const rolling = options.rollout ? rollingChanges(stack, fullPlan, context) : []
  const rolled = new Set(rolling.map((change) => change.spec.service))
  const plan: ContainerPlan = {
    containers: fullPlan.containers.filter((item) => !rolled.has(item.desired.service)),
    remove: fullPlan.remove.filter((container) => !rolled.has(container.labels[LABELS.service] ?? '')),
  }
  const report: UpContainer[] = []
  const created: string[] = []
  let createdNetwork: string | undefined
  /** Networks besides the default one (the compose file's own `networks:`), for the rollback. */
  const createdNetworks: string[] = []
  /** Every network this run created, by name, for the message after a rollback. */
  const createdNetworkNames: string[] = []

  /** Remove what is replaced and create what is new, without starting it; returns the container's id. */
  const prepareContainer = async (item: PlannedContainer): Promise<string> => {
    if (item.action === 'keep' || item.action === 'start') return item.existing!.id
    checkpoint()
    if (item.action === 'recreate') {
      progress(`Recreating ${item.desired.name} (configuration or image changed)`)
      await engine.stopContainer(item.existing!.id, item.desired.stopGraceSeconds)
      await engine.removeContainer(item.existing!.id)
    } else {
      progress(`Creating ${item.desired.name}`)
    }

    try {
      const id = await engine.createContainer(item.desired.options)
      created.push(id)
      for (const network of item.desired.extraNetworks) await engine.connectNetwork(network.name, id, network.endpoint)
      return id
    } catch (error) {
      if (/already in use/i.test(engineMessage(error))) {
        throw new OperationError(
          `A container named ${item.desired.name} already exists and does not belong to project ${stack.project}`,
          {
            hint: `Remove it (\`docker rm -f ${item.desired.name}\`) or rename the project in gateway.yaml.`,
            cause: error,
          },
        )
      }

      throw engineFailure(`Creating ${item.desired.name}`, error)
    }
  }

  const startContainer = async (item: PlannedContainer, spec: StackServiceSpec, id: string): Promise<void> => {
    checkpoint()
    progress(`Starting ${item.desired.name}`)
    try {
      await engine.startContainer(id)
    } catch (error) {
      throw startError(manifest, spec, item.desired.name, error)
    }
  }

  try {
    // Networks exactly as `docker compose up` makes them (its config-hash label included: Compose
    // removes and recreates a project network whose hash label differs from its own).
    for (const network of desiredNetworks(context, stack)) {
      if (await engine.network(network.name)) continue
      progress(`Creating network ${network.name}`)
      const id = await engine.createNetwork(network.name, network.labels, network.options)
      createdNetworkNames.push(network.name)
      if (network.name === stack.network) createdNetwork = id
      else createdNetworks.push(id)
    }

    // Replicas beyond the manifest's count, services no longer in it, duplicates: stop gracefully.
    checkpoint()
    await Promise.all(
      plan.remove.map(async (container) => {
        checkpoint()
        progress(`Removing ${container.name} (not in gateway.yaml any more)`)
        const grace =
          stack.services.find((spec) => spec.service === container.labels[LABELS.service])?.stopGraceSeconds ?? 10
        await engine.stopContainer(container.id, grace)
        await engine.removeContainer(container.id)
        report.push({
          service: container.labels[LABELS.service] ?? '?',
          name: container.name,
          number: replicaNumber(container),
          action: 'remove',
        })
      }),
    )

    // Each wave starts as soon as the one before is running: NGINX only needs the replicas' names
    // to resolve, not their health, so all healthchecks run side by side and `up` waits once.
    // Only a kept gateway must wait for new replicas to be healthy before it reloads onto them.
    const changedServices = new Set<string>()
    let awaited: AwaitedContainer[] = []
    const waitForHealth = async () => {
      if (awaited.length === 0) return
      progress(
        `Waiting for ${awaited.map((container) => container.name).join(', ')} to be healthy (up to ${Math.round(timeoutMs / 1000)} s)`,
      )
      await waitAllHealthy(engine, awaited, timeoutMs, clock, options.signal)
      awaited = []
    }

    // Creating needs no running dependency: create every container up front, side by side.
    checkpoint()
    const ids = await settleAll(plan.containers.map((item) => prepareContainer(item)))
    const idOf = new Map(plan.containers.map((item, index) => [item, ids[index]!]))
    for (const [waveIndex, wave] of startWaves(stack).entries()) {
      const specOf = (item: PlannedContainer) => wave.find((candidate) => candidate.service === item.desired.service)!
      const items = plan.containers.filter((item) => wave.some((spec) => spec.service === item.desired.service))
      const reload = items.filter(
        (item) =>
          item.action === 'keep' &&
          specOf(item).role === 'gateway' &&
          specOf(item).dependsOn.some((name) => changedServices.has(name)),
      )
      if (reload.length > 0) {
        await waitForHealth()
        checkpoint()
        for (const item of reload) {
          progress(`Reloading NGINX in ${item.desired.name} (its upstream containers changed)`)
          await engine.signalContainer(idOf.get(item)!, 'HUP')
        }
      }

      await settleAll(
        items
          .filter((item) => item.action !== 'keep')
          .map((item) => startContainer(item, specOf(item), idOf.get(item)!)),
      )
      for (const item of items) {
        const id = idOf.get(item)!
        if (item.action !== 'keep') changedServices.add(item.desired.service)
        awaited.push({
          id,
          name: item.desired.name,
          service: item.desired.service,
          wave: waveIndex,
          // No probe of our own: `up` reports what the engine's healthcheck says, so `status` right
          // after it agrees (the first check runs one interval, 5 s, after the start).
        })
        report.push({
          service: item.desired.service,
          name: item.desired.name,
          number: item.desired.number,
          action: item.action,
          id,
        })
      }
    }

    await waitForHealth()
    // Interrupted at the very end: the user asked for no stack, so it goes like any other step.
    checkpoint()
  } catch (error) {
    const undone = await rollback(engine, created, createdNetwork)
    for (const network of createdNetworks) await engine.removeNetwork(network).catch(() => {})
    if (options.signal?.aborted) throw interrupted(created, undone, createdNetwork && stack.network, error)
    const note =
      undone.length > 0
        ? `\nRemoved what this run created: ${created.length} container(s)${createdNetworkNames.length > 0 ? ` and network(s) ${createdNetworkNames.join(', ')}` : ''}.`
        : ''
    if (error instanceof GatewayError) {
      error.message += note
      throw error
    }

    throw engineFailure(`Starting project ${stack.project}${note}`, error)
  }

  if (rolling.length > 0) {
    const gateway = fullPlan.containers.find((item) => item.desired.role === 'gateway')!.existing!
    report.push(
      ...(await options.rollout!({
        engine,
        dir: root,
        manifest,
        gateway,
        services: rolling,
        timeoutMs,
        clock,
        signal: options.signal,
        onProgress: progress,
      })),
    )
  }

  const endpoints = await stackEndpoints(manifest)
  return {
    project: stack.project,
    changed:
      createdNetwork !== undefined ||
      images.some((image) => image.built) ||
      report.some((container) => container.action !== 'keep'),
    images,
    network: {name: stack.network, created: createdNetwork !== undefined},
    containers: report,
    rolled: rolling.map((change) => change.spec.service),
    urls: endpoints.urls,
    curl: endpoints.curl,
    durationMs: clock.now() - started,
  }
}

// ---- down ----------------------------------------------------------------------------------------

export interface DownOptions extends StackOptions {
  /** Also remove the project's labelled volumes. */
  volumes?: boolean
  /** Seconds each container may take to stop before SIGKILL, instead of its service's grace period. */
  timeoutSeconds?: number
  /** Find and report what would be removed; stop and remove nothing. */
  dryRun?: boolean
}

export interface DownResult {
  project: string
  containers: string[]
  networks: string[]
  volumes: string[]
  dryRun?: boolean
}

/**
 * Stop and remove every container and network labelled with the project (including those that
 * `docker compose up` made), the gateway first so no request reaches a stopping replica. Files stay.
 */
export async function downStack(manifest: Manifest, options: DownOptions = {}): Promise<DownResult> {
  const progress = options.onProgress ?? (() => {})
  const stack = buildStackSpec(manifest)
  const engine = options.engine ?? (await connectEngine())
  const projectLabel = {[LABELS.project]: stack.project}
  const containers = await engine.containers(projectLabel)

  // Reverse start order: dependents (the gateway) stop before what they depend on.
  const waves = startWaves(stack)
  const waveOf = (container: ContainerState) => {
    const index = waves.findIndex((wave) => wave.some((spec) => spec.service === container.labels[LABELS.service]))
    return index === -1 ? -1 : index
  }

  const order = [...new Set(containers.map((container) => waveOf(container)))].sort((a, b) => b - a)
  const removed: string[] = []
  for (const wave of order) {
    const group = containers.filter((container) => waveOf(container) === wave)
    await Promise.all(
      group.map(async (container) => {
        const grace =
          options.timeoutSeconds ??
          stack.services.find((spec) => spec.service === container.labels[LABELS.service])?.stopGraceSeconds ??
          10
        if (options.dryRun) {
          removed.push(container.name)
          return
        }

        progress(`Stopping ${container.name}`)
        try {
          await engine.stopContainer(container.id, grace)
          await engine.removeContainer(container.id, {volumes: options.volumes})
        } catch (error) {
          throw engineFailure(`Removing ${container.name}`, error)
        }

        removed.push(container.name)
      }),
    )
  }

  const networks: string[] = []
  for (const network of await engine.networks(projectLabel)) {
    if (options.dryRun) {
      networks.push(network.name)
      continue
    }

    progress(`Removing network ${network.name}`)
    try {
      await engine.removeNetwork(network.id)
    } catch (error) {
      throw engineFailure(
        `Removing network ${network.name} (is a container outside the project still attached?)`,
        error,
      )
    }

    networks.push(network.name)
  }

  const volumes: string[] = []
  if (options.volumes) {
    for (const volume of await engine.volumes(projectLabel)) {
      if (options.dryRun) {
        volumes.push(volume.name)
        continue
      }

      progress(`Removing volume ${volume.name}`)
      await engine.removeVolume(volume.name)
      volumes.push(volume.name)
    }
  }

  return {project: stack.project, containers: removed, networks, volumes, ...(options.dryRun ? {dryRun: true} : {})}
}

// ---- status --------------------------------------------------------------------------------------

export interface StatusRow {
  service: string
  name: string
  number: number
  /** created | running | restarting | exited | ... */
  state: string
  /** healthy | starting | unhealthy | none */
  health: string
  ports: string[]
  image: string
  /** Whether the gateway's upstream lists this replica (filled in by the scale feature). */
  inUpstream?: boolean
}

/** One row per long-running container of the project, in start order then replica number. */
export async function stackStatus(manifest: Manifest, options: StackOptions = {}): Promise<StatusRow[]> {
  const stack = buildStackSpec(manifest)
  const engine = options.engine ?? (await connectEngine())
  // One-off containers (certbot runs, `docker compose run`) are left out, as `docker compose ps` does.
  const containers = (await engine.containers({[LABELS.project]: stack.project})).filter(isNotOneOff)
  const order = stack.services.map((spec) => spec.service)
  const rank = (service: string) => (order.includes(service) ? order.indexOf(service) : order.length)
  return containers
    .map((container) => ({
      service: container.labels[LABELS.service] ?? '?',
      name: container.name,
      number: replicaNumber(container),
      state: container.status,
      health: container.health ?? 'none',
      ports: container.ports,
      image: container.image,
    }))
    .sort((a, b) => rank(a.service) - rank(b.service) || a.service.localeCompare(b.service) || a.number - b.number)
}
