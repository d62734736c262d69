import {isIP} from 'node:net'

import {UsageError} from '../../errors.js'
import type {Manifest} from '../../manifest/schema.js'
import {DEFAULT_RESOLVER, type KubernetesOptions} from './model.js'

/** The flags of `export kubernetes`, checked before anything is read or written (exit 2 names the flag). */
export interface KubernetesFlags {
  namespace?: string
  registry?: string
  resolver?: string
}

// RFC 1123 label: what Kubernetes accepts as a namespace name.
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
// A registry host (with an optional port) and optional path: ghcr.io/acme, 123.dkr.ecr.eu-west-1.amazonaws.com,
// localhost:5000/team. No tag or digest: the image names and tags are the export's.
const REGISTRY = /^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?(:[0-9]{1,5})?(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/
const HOSTNAME =
  /^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/
/** Namespaces the cluster itself uses: the export labels its namespace (Pod Security) and owns what is in it. */
const SHARED_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease']

export function kubernetesOptions(manifest: Manifest, flags: KubernetesFlags): KubernetesOptions {
  const namespace = flags.namespace ?? manifest.name
  if (!DNS_LABEL.test(namespace)) {
    throw new UsageError(
      `--namespace: "${namespace}" is not a valid namespace (lowercase letters, digits and "-", at most 63 characters)`,
    )
  }

  if (SHARED_NAMESPACES.includes(namespace)) {
    throw new UsageError(
      `--namespace: "${namespace}" is shared with the cluster; give the project a namespace of its own`,
    )
  }

  const registry = flags.registry?.replace(/\/+$/, '')
  if (registry !== undefined && !REGISTRY.test(registry)) {
    throw new UsageError(
      `--registry: "${flags.registry}" is not a registry such as ghcr.io/acme or 123456789012.dkr.ecr.eu-west-1.amazonaws.com`,
    )
  }

  const resolver = flags.resolver ?? DEFAULT_RESOLVER
  const family = isIP(resolver.replace(/^\[(.*)\]$/, '$1'))
  if (family === 0 && !HOSTNAME.test(resolver)) {
    throw new UsageError(`--resolver: "${resolver}" is not an IP address or a host name`)
  }

  // NGINX wants an IPv6 resolver in brackets.
  return {namespace, registry, resolver: family === 6 && !resolver.startsWith('[') ? `[${resolver}]` : resolver}
}
