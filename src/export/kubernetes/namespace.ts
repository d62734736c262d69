import type {INamespace} from 'kubernetes-models/v1/Namespace'

import {labels, resourceFile, type ResourceBuilder} from './model.js'

/**
 * The project's own namespace. It enforces the Pod Security Standards' restricted profile, which every
 * pod of the export meets: a hand edit that weakens one is refused by the cluster.
 */
export const namespaces: ResourceBuilder = {
  kind: 'Namespace',
  build(context) {
    const name = context.options.namespace
    const document: INamespace = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name,
        labels: {
          ...labels(context, context.manifest.name, 'namespace'),
          'pod-security.kubernetes.io/enforce': 'restricted',
          'pod-security.kubernetes.io/enforce-version': 'latest',
        },
      },
    }
    return [{file: resourceFile(name, 'Namespace'), document}]
  },
}
