import type Docker from 'dockerode'

import {UsageError} from '../../errors.js'
import type {Labels} from '../engine.js'
import {fail} from './errors.js'
import {composeNetworkHash} from './hash.js'
import {COMPOSE_LABELS, COMPOSE_VERSION} from './labels.js'
import type {NormalizedNetwork, NormalizedProject, NormalizedService, NormalizeOptions} from './model.js'
import {boolean, integer, interpolateAll, isRecord, mapping, type Raw, stringList, text} from './read.js'

/** Networks: a service's `networks:` and the top-level ones as compose-go loads them, then as Compose creates and joins them. */

export function normalizeNetworks(value: unknown, where: string): NonNullable<NormalizedService['networks']> {
  if (Array.isArray(value)) return Object.fromEntries(stringList(value, where, false).map((name) => [name, null]))
  if (!isRecord(value)) return fail(where, 'expected a list or a mapping')
  const networks: NonNullable<NormalizedService['networks']> = {}
  for (const [name, item] of Object.entries(value)) {
    const at = `${where}.${name}`
    if (item === null || item === undefined) {
      networks[name] = null
      continue
    }

    if (!isRecord(item)) fail(at, 'expected a mapping')
    const network: NonNullable<NonNullable<NormalizedService['networks']>[string]> = {}
    for (const [key, setting] of Object.entries(item)) {
      if (key === 'aliases') network.aliases = stringList(setting, `${at}.aliases`, false)
      else if (key === 'ipv4_address') network.ipv4_address = text(setting, `${at}.ipv4_address`)
      else if (key === 'priority') network.priority = integer(setting, `${at}.priority`)
      else fail(`${at}.${key}`, 'not modelled')
    }

    networks[name] = network
  }

  return networks
}

export function normalizeNetwork(key: string, raw: unknown, options: NormalizeOptions): NormalizedNetwork {
  const where = `networks.${key}`
  const input = (interpolateAll(raw ?? {}, where, options) ?? {}) as Raw
  if (!isRecord(input)) fail(where, 'expected a mapping')
  const network: NormalizedNetwork = {name: '', ipam: {}}
  for (const [field, value] of Object.entries(input)) {
    const at = `${where}.${field}`
    switch (field) {
      case 'name':
      case 'driver':
        network[field] = text(value, at)
        break
      case 'driver_opts':
      case 'labels':
        network[field] = mapping(value, at)
        break
      case 'external':
      case 'internal':
      case 'attachable':
      case 'enable_ipv4':
      case 'enable_ipv6':
        network[field] = boolean(value, at)
        break
      case 'ipam':
        if (!isRecord(value)) fail(at, 'expected a mapping')
        if (value.driver !== undefined) network.ipam.driver = text(value.driver, `${at}.driver`)
        if (value.config !== undefined) {
          if (!Array.isArray(value.config)) fail(`${at}.config`, 'expected a list')
          network.ipam.config = value.config.map((pool, index) => {
            if (!isRecord(pool)) fail(`${at}.config[${index}]`, 'expected a mapping')
            return Object.fromEntries(
              Object.entries(pool).map(([name, setting]) => [name, text(setting, `${at}.config[${index}].${name}`)]),
            )
          })
        }

        break
      default:
        if (!field.startsWith('x-')) fail(at, 'not modelled')
    }
  }

  network.name ||= network.external ? key : `${options.project}_${key}`
  return network
}

// ---- engine side: what `docker compose up` asks for ----------------------------------------------

/** The networks in Compose's priority order: higher priority first, then by name. */
export function networksByPriority(service: NormalizedService): string[] {
  return Object.entries(service.networks ?? {})
    .map(([key, config]) => ({key, priority: config?.priority ?? 0}))
    .sort((a, b) => b.priority - a.priority || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((entry) => entry.key)
}

export function endpoint(service: NormalizedService, key: string, name: string): Docker.EndpointSettings {
  const config = service.networks?.[key]
  return {
    Aliases: [name, service.name, ...(config?.aliases ?? [])],
    ...(config ? {IPAMConfig: {...(config.ipv4_address ? {IPv4Address: config.ipv4_address} : {})}} : {}),
    ...(config?.ipv4_address ? {IPAddress: config.ipv4_address} : {}),
  }
}

/** A network as `docker compose up` creates it: name, labels (with its config hash) and options. */
export interface ComposeNetwork {
  key: string
  name: string
  labels: Labels
  options: {Driver?: string; Internal?: boolean; Attachable?: boolean; EnableIPv6?: boolean; Options?: Labels}
}

export function composeNetworks(project: NormalizedProject): ComposeNetwork[] {
  for (const [key, network] of Object.entries(project.networks)) {
    if (network.ipam.driver || network.ipam.config || network.enable_ipv4 !== undefined)
      throw new UsageError(`networks.${key}: create-gateway up cannot create this network the way Compose does`, {
        hint: 'Map its IPAM settings in src/docker/compose/networks.ts, or start the stack with `docker compose up`.',
      })
  }

  return Object.entries(project.networks)
    .filter(([, network]) => !network.external)
    .map(([key, network]) => ({
      key,
      name: network.name,
      labels: {
        ...(network.labels ?? {}),
        [COMPOSE_LABELS.network]: key,
        [COMPOSE_LABELS.project]: project.name,
        [COMPOSE_LABELS.version]: COMPOSE_VERSION,
        [COMPOSE_LABELS.configHash]: composeNetworkHash(network),
      },
      options: {
        ...(network.driver ? {Driver: network.driver} : {}),
        ...(network.internal ? {Internal: true} : {}),
        ...(network.attachable ? {Attachable: true} : {}),
        ...(network.enable_ipv6 ? {EnableIPv6: true} : {}),
        ...(network.driver_opts ? {Options: network.driver_opts} : {}),
      },
    }))
}
