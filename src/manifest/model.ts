import type {AuthMode, DjangoService, ExternalService, Manifest} from './schema.js'

/** Convenience views over a validated manifest, shared by render, docker and verify. */

export interface NamedDjangoService extends DjangoService {
  name: string
  /** Folder of the service inside the project, relative to the project root. */
  path: string
}

export interface NamedExternalService extends ExternalService {
  name: string
}

export function djangoServices(manifest: Manifest): NamedDjangoService[] {
  return Object.entries(manifest.services).flatMap(([name, service]) =>
    service.kind === 'django' ? [{...service, name, path: service.path ?? `services/${name}`}] : [],
  )
}

export function externalServices(manifest: Manifest): NamedExternalService[] {
  return Object.entries(manifest.services).flatMap(([name, service]) =>
    service.kind === 'external' ? [{...service, name}] : [],
  )
}

/** Container name of replica `n` (1-based), the same scheme Compose v2 uses: `<project>-<service>-<n>`. */
export function replicaName(manifest: Manifest, service: string, n: number): string {
  return projectReplicaName(manifest.name, service, n)
}

/** replicaName for code that holds the project name rather than the manifest. */
export function projectReplicaName(project: string, service: string, n: number): string {
  return `${project}-${service}-${n}`
}

export function gatewayContainerName(manifest: Manifest): string {
  return `${manifest.name}-gateway-1`
}

/** NGINX upstream block name of a service; NGINX names cannot hold "-". */
export function upstreamName(service: string): string {
  return `${service.replace(/-/g, '_')}_upstream`
}

/** Env variable in `.env` that holds a Django service's SECRET_KEY. */
export function secretKeyVariable(service: string): string {
  return `${service.toUpperCase().replace(/-/g, '_')}_SECRET_KEY`
}

export function usesAuth(manifest: Manifest, auth: Exclude<AuthMode, 'none'>): boolean {
  return manifest.routes.some((route) => route.auth === auth)
}

/**
 * Where this machine reaches the published ports: the manifest's bind address, loopback for a
 * wildcard bind. `up` prints it, `verify` and `certs` connect to it.
 */
export function connectAddress(bind: string): string {
  if (bind === '0.0.0.0') return '127.0.0.1'
  if (bind === '::') return '::1'
  return bind
}

/** An address as the host part of a URL: IPv6 in brackets. */
export function urlHost(address: string): string {
  return address.includes(':') ? `[${address}]` : address
}

/** A domain only this machine reaches: `localhost`, `*.localhost` or a loopback address. */
export function isLocalDomain(domain: string): boolean {
  return (
    domain === 'localhost' ||
    domain.endsWith('.localhost') ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(domain) ||
    domain === '::1'
  )
}
