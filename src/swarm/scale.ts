import type {Progress} from '../util/progress.js'
import type Docker from 'dockerode'

import {engineMessage} from '../docker/engine.js'
import {OperationError, UsageError} from '../errors.js'
import type {ScaleTargets} from '../gateway/targets.js'
import {waitConverged, type ServiceProgress} from './converge.js'
import {serviceName} from './names.js'

/**
 * `scale web=N` on a swarm: the service's replica count, nothing else. Swarm starts or stops the
 * tasks; the gateway resolves `web` by DNS every few seconds, so no NGINX reload is involved.
 */

export interface SwarmScaleOptions {
  timeoutMs: number
  onProgress?: Progress
}

export async function scaleSwarmServices(
  docker: Docker,
  namespace: string,
  targets: ScaleTargets,
  options: SwarmScaleOptions,
): Promise<ServiceProgress[]> {
  const services = Object.keys(targets).map((service) => ({service, name: serviceName(namespace, service)}))
  for (const {service, name} of services) {
    let info: {Version?: {Index?: number}; Spec?: Docker.ServiceSpec}
    try {
      info = (await docker.getService(name).inspect()) as typeof info
    } catch (error) {
      if ((error as {statusCode?: number}).statusCode === 404)
        throw new UsageError(
          `Service ${service} is not deployed in stack ${namespace}: run create-gateway deploy first`,
        )
      throw error
    }

    const spec = {...info.Spec, Mode: {Replicated: {Replicas: targets[service]!}}}
    try {
      await docker.getService(name).update({_query: {version: info.Version?.Index}, _body: spec})
    } catch (error) {
      throw new OperationError(`Scaling ${name}: ${engineMessage(error)}`, {cause: error})
    }

    options.onProgress?.(`${service}: ${targets[service]} replicas wanted`)
  }

  return waitConverged(docker, services, options)
}
