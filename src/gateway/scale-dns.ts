import {replicaNumber} from '../docker/containers.js'
import {engineMessage, type ContainerState, type Engine} from '../docker/engine.js'
import {removeQuietly} from '../docker/rollback.js'
import {LABELS} from '../docker/spec.js'
import {OperationError} from '../errors.js'
import {MANIFEST_FILE} from '../manifest/load.js'
import type {StackSpec} from '../manifest/stack.js'
import type {Progress} from '../util/progress.js'
import type {Clock} from '../util/retry.js'
import {
  addressOf,
  holdsServiceName,
  JOIN_SETTLE_MS,
  LEAVE_SETTLE_MS,
  setServiceAlias,
  waitForAnswer,
} from './dns-upstream.js'
import type {GatewayRef} from './nginx.js'
import {saveReplicaCounts} from './replica-counts.js'
import {keptReplicaState, stopReplica, type Replica} from './replicas.js'
import type {ServicePlan} from './scale-plan.js'
import type {ScaleResult, ServiceScale} from './scale-result.js'
import {describeTargets, type ScaleTargets} from './targets.js'

/**
 * `scale` when upstreams.conf follows DNS (`server web:8000 resolve`): NGINX is never reloaded, so no
 * client's keep-alive connection is closed. The new replicas (created without the service name and
 * healthy by now) get the name and the gateway's DNS answer is seen to hold them; then the leaving
 * replicas lose the name, the answer is seen to drop them, NGINX's cached answer and its idle
 * connections to them run out, and only then do they get SIGTERM (highest number first).
 *
 * Until the DNS answer is confirmed nothing is final: a failure takes the name from nothing that kept
 * it, gives it back to the leaving replicas, and removes the replicas this run created. Then
 * gateway.yaml is saved (the point of no return).
 */

export interface DnsScaleRequest {
  engine: Engine
  root: string
  stack: StackSpec
  targets: ScaleTargets
  plans: ServicePlan[]
  /** Replicas this run created, healthy and without the service name. */
  created: Replica[]
  /** Kept replicas this run waited for (they were starting): their healthcheck has passed for us. */
  waited: string[]
  gateway: GatewayRef
  clock: Clock
  started: number
  progress: Progress
  warnings: string[]
  /** The caller's error with what the rollback did appended (its type and hint kept). */
  fail: (error: unknown, notes: string[]) => Error
}

export async function scaleByDns(request: DnsScaleRequest): Promise<ScaleResult> {
  const {engine, gateway, clock, progress, warnings, created, plans} = request
  const leaving = plans
    .flatMap((plan) => plan.leave)
    .sort((a, b) => replicaNumber(b) - replicaNumber(a) || a.name.localeCompare(b.name))
  const leavingAddresses = new Map<string, string[]>()
  const unnamed: ContainerState[] = []

  // Kept replicas hold the name exactly when they may take requests, as the reload path lists only
  // those in upstreams.conf: a healthy one that lacks it (a run stopped half-way, or unhealthy at an
  // earlier scale) gets it back with the new ones; an unhealthy one loses it with the leaving ones,
  // keeps running, and gets it back from a later `scale` once healthy.
  const joining: Replica[] = [...created]
  const benched: ContainerState[] = []
  const empty: string[] = []
  for (const plan of plans) {
    let serving = created.filter((replica) => replica.service === plan.spec.service).length
    for (const kept of plan.keep) {
      const holds = await holdsServiceName(engine, kept.id, plan.spec.service)
      const state = await keptReplicaState(engine, kept, request.waited.includes(kept.id))
      if (state.serves) {
        serving += 1
        if (!holds)
          joining.push({id: kept.id, name: kept.name, service: plan.spec.service, number: replicaNumber(kept)})
      } else {
        warnings.push(
          `${kept.name} is ${state.why}: it keeps running without the name ${plan.spec.service}, so the gateway sends it no requests (a later \`scale\` gives the name back once it is healthy)`,
        )
        if (holds) benched.push(kept)
      }
    }

    if (serving === 0) empty.push(plan.spec.service)
  }

  for (const container of [...leaving, ...benched])
    leavingAddresses.set(container.id, await addressOf(engine, container.id))

  try {
    // As the reload path, which will not write an upstream without servers.
    if (empty.length > 0)
      throw new OperationError(
        `No replica of ${empty.join(', ')} would take requests: every one this run keeps is unhealthy, and none is new`,
        {
          hint: '`create-gateway status` shows their state and `create-gateway logs SERVICE` their output.',
        },
      )
    for (const replica of [...joining].sort((a, b) => a.number - b.number)) {
      progress(`Giving ${replica.name} the name ${replica.service}: the gateway sends it requests from now on`)
      const change = await setServiceAlias(engine, replica, replica.service, true)
      if (change.moved) warnings.push(change.moved)
    }

    for (const plan of plans) {
      const mine = joining.filter((replica) => replica.service === plan.spec.service)
      if (mine.length === 0) continue
      const present = await Promise.all(mine.map((replica) => addressOf(engine, replica.id)))
      await waitForAnswer(engine, gateway, plan.spec.service, {present, clock})
      progress(`The gateway's DNS answer for ${plan.spec.service} holds ${mine.map((r) => r.name).join(', ')}`)
    }

    // NGINX's cached answer (valid=1s) still lacks them for up to a second; let it expire.
    if (joining.length > 0) await clock.sleep(JOIN_SETTLE_MS)

    for (const container of [...leaving, ...benched]) {
      const service = container.labels[LABELS.service] ?? ''
      progress(`Taking the name ${service} from ${container.name}: the gateway sends it no new requests`)
      unnamed.push(container)
      await setServiceAlias(engine, container, service, false)
    }

    for (const plan of plans) {
      const absent = [...plan.leave, ...benched.filter((container) => plan.keep.includes(container))].flatMap(
        (container) => leavingAddresses.get(container.id) ?? [],
      )
      if (absent.length > 0) await waitForAnswer(engine, gateway, plan.spec.service, {absent, clock})
    }
  } catch (error) {
    const notes: string[] = []
    for (const container of unnamed) {
      try {
        await setServiceAlias(engine, container, container.labels[LABELS.service] ?? '', true)
        notes.push(`Gave ${container.name} the service name back: it serves as before.`)
      } catch (restoreError) {
        notes.push(`Could not give ${container.name} the service name back: ${engineMessage(restoreError)}`)
      }
    }

    const removed = await removeQuietly(engine, created)
    if (removed.length > 0) notes.push(`Removed the replica(s) this run created: ${removed.join(', ')}.`)
    notes.push('NGINX was not reloaded; its configuration is unchanged.')
    throw request.fail(error, notes)
  }

  // ---- the point of no return: the gateway's DNS answer is the new set of replicas -----------------
  await saveReplicaCounts(request.root, request.targets)
  progress(`Saved ${describeTargets(request.targets)} in ${MANIFEST_FILE}`)

  if (leaving.length > 0) {
    progress(
      `Waiting ${LEAVE_SETTLE_MS / 1000} s: NGINX's DNS answer expires (1 s) and its idle connections to ${leaving.map((c) => c.name).join(', ')} close (keepalive_timeout 4s)`,
    )
    await clock.sleep(LEAVE_SETTLE_MS)
  }

  const failures: string[] = []
  const removed: string[] = []
  for (const container of leaving) {
    try {
      const spec = request.stack.services.find((candidate) => candidate.service === container.labels[LABELS.service])
      await stopReplica(engine, spec, container, progress)
      removed.push(container.name)
    } catch (error) {
      failures.push(`${container.name}: ${engineMessage(error)}`)
    }
  }

  if (failures.length > 0) {
    throw new OperationError(
      `Scaled to ${describeTargets(request.targets)} (the gateway's DNS answer holds the new replicas and ${MANIFEST_FILE} is saved), but could not remove:\n  ${failures.join('\n  ')}`,
      {
        hint: 'They no longer receive requests. Remove them with `docker rm -f NAME`, or run `create-gateway up`, which removes replicas beyond the saved count.',
      },
    )
  }

  const services: ServiceScale[] = plans.map((plan) => {
    const mine = created.filter((replica) => replica.service === plan.spec.service)
    const serving = [
      ...plan.keep
        .filter((container) => !benched.includes(container))
        .map((container) => ({name: container.name, number: replicaNumber(container)})),
      ...mine,
    ].sort((a, b) => a.number - b.number)
    return {
      service: plan.spec.service,
      from: plan.existing.filter((container) => container.running).length,
      to: plan.target,
      added: mine.map((replica) => replica.name),
      removed: removed.filter((name) => plan.leave.some((container) => container.name === name)),
      upstream: serving.map((replica) => replica.name),
    }
  })
  return {
    project: request.stack.project,
    changed:
      joining.length > 0 || benched.length > 0 || removed.length > 0 || plans.some((plan) => plan.replace.length > 0),
    manifestOnly: false,
    services,
    reloaded: false,
    warnings,
    durationMs: clock.now() - request.started,
  }
}
