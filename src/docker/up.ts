import {resolve} from 'node:path'

import {GatewayError, InterruptedError, OperationError} from '../errors.js'
import type {Manifest} from '../manifest/schema.js'
import {buildStackSpec, type StackServiceSpec} from '../manifest/stack.js'
import {systemClock, type Clock} from '../util/retry.js'
import {replicaNumber} from './containers.js'
import {stackEndpoints} from './endpoints.js'
import {connectEngine, engineFailure, engineMessage, type Engine, type StackOptions} from './engine.js'
import {waitAllHealthy, type AwaitedContainer} from './health.js'
import {buildImage, type BuiltImage} from './images.js'
import {checkPorts, startError} from './ports.js'
import {ensureImage} from './pull.js'
import {rollingChanges, type Rollout, type UpContainer} from './rolling.js'
import {removeQuietly} from './rollback.js'
import {requireSecretFiles} from './up-plan.js'
import {
  desiredContainers,
  desiredNetworks,
  LABELS,
  planContainers,
  readProjectEnv,
  resolveEnvironment,
  projectContext,
  startWaves,
  type ContainerPlan,
  type PlannedContainer,
} from './spec.js'

export const DEFAULT_UP_TIMEOUT_MS = 180_000

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
  /**
   * Called once the gateway image is on this machine, before any container starts: the gateway
   * layer's check that upstreams.conf is a form its NGINX loads. Returns a note for the output.
   */
  fitUpstreams?: (engine: Engine, gatewayImage: string) => Promise<string | undefined>
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

/** What an interrupted `up` says: how much of what it created it removed, and what may be left. */
function interrupted(
  created: number,
  removed: number,
  network: string | undefined,
  networkRemoved: boolean,
  cause: unknown,
): InterruptedError {
  let message = `Interrupted: removed ${removed} container(s)${networkRemoved ? ` and network ${network}` : ''} this run created`
  const left = [
    created > removed ? `${created - removed} container(s)` : '',
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
  const gatewayImage = stack.services.find((spec) => spec.role === 'gateway')?.image
  const fitted = gatewayImage && options.fitUpstreams ? await options.fitUpstreams(engine, gatewayImage) : undefined
  if (fitted) progress(fitted)

  const imageIds = Object.fromEntries(images.map((image) => [image.service, image.id]))
  const context = projectContext(manifest, stack, {
    dir: root,
    imageIds,
    environment,
    dotenv,
    env: options.env ?? process.env,
  })
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
  /** The containers this run created, for the rollback. */
  const created: Array<{id: string; name: string}> = []
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
      created.push({id, name: item.desired.name})
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
    // Remove what this run created, newest first; errors here must not hide the error that caused it.
    const removed = (await removeQuietly(engine, created)).length
    const networkRemoved =
      createdNetwork !== undefined &&
      (await engine.removeNetwork(createdNetwork).then(
        () => true,
        () => false,
      ))
    for (const network of createdNetworks) await engine.removeNetwork(network).catch(() => {})
    if (options.signal?.aborted)
      throw interrupted(created.length, removed, createdNetwork && stack.network, networkRemoved, error)
    const note =
      removed > 0 || networkRemoved
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
