import {replicaNumber} from '../docker/containers.js'
import {engineFailure, engineMessage, type ContainerState, type Engine} from '../docker/engine.js'
import {LABELS, type DesiredContainer} from '../docker/spec.js'
import {probeCommand, waitAllHealthy} from '../docker/health.js'
import type {ReplicaChanges, Rollout, RolloutRequest, UpContainer} from '../docker/rolling.js'
import {removeQuietly} from '../docker/rollback.js'
import {GatewayError, InterruptedError, OperationError} from '../errors.js'
import type {Manifest} from '../manifest/schema.js'
import {PROJECT_PATHS} from '../manifest/stack.js'
import {startReplica, stopReplica, type Replica} from './replicas.js'
import {changeGateway, GatewayChangeError} from './apply.js'
import {drainWorkers, type GatewayRef, type ReloadResult} from './nginx.js'
import {followsDns, readUpstreamsFile, renderUpstreamsWith, upstreamHosts, upstreamsPath} from './upstreams.js'
import {holdsServiceName, moveServiceName, withoutServiceAlias} from './dns-upstream.js'

/**
 * `up` on a running stack whose Django replicas changed (new code, new settings, a new count): the
 * replicas change behind the gateway the way `scale` changes them, so the service never stops
 * answering. Per service:
 *
 * 1. New containers start first and must pass their healthcheck: the replicas the manifest adds and,
 *    when replicas are to be replaced, one extra replica on the new configuration. It is a canary too:
 *    a new configuration that cannot become healthy fails here, before any old replica is touched.
 * 2. One upstream step takes them in and takes out the replicas beyond the count and the first replica
 *    to replace (write upstreams.conf, `nginx -t`, reload, confirm, let the old workers finish).
 * 3. Each replica to replace is stopped gracefully (it no longer receives requests), created again with
 *    the new configuration and waited for; the next upstream step takes it back in and takes the next
 *    one out. The last step takes the extra replica out, which is then stopped.
 *
 * When upstreams.conf follows DNS (`server web:8000 resolve`), each upstream step moves the service
 * name's alias instead (dns-upstream.ts): the new replica gets it once healthy and is seen in the
 * gateway's DNS answer, the old one loses it and its connections run out before SIGTERM. No reload.
 *
 * Otherwise one reload per replica replaced, plus one. Serving capacity never drops below the replicas that ran.
 * If a step fails, the gateway keeps the last upstream that loaded, the error says which replicas run
 * which configuration, and `up` run again carries on from there.
 */

function byNumber(replicas: Replica[]): string[] {
  return [...replicas].sort((a, b) => a.number - b.number).map((replica) => replica.name)
}

class RolloutSession {
  private readonly gateway: GatewayRef
  private upstreams: Record<string, string[]> = {}
  /** The text NGINX runs now: what a failed step restores. */
  private loaded: string | undefined
  readonly rows: UpContainer[] = []
  /** Containers this run started: the ones on the new configuration. */
  readonly fresh = new Set<string>()
  /** Services whose upstream follows DNS (`resolve`): they change by the name's alias, never a reload. */
  private byDns = new Set<string>()
  /** On the DNS path: the replicas holding each service's name now. */
  private named = new Map<string, string[]>()

  constructor(private readonly request: RolloutRequest) {
    this.gateway = {id: request.gateway.id, name: request.gateway.name}
  }

  get engine(): Engine {
    return this.request.engine
  }

  progress(message: string): void {
    this.request.onProgress(message)
  }

  async load(): Promise<void> {
    this.loaded = (await readUpstreamsFile(this.request.dir))?.toString('utf8')
    this.upstreams = upstreamHosts(this.request.manifest, this.loaded)
    for (const change of this.request.services) {
      if (!followsDns(this.loaded, [change.spec.service])) continue
      this.byDns.add(change.spec.service)
      // From the engine, not assumed: a run that stopped half-way may have left a replica without it.
      const named: string[] = []
      for (const container of [...change.keep, ...change.replace.map((item) => item.existing), ...change.retire])
        if (await holdsServiceName(this.engine, container.id, change.spec.service)) named.push(container.name)
      if (!this.named.has(change.spec.service)) this.named.set(change.spec.service, named)
    }
  }

  /** Who serves `service` now, by container name (the service-name form means every running replica). */
  serving(change: ReplicaChanges): string[] {
    const listed = this.upstreams[change.spec.service]
    const running = [...change.keep, ...change.replace.map((item) => item.existing), ...change.retire]
    if (!listed || (listed.length === 1 && listed[0] === change.spec.service))
      return running.map((container) => container.name)
    return listed
  }

  /** Point the service's upstream at `members` (one gateway change: write, `nginx -t`, confirmed reload), then drain the old workers. */
  async route(manifest: Manifest, service: string, members: string[]): Promise<void> {
    if (this.byDns.has(service)) {
      this.progress(`Gateway: ${service} -> ${members.join(', ')} (by DNS, no reload)`)
      const warnings = await moveServiceName(
        this.engine,
        this.gateway,
        service,
        this.named.get(service) ?? [],
        members,
        {
          clock: this.request.clock,
          progress: (message) => this.progress(message),
        },
      )
      this.named.set(service, members)
      for (const warning of warnings) this.progress(`Warning: ${warning}`)
      return
    }

    const text = await renderUpstreamsWith(manifest, this.upstreams, {[service]: members}, 'reload')
    if (text === this.loaded) return
    this.progress(`Gateway: ${service} -> ${members.join(', ')}`)
    let reload: ReloadResult | undefined
    try {
      reload = await changeGateway(
        this.engine,
        this.gateway,
        [{path: upstreamsPath(this.request.dir), content: text}],
        {
          clock: this.request.clock,
          keepNewFiles: true,
        },
      )
    } catch (error) {
      // The error says what failed; the state report `up` adds says what runs.
      throw error instanceof GatewayChangeError ? error.cause : error
    }

    this.loaded = text
    this.upstreams = {...this.upstreams, [service]: members}
    const drain = await drainWorkers(this.engine, this.gateway, reload!.oldWorkers, {clock: this.request.clock})
    if (!drain.drained)
      this.progress(
        `Old NGINX workers ${drain.remaining.join(', ')} still finish requests after ${drain.ms} ms; going on (each replica still gets its graceful shutdown)`,
      )
  }

  async start(change: ReplicaChanges, desired: DesiredContainer[]): Promise<Replica[]> {
    const started: Replica[] = []
    try {
      for (const want of desired) {
        this.fresh.add(want.name)
        // On the DNS path a new replica gets the service name only once healthy (route).
        const desired = this.byDns.has(change.spec.service) ? withoutServiceAlias(want) : want
        await startReplica(
          this.engine,
          desired,
          this.request.manifest.name,
          (message) => this.progress(message),
          started,
        )
      }

      this.progress(
        `Waiting for ${started.map((replica) => replica.name).join(', ')} to be healthy (up to ${Math.round(this.request.timeoutMs / 1000)} s)`,
      )
      const probe = probeCommand(change.spec.healthcheck?.test ?? [])
      await waitAllHealthy(
        this.engine,
        started.map((replica) => ({...replica, wave: 0, probe})),
        this.request.timeoutMs,
        this.request.clock,
        this.request.signal,
      )
      return started
    } catch (error) {
      const removed = await removeQuietly(this.engine, started)
      if (removed.length > 0) this.progress(`Removed ${removed.join(', ')}, which did not become healthy`)
      throw error
    }
  }

  async retire(change: ReplicaChanges, container: {id: string; name: string}): Promise<void> {
    try {
      await stopReplica(this.engine, change.spec, container, (message) => this.progress(message))
    } catch (error) {
      throw engineFailure(`Removing ${container.name}`, error)
    }
  }

  checkpoint(): void {
    if (this.request.signal?.aborted) throw new InterruptedError('Interrupted')
  }
}

async function rollService(session: RolloutSession, change: ReplicaChanges, manifest: Manifest): Promise<void> {
  const service = change.spec.service
  const replace = [...change.replace].sort((a, b) => replicaNumber(a.existing) - replicaNumber(b.existing))
  const highest = Math.max(
    0,
    ...[...change.keep, ...change.replace.map((item) => item.existing), ...change.retire].map(replicaNumber),
    ...change.create.map((want) => want.number),
  )
  const extra = replace.length > 0 ? change.desiredFor(highest + 1) : undefined
  const serving = new Map<string, Replica>()
  for (const container of [...change.keep, ...replace.map((item) => item.existing)])
    serving.set(container.name, {id: container.id, name: container.name, service, number: replicaNumber(container)})
  const listed = new Set(session.serving(change))
  const members = () => byNumber([...serving.values()].filter((replica) => listed.has(replica.name)))

  const what = [
    ...(replace.length > 0
      ? [
          `replacing ${replace.map((item) => item.existing.name).join(', ')} one at a time (${extra!.name} serves meanwhile)`,
        ]
      : []),
    ...(change.create.length > 0 ? [`adding ${change.create.map((want) => want.name).join(', ')}`] : []),
    ...(change.retire.length > 0 ? [`retiring ${change.retire.map((container) => container.name).join(', ')}`] : []),
  ]
  session.progress(`Rolling update of ${service} behind the running gateway: ${what.join('; ')}`)

  // 1. New containers first: the added replicas and the extra one, all healthy before any change.
  session.checkpoint()
  const added = await session.start(change, [...change.create, ...(extra ? [extra] : [])])
  for (const replica of added) {
    serving.set(replica.name, replica)
    listed.add(replica.name)
  }

  for (const want of change.create)
    session.rows.push({
      service,
      name: want.name,
      number: want.number,
      action: 'create',
      id: added.find((replica) => replica.name === want.name)?.id,
    })
  for (const container of change.keep)
    session.rows.push({
      service,
      name: container.name,
      number: replicaNumber(container),
      action: 'keep',
      id: container.id,
    })

  // 2. One step in: the new ones; out: the replicas beyond the count and the first one to replace.
  const first = replace[0]
  if (first) serving.delete(first.existing.name)
  await session.route(manifest, service, members())
  for (const container of change.retire) {
    await session.retire(change, container)
    session.rows.push({service, name: container.name, number: replicaNumber(container), action: 'remove'})
  }

  // 3. Replace one at a time; each step takes the new one in and the next one out.
  for (const [index, item] of replace.entries()) {
    session.checkpoint()
    await session.retire(change, item.existing)
    const [fresh] = await session.start(change, [item.desired])
    serving.set(fresh!.name, fresh!)
    listed.add(fresh!.name)
    session.rows.push({service, name: fresh!.name, number: fresh!.number, action: 'recreate', id: fresh!.id})
    const next = replace[index + 1]
    if (next) serving.delete(next.existing.name)
    else if (extra) serving.delete(extra.name)
    await session.route(manifest, service, members())
  }

  if (extra) {
    const surge = added.find((replica) => replica.name === extra.name)!
    await session.retire(change, surge)
  }
}

/** What runs where, for an error that stops a rolling update half-way. */
async function stateNote(session: RolloutSession, request: RolloutRequest): Promise<string> {
  const lines: string[] = []
  for (const change of request.services) {
    const containers = (await session.engine.containers({[LABELS.project]: request.manifest.name})).filter(
      (container) => container.labels[LABELS.service] === change.spec.service && container.running,
    )
    const describe = (container: ContainerState) =>
      `${container.name} (${session.fresh.has(container.name) ? 'new' : 'old'} configuration)`
    if (containers.length > 0)
      lines.push(
        `${change.spec.service} runs ${containers
          .sort((a, b) => replicaNumber(a) - replicaNumber(b))
          .map(describe)
          .join(', ')}.`,
      )
  }

  await session.load()
  const served = Object.entries(upstreamHostsOf(session, request)).map(
    ([service, hosts]) => `${service}: ${hosts.join(', ')}`,
  )
  if (served.length > 0) lines.push(`The gateway serves ${served.join('; ')} (${PROJECT_PATHS.upstreams}).`)
  return lines.join('\n')
}

function upstreamHostsOf(session: RolloutSession, request: RolloutRequest): Record<string, string[]> {
  return Object.fromEntries(request.services.map((change) => [change.spec.service, session.serving(change)]))
}

export const rollOutReplicas: Rollout = async (request) => {
  const session = new RolloutSession(request)
  await session.load()
  try {
    for (const change of request.services) await rollService(session, change, request.manifest)
  } catch (error) {
    const note = await stateNote(session, request).catch(() => '')
    const hint =
      'Fix the cause and run `create-gateway up` again: it carries on from here without stopping the service.'
    if (error instanceof InterruptedError || request.signal?.aborted)
      throw new InterruptedError(`Interrupted the rolling update.${note ? `\n${note}` : ''}\n${hint}`)
    const message = error instanceof GatewayError ? error.message : engineMessage(error)
    throw new OperationError(`The rolling update stopped: ${message}${note ? `\n${note}` : ''}`, {hint, cause: error})
  }

  return session.rows
}
