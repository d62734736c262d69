import type Docker from 'dockerode'

import {engineFailure, engineMessage, type Engine, type EndpointState} from '../docker/engine.js'
import {execIn} from '../docker/exec.js'
import type {DesiredContainer} from '../docker/spec.js'
import {OperationError} from '../errors.js'
import {retryUntil, type Clock} from '../util/retry.js'
import type {GatewayRef} from './nginx.js'

/**
 * The upstream of the resolve form (`server web:8000 resolve`): NGINX asks Docker's DNS for the
 * service name every second (`resolver 127.0.0.11 valid=1s`), so a replica serves exactly while it
 * holds the service name as a network alias. Docker cannot change an alias in place: a replica gets
 * or loses the name by leaving its network and joining again at once, asking for the same address,
 * so connections NGINX already has to it (and requests on them) carry on across the gap.
 */

/** NGINX's resolver keeps an answer this long (`valid=1s` in upstreams.conf). */
export const RESOLVER_VALID_MS = 1_000
/** Idle upstream connections to a replica NGINX no longer picks close after keepalive_timeout (4s). */
export const KEEPALIVE_TIMEOUT_MS = 4_000
/** After the name is gone from DNS: NGINX's answer expires, then its idle connections to the replica close. */
export const LEAVE_SETTLE_MS = RESOLVER_VALID_MS + KEEPALIVE_TIMEOUT_MS + 1_000
/** After the name is in DNS: NGINX's cached answer (without the replica) expires. */
export const JOIN_SETTLE_MS = RESOLVER_VALID_MS + 500
export const DNS_TIMEOUT_MS = 15_000

/** A replica as `desired` but without the service name: it runs and gets healthy while DNS leaves it out. */
export function withoutServiceAlias(desired: DesiredContainer): DesiredContainer {
  const strip = (endpoint: Docker.EndpointSettings): Docker.EndpointSettings => ({
    ...endpoint,
    Aliases: (endpoint.Aliases ?? []).filter((alias) => alias !== desired.service),
  })
  const endpoints = desired.options.NetworkingConfig?.EndpointsConfig ?? {}
  return {
    ...desired,
    options: {
      ...desired.options,
      NetworkingConfig: {
        EndpointsConfig: Object.fromEntries(
          Object.entries(endpoints).map(([name, endpoint]) => [name, strip(endpoint)]),
        ),
      },
    },
    extraNetworks: desired.extraNetworks.map((network) => ({...network, endpoint: strip(network.endpoint)})),
  }
}

/**
 * The aliases Compose gives a replica on a network, `[container name, service, ...aliases]`, with the
 * service name present or not; the short container ID the engine adds by itself is left out.
 */
export function aliasesWith(current: readonly string[], containerId: string, service: string, on: boolean): string[] {
  const own = current.filter((alias) => alias !== containerId.slice(0, 12) && alias !== service)
  if (!on) return own
  return [...own.slice(0, 1), service, ...own.slice(1)]
}

export interface AliasChange {
  /** Networks whose alias list changed. */
  networks: string[]
  /** Set when the engine gave the replica another address on joining again (its open connections are lost). */
  moved?: string
}

/**
 * Give a replica the service name on every network it is on (`on`), or take it away. Joins again with
 * the same IPv4 and MAC address; an engine that takes no fixed address on a network without a
 * configured subnet (before Docker 25 or so) joins without asking, and usually gives the same one back.
 */
export async function setServiceAlias(
  engine: Engine,
  container: {id: string; name: string},
  service: string,
  on: boolean,
): Promise<AliasChange> {
  const change: AliasChange = {networks: []}
  const before = await engine.endpoints(container.id)
  for (const [network, endpoint] of Object.entries(before)) {
    const aliases = aliasesWith(endpoint.aliases, container.id, service, on)
    if (endpoint.aliases.includes(service) === on) continue
    const what = `${on ? 'Giving' : 'Taking'} ${container.name} the name ${service} on ${network}`
    try {
      await engine.disconnectNetwork(network, container.id)
      await rejoin(engine, network, container.id, endpoint, aliases)
    } catch (error) {
      throw engineFailure(what, error)
    }

    change.networks.push(network)
    const after = (await engine.endpoints(container.id))[network]
    if (endpoint.ipv4 && after && after.ipv4 !== endpoint.ipv4)
      change.moved = `${container.name} joined ${network} again at ${after.ipv4}, not ${endpoint.ipv4}`
  }

  return change
}

async function rejoin(
  engine: Engine,
  network: string,
  containerId: string,
  endpoint: EndpointState,
  aliases: string[],
): Promise<void> {
  try {
    await engine.connectNetwork(network, containerId, {
      Aliases: aliases,
      ...(endpoint.ipv4 ? {IPAMConfig: {IPv4Address: endpoint.ipv4}} : {}),
      ...(endpoint.mac ? {MacAddress: endpoint.mac} : {}),
    })
  } catch (error) {
    if (!/user configured subnets/i.test(engineMessage(error))) throw error
    await engine.connectNetwork(network, containerId, {Aliases: aliases})
  }
}

/** The addresses Docker's DNS gives the gateway for `service`, as NGINX's resolver sees them. */
export async function gatewayAnswer(engine: Engine, gateway: GatewayRef, service: string): Promise<string[]> {
  const result = await execIn(engine, gateway.id, ['getent', 'ahostsv4', service])
  // 2: the name has no address (no replica holds it); anything else but 0 is a broken probe.
  if (result.exitCode === 2) return []
  if (result.exitCode !== 0)
    throw new OperationError(
      `Could not ask Docker's DNS for ${service} in ${gateway.name}: ${(result.stderr || result.stdout).trim() || `exit code ${result.exitCode}`}`,
    )
  return [...new Set(result.stdout.split('\n').map((line) => line.split(/\s+/)[0] ?? ''))].filter(Boolean).sort()
}

export interface DnsWait {
  /** Replicas (each by its addresses) the answer must hold, by one address at least. */
  present?: string[][]
  /** Addresses it must not hold. */
  absent?: string[]
  clock?: Clock
  timeoutMs?: number
}

/** Wait until the gateway's DNS answer for `service` holds `present` and none of `absent`. */
export async function waitForAnswer(
  engine: Engine,
  gateway: GatewayRef,
  service: string,
  wanted: DnsWait,
): Promise<string[]> {
  const present = wanted.present ?? []
  const absent = wanted.absent ?? []
  const describe = [
    present.length > 0 ? `${present.map((addresses) => addresses.join('/')).join(', ')} in` : '',
    absent.length > 0 ? `${absent.join(', ')} out of` : '',
  ]
    .filter(Boolean)
    .join(' and ')
  return retryUntil(
    () => gatewayAnswer(engine, gateway, service),
    (answer) =>
      present.every((addresses) => addresses.some((address) => answer.includes(address))) &&
      !absent.some((address) => answer.includes(address)),
    {
      timeoutMs: wanted.timeoutMs ?? DNS_TIMEOUT_MS,
      intervalMs: 200,
      clock: wanted.clock,
      describe: `${describe} the DNS answer for ${service} in ${gateway.name}`,
      explain: (answer) => answer.join(', ') || 'no address',
    },
  )
}

/** Does the container hold the service name on any of its networks (is it in the upstream)? */
export async function holdsServiceName(engine: Engine, containerId: string, service: string): Promise<boolean> {
  return Object.values(await engine.endpoints(containerId)).some((endpoint) => endpoint.aliases.includes(service))
}

/** The replica's address on the network it shares with the gateway (the one NGINX connects to). */
export async function addressOf(engine: Engine, containerId: string): Promise<string[]> {
  return Object.values(await engine.endpoints(containerId))
    .map((endpoint) => endpoint.ipv4)
    .filter(Boolean)
}

/**
 * Move the service name from the replicas named `from` to those named `to` (container names), in the
 * order that keeps capacity: the joining ones first (confirmed in the gateway's DNS answer and
 * NGINX's cached answer expired), then the leaving ones (confirmed gone, then NGINX's cached answer
 * and its idle connections to them run out), so they can be stopped. Returns the warnings.
 */
export async function moveServiceName(
  engine: Engine,
  gateway: GatewayRef,
  service: string,
  from: readonly string[],
  to: readonly string[],
  options: {clock: Clock; progress: (message: string) => void},
): Promise<string[]> {
  const warnings: string[] = []
  const lookUp = async (name: string) => {
    const state = await engine.container(name)
    if (!state) throw new OperationError(`${name} is gone`)
    return state
  }

  const joining = await Promise.all(to.filter((name) => !from.includes(name)).map(lookUp))
  const leaving = await Promise.all(from.filter((name) => !to.includes(name)).map(lookUp))
  for (const replica of joining) {
    options.progress(`Gateway: giving ${replica.name} the name ${service} (it gets requests from now on)`)
    const change = await setServiceAlias(engine, replica, service, true)
    if (change.moved) warnings.push(change.moved)
  }

  if (joining.length > 0) {
    const present = await Promise.all(joining.map((replica) => addressOf(engine, replica.id)))
    await waitForAnswer(engine, gateway, service, {present, clock: options.clock})
    await options.clock.sleep(JOIN_SETTLE_MS)
  }

  const absent: string[] = []
  for (const replica of leaving) {
    absent.push(...(await addressOf(engine, replica.id)))
    options.progress(`Gateway: taking the name ${service} from ${replica.name} (no new requests; open ones finish)`)
    await setServiceAlias(engine, replica, service, false)
  }

  if (leaving.length > 0) {
    await waitForAnswer(engine, gateway, service, {absent, clock: options.clock})
    await options.clock.sleep(LEAVE_SETTLE_MS)
  }

  return warnings
}
