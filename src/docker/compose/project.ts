import {fail} from './errors.js'
import type {NormalizedProject, NormalizedSecret, NormalizeOptions} from './model.js'
import {absolutePath} from './mounts.js'
import {normalizeNetwork} from './networks.js'
import {boolean, interpolateAll, isRecord, mapping, type Raw, text} from './read.js'
import {normalizeService} from './service.js'

/** The whole compose file: services, networks and secrets. */

function normalizeSecret(key: string, raw: unknown, options: NormalizeOptions): NormalizedSecret {
  const where = `secrets.${key}`
  const input = interpolateAll(raw ?? {}, where, options)
  if (!isRecord(input)) return fail(where, 'expected a mapping')
  const secret: NormalizedSecret = {name: ''}
  for (const [field, value] of Object.entries(input)) {
    const at = `${where}.${field}`
    if (field === 'name' || field === 'environment') secret[field] = text(value, at)
    else if (field === 'file') secret.file = absolutePath(text(value, at), options)
    else if (field === 'external') secret.external = boolean(value, at)
    else if (field === 'labels') secret.labels = mapping(value, at)
    else if (!field.startsWith('x-')) fail(at, 'not modelled')
  }

  secret.name ||= secret.external ? key : `${options.project}_${key}`
  return secret
}

/**
 * The whole file as compose-go loads it. `services` whose environment the caller already resolved
 * should be passed with that environment (see normalizeService).
 */
export function normalizeProject(compose: Raw, options: NormalizeOptions): NormalizedProject {
  for (const key of Object.keys(compose))
    if (!['services', 'networks', 'secrets', 'name', 'version'].includes(key) && !key.startsWith('x-'))
      fail(key, 'top-level key not modelled')
  const rawServices = (compose.services ?? {}) as Record<string, Raw>
  const services = Object.fromEntries(
    Object.entries(rawServices).map(([name, service]) => [name, normalizeService(name, service, options)]),
  )
  const rawNetworks = {...((compose.networks ?? {}) as Raw)}
  // The implicit `default` network exists only when a service is on it.
  if (Object.values(services).some((service) => service.networks && 'default' in service.networks))
    rawNetworks.default ??= null
  const networks = Object.fromEntries(
    Object.entries(rawNetworks).map(([key, network]) => [key, normalizeNetwork(key, network, options)]),
  )
  const secrets = Object.fromEntries(
    Object.entries((compose.secrets ?? {}) as Raw).map(([key, secret]) => [key, normalizeSecret(key, secret, options)]),
  )
  return {name: options.project, workingDir: options.dir, services, networks, secrets}
}
