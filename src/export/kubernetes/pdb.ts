import type {IPodDisruptionBudget} from 'kubernetes-models/policy/v1/PodDisruptionBudget'

import {djangoServices} from '../../manifest/model.js'
import {
  GATEWAY,
  metadata,
  resourceFile,
  selector,
  type ExportContext,
  type Resource,
  type ResourceBuilder,
} from './model.js'

/**
 * A node drain or upgrade takes one pod of a service at a time. maxUnavailable rather than
 * minAvailable: with a single replica, minAvailable 1 would block every drain for good.
 * AlwaysAllow: a pod that is not ready anyway must not hold a drain up.
 */
function budget(context: ExportContext, name: string, component: string): Resource {
  const document: IPodDisruptionBudget = {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: metadata(context, name, component),
    spec: {
      maxUnavailable: 1,
      selector: {matchLabels: selector(context, name)},
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
    },
  }
  return {file: resourceFile(name, 'PodDisruptionBudget'), document}
}

export const disruptionBudgets: ResourceBuilder = {
  kind: 'PodDisruptionBudget',
  build: (context) => [
    ...djangoServices(context.manifest).map((service) => budget(context, service.name, 'api')),
    budget(context, GATEWAY, 'gateway'),
  ],
}
