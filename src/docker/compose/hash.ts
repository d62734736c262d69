import {createHash} from 'node:crypto'

import {goJson} from './go-json.js'
import {NETWORK, SERVICE} from './go-structs.js'
import type {NormalizedNetwork, NormalizedService} from './model.js'

/** The config hashes Compose v2 puts on containers and networks, and the JSON they are taken of. */

/** The service as `docker compose config --format json` prints it (compact). */
export function serviceJson(service: NormalizedService): string {
  return goJson(service, {struct: SERVICE})
}

/**
 * Compose v2's ServiceHash: what does not change the container (build, pull policy, scale and
 * replicas, dependencies, profiles) is left out, the rest is hashed as Go marshals it.
 */
export function composeServiceHash(service: NormalizedService): string {
  const hashed: NormalizedService = {...service}
  delete hashed.build
  delete hashed.pull_policy
  delete hashed.scale
  delete hashed.depends_on
  delete hashed.profiles
  if (hashed.deploy) {
    hashed.deploy = {...hashed.deploy}
    delete hashed.deploy.replicas
  }

  return createHash('sha256').update(serviceJson(hashed)).digest('hex')
}

export function networkJson(network: NormalizedNetwork): string {
  return goJson(network, {struct: NETWORK})
}

/** Compose v2's NetworkHash: a network whose label differs is removed and made again by `compose up`. */
export function composeNetworkHash(network: NormalizedNetwork): string {
  return createHash('sha256').update(networkJson(network)).digest('hex')
}
