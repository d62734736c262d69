import {fail} from './errors.js'
import type {NormalizedPort, NormalizedResource, NormalizedService, Ulimit} from './model.js'
import {boolean, float, integer, isRecord, mapping, parseBytes, parseDuration, stringList, text} from './read.js'

/** Service settings with a syntax of their own: ports, deploy (resources, restart policy, updates), healthcheck, ulimits. */

/** The short port syntax: `[IP:][HOST:]CONTAINER[/PROTOCOL]`, IPv6 hosts in brackets. */
function parsePort(spec: string, where: string): NormalizedPort {
  const [body, protocol = 'tcp'] = spec.split('/') as [string, string?]
  let hostIp = ''
  let rest = body
  const bracketed = /^\[([^\]]+)\]:(.*)$/.exec(body)
  if (bracketed) {
    hostIp = bracketed[1]!
    rest = bracketed[2]!
  } else {
    const parts = body.split(':')
    if (parts.length === 3) {
      hostIp = parts[0]!
      rest = `${parts[1]}:${parts[2]}`
    } else if (parts.length > 3) {
      fail(where, `IPv6 host addresses need brackets: ${spec}`)
    }
  }

  const [published, target] = rest.includes(':') ? (rest.split(':') as [string, string]) : ['', rest]
  if (!/^\d+$/.test(target) || !/^\d*$/.test(published))
    fail(where, `port ranges and names are not modelled: ${JSON.stringify(spec)}`)
  return {
    mode: 'ingress',
    ...(hostIp ? {host_ip: hostIp} : {}),
    target: Number(target),
    ...(published ? {published} : {}),
    protocol: protocol.toLowerCase(),
  }
}

/** A port in either syntax; the long one gets compose-go's defaults (tcp, ingress). */
export function normalizePort(value: unknown, where: string): NormalizedPort {
  if (typeof value === 'string' || typeof value === 'number') return parsePort(String(value), where)
  if (!isRecord(value)) return fail(where, `expected a port, got ${JSON.stringify(value)}`)
  const port: NormalizedPort = {mode: 'ingress', target: 0, protocol: 'tcp'}
  for (const [key, item] of Object.entries(value)) {
    const at = `${where}.${key}`
    if (key === 'target') port.target = integer(item, at)
    else if (key === 'published') port.published = text(item, at)
    else if (key === 'host_ip' || key === 'mode' || key === 'protocol' || key === 'name' || key === 'app_protocol')
      port[key] = text(item, at)
    else fail(at, 'not modelled')
  }

  return port
}

function normalizeResource(value: unknown, where: string): NormalizedResource {
  if (!isRecord(value)) return fail(where, 'expected a mapping')
  const resource: NormalizedResource = {}
  for (const [key, item] of Object.entries(value)) {
    if (key === 'cpus') resource.cpus = float(item, `${where}.cpus`)
    else if (key === 'memory') resource.memory = parseBytes(item, `${where}.memory`)
    else if (key === 'pids') resource.pids = integer(item, `${where}.pids`)
    else fail(`${where}.${key}`, 'not modelled')
  }

  return resource
}

export function normalizeDeploy(value: unknown, where: string): NonNullable<NormalizedService['deploy']> {
  if (!isRecord(value)) return fail(where, 'expected a mapping')
  const deploy: NonNullable<NormalizedService['deploy']> = {resources: {}, placement: {}}
  for (const [key, item] of Object.entries(value)) {
    const at = `${where}.${key}`
    switch (key) {
      case 'mode':
      case 'endpoint_mode':
        deploy[key] = text(item, at)
        break
      case 'replicas':
        deploy.replicas = integer(item, at)
        break
      case 'labels':
        deploy.labels = mapping(item, at)
        break
      case 'resources':
        if (!isRecord(item)) fail(at, 'expected a mapping')
        for (const [kind, resource] of Object.entries(item)) {
          if (kind !== 'limits' && kind !== 'reservations') fail(`${at}.${kind}`, 'not modelled')
          deploy.resources[kind] = normalizeResource(resource, `${at}.${kind}`)
        }

        break
      case 'restart_policy': {
        if (!isRecord(item)) fail(at, 'expected a mapping')
        const policy: NonNullable<NonNullable<NormalizedService['deploy']>['restart_policy']> = {}
        for (const [field, setting] of Object.entries(item)) {
          if (field === 'condition') policy.condition = text(setting, `${at}.condition`)
          else if (field === 'delay' || field === 'window') policy[field] = parseDuration(setting, `${at}.${field}`)
          else if (field === 'max_attempts') policy.max_attempts = integer(setting, `${at}.max_attempts`)
          else fail(`${at}.${field}`, 'not modelled')
        }

        deploy.restart_policy = policy
        break
      }

      case 'placement':
        if (!isRecord(item)) fail(at, 'expected a mapping')
        for (const [field, setting] of Object.entries(item)) {
          if (field === 'constraints') deploy.placement.constraints = stringList(setting, `${at}.constraints`, false)
          else if (field === 'max_replicas_per_node')
            deploy.placement.max_replicas_per_node = integer(setting, `${at}.${field}`)
          else fail(`${at}.${field}`, 'not modelled')
        }

        break
      default:
        fail(at, 'not modelled')
    }
  }

  return deploy
}

export function normalizeHealthcheck(value: unknown, where: string): NonNullable<NormalizedService['healthcheck']> {
  if (!isRecord(value)) return fail(where, 'expected a mapping')
  const check: NonNullable<NormalizedService['healthcheck']> = {}
  for (const [key, item] of Object.entries(value)) {
    const at = `${where}.${key}`
    switch (key) {
      case 'test':
        check.test = typeof item === 'string' ? ['CMD-SHELL', item] : stringList(item, at, false)
        break
      case 'timeout':
      case 'interval':
      case 'start_period':
      case 'start_interval':
        check[key] = parseDuration(item, at)
        break
      case 'retries':
        check.retries = integer(item, at)
        break
      case 'disable':
        check.disable = boolean(item, at)
        break
      default:
        fail(at, 'not modelled')
    }
  }

  return check
}

export function normalizeUlimit(value: unknown, where: string): Ulimit {
  if (typeof value === 'number') return {single: integer(value, where)}
  if (!isRecord(value)) return fail(where, 'expected a number or soft/hard')
  return {soft: integer(value.soft ?? 0, `${where}.soft`), hard: integer(value.hard ?? 0, `${where}.hard`)}
}
