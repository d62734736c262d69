import {join, resolve} from 'node:path'

import type {Engine} from '../docker/engine.js'
import {djangoServices, upstreamName} from '../manifest/model.js'
import type {Manifest} from '../manifest/schema.js'
import {PROJECT_PATHS} from '../manifest/stack.js'
import {renderUpstreams} from '../render/gateway.js'
import type {UpstreamForm} from '../render/nginx-version.js'
import {readFileIfExists, writeFileAtomic} from '../util/files.js'
import {holdsServiceName} from './dns-upstream.js'

/**
 * gateway/conf.d/upstreams.conf as data: which replica host names each Django service's upstream
 * lists. `scale` reads it to know what the gateway serves now, rewrites it, and restores it byte for
 * byte when a step fails; `status` reads it to say which replicas are in the upstream.
 */

/** `upstream web_upstream { server my-api-web-1:8000 max_fails=3; ... }` -> {web_upstream: ['my-api-web-1']}. */
export function parseUpstreams(text: string): Record<string, string[]> {
  const upstreams: Record<string, string[]> = {}
  const withoutComments = text.replace(/#[^\n]*/g, '')
  for (const block of withoutComments.matchAll(/upstream\s+([A-Za-z0-9_]+)\s*\{([^}]*)\}/g)) {
    const [, name = '', body = ''] = block
    upstreams[name] = [...body.matchAll(/(?:^|[;{\s])server\s+([^\s;]+)/g)].map((match) =>
      (match[1] ?? '').replace(/:\d+$/, ''),
    )
  }

  return upstreams
}

/**
 * The upstreams whose servers carry `resolve` (NGINX follows Docker's DNS for them): `scale` and `up`
 * change their replicas through the service name's DNS alias, with no reload. Any other upstream
 * (the reload form, or a file rewritten by hand to list containers) goes the reload way.
 */
export function resolvingUpstreams(text: string): Set<string> {
  const resolving = new Set<string>()
  const withoutComments = text.replace(/#[^\n]*/g, '')
  for (const block of withoutComments.matchAll(/upstream\s+([A-Za-z0-9_]+)\s*\{([^}]*)\}/g)) {
    const servers = [...(block[2] ?? '').matchAll(/(?:^|[;{\s])server\s+([^;]*);/g)].map((match) => match[1] ?? '')
    if (servers.length > 0 && servers.every((server) => /\sresolve(\s|$)/.test(server))) resolving.add(block[1] ?? '')
  }

  return resolving
}

/** Does the file route every one of `services` through DNS (the reload-free path of scale and up)? */
export function followsDns(text: string | undefined, services: readonly string[]): boolean {
  if (text === undefined) return false
  const resolving = resolvingUpstreams(text)
  return services.length > 0 && services.every((service) => resolving.has(upstreamName(service)))
}

export function upstreamsPath(dir: string): string {
  return join(resolve(dir), PROJECT_PATHS.upstreams)
}

/** The file's exact bytes (for a byte-identical restore), or undefined when it does not exist. */
export async function readUpstreamsFile(dir: string): Promise<Buffer | undefined> {
  return readFileIfExists(upstreamsPath(dir))
}

/**
 * Does this upstream list a replica? A server named after the service itself (the file `init`
 * writes) stands for every replica, since Docker's DNS resolves the service name to all of them.
 */
export function listsReplica(listed: readonly string[] | undefined, service: string, replica: string): boolean {
  return listed !== undefined && (listed.includes(replica) || listed.includes(service))
}

/** Replica host names per Django service, as the file lists them; a service missing from the file is absent. */
export function upstreamHosts(manifest: Manifest, text: string | undefined): Record<string, string[]> {
  if (text === undefined) return {}
  const parsed = parseUpstreams(text)
  const hosts: Record<string, string[]> = {}
  for (const service of djangoServices(manifest)) {
    const listed = parsed[upstreamName(service.name)]
    if (listed) hosts[service.name] = listed
  }

  return hosts
}

/**
 * The file's new text: `changes` for the services being scaled, and for every other service what the
 * file lists now (so scaling one service never touches another's pool), or the manifest's count.
 */
export async function renderUpstreamsWith(
  manifest: Manifest,
  current: Record<string, string[]>,
  changes: Record<string, string[]>,
  form?: UpstreamForm,
): Promise<string> {
  const replicas: Record<string, string[]> = {}
  for (const service of djangoServices(manifest)) {
    const own = (record: Record<string, string[]>) =>
      Object.hasOwn(record, service.name) ? record[service.name] : undefined
    replicas[service.name] = own(changes) ?? own(current) ?? [service.name]
  }

  return renderUpstreams(manifest, replicas, form)
}

export async function writeUpstreamsFile(dir: string, content: string | Buffer): Promise<void> {
  await writeFileAtomic(upstreamsPath(dir), content, 0o644)
}

/**
 * Mark each replica row with whether the gateway sends it requests: on the reload form, whether
 * upstreams.conf lists it; on the resolve form (`server web:8000 resolve`), whether it runs and holds
 * the service name, which is what Docker's DNS answers NGINX with (asked of `engine`). Rows of the
 * gateway (and of services that are not Django services) stay unmarked; so do all rows when the file
 * is missing.
 */
export async function markUpstreamMembership<
  T extends {service: string; name: string; state?: string; inUpstream?: boolean},
>(dir: string, manifest: Manifest, rows: T[], engine?: Engine): Promise<T[]> {
  const text = (await readUpstreamsFile(dir))?.toString('utf8')
  if (text === undefined) return rows
  const hosts = upstreamHosts(manifest, text)
  const django = djangoServices(manifest).map((service) => service.name)
  return Promise.all(
    rows.map(async (row) => {
      if (!django.includes(row.service)) return row
      if (engine && followsDns(text, [row.service])) {
        const holds = row.state === 'running' && (await holdsServiceName(engine, row.name, row.service))
        return {...row, inUpstream: holds}
      }

      return {...row, inUpstream: listsReplica(hosts[row.service], row.service, row.name)}
    }),
  )
}
