import type {INetworkPolicy} from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy'

import {djangoServices} from '../../manifest/model.js'
import {GATEWAY, metadata, resourceFile, selector, type ResourceBuilder} from './model.js'

/**
 * Only the gateway reaches a Django service, and only on its port: the auth, rate limits and logs of
 * the gateway cannot be bypassed from another pod. (The kubelet's probes come from the node, which
 * NetworkPolicy always lets through.)
 */
export const networkPolicies: ResourceBuilder = {
  kind: 'NetworkPolicy',
  build: (context) =>
    djangoServices(context.manifest).map((service) => {
      const document: INetworkPolicy = {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: metadata(context, service.name, 'api'),
        spec: {
          podSelector: {matchLabels: selector(context, service.name)},
          policyTypes: ['Ingress'],
          ingress: [
            {
              from: [{podSelector: {matchLabels: selector(context, GATEWAY)}}],
              ports: [{protocol: 'TCP', port: service.port}],
            },
          ],
        },
      }
      return {file: resourceFile(service.name, 'NetworkPolicy'), document}
    }),
}
