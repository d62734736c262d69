import {djangoServices} from '../../manifest/model.js'
import {describeResponse} from '../http.js'
import {fail, pass, skip, type Check} from '../types.js'
import {probePath} from './routes.js'

/** Requests per replica at most: round robin needs one each; the rest absorbs retries and other clients. */
export const REQUESTS_PER_REPLICA = 6

export interface BalanceResult {
  service: string
  route?: string
  replicas: number
  requests: number
  /** hostname (container id prefix) -> answers */
  hostnames: Record<string, number>
  ok: boolean
  detail: string
}

export const balanceCheck: Check = {
  id: 'balance',
  title: 'Requests reach every replica',
  async run({manifest, http, engine, runId}) {
    const scheme = manifest.tls.mode === 'off' ? 'http' : 'https'
    const results: BalanceResult[] = []
    const many = djangoServices(manifest).filter((service) => service.replicas > 1)
    if (many.length === 0) return skip('every service runs 1 replica')

    // Container ids start with the hostname Docker gives them: name the replicas in the detail.
    const names = new Map<string, string>()
    try {
      for (const container of await engine.containers()) names.set(container.id.slice(0, 12), container.name)
    } catch {
      // Hostnames alone still prove the spread.
    }

    for (const service of many) {
      const routes = manifest.routes.filter((route) => route.service === service.name)
      // An uncached public route if there is one: a cached answer comes from the gateway, not a replica.
      const route =
        routes.find((candidate) => candidate.auth === 'none' && !candidate.cache) ??
        routes.find((candidate) => !candidate.cache) ??
        routes[0]
      if (!route) {
        results.push({
          service: service.name,
          replicas: service.replicas,
          requests: 0,
          hostnames: {},
          ok: true,
          detail: `${service.name}: no route, not checked`,
        })
        continue
      }

      const path = probePath(manifest, route)
      const hostnames: Record<string, number> = {}
      const limit = service.replicas * REQUESTS_PER_REPLICA
      let requests = 0
      let problem: string | undefined
      while (requests < limit && Object.keys(hostnames).length < service.replicas) {
        requests += 1
        // On a cached route each request gets a URI of its own, so the cache never answers it.
        const uri = route.cache ? `${path}?balance=${runId}-${requests}` : path
        const response = await http.send({scheme, path: uri, auth: route.auth})
        const hostname = (response.json as {hostname?: unknown} | undefined)?.hostname
        if (response.status !== 200 || typeof hostname !== 'string') {
          problem = `${path} answered ${describeResponse(response)}`
          break
        }

        hostnames[hostname] = (hostnames[hostname] ?? 0) + 1
      }

      const seen = Object.keys(hostnames)
      const label = (hostname: string) => names.get(hostname) ?? hostname
      const spread = seen.map((hostname) => `${label(hostname)} ${hostnames[hostname]}`).join(', ')
      const ok = problem === undefined && seen.length >= service.replicas
      const detail = problem
        ? `${service.name}: ${problem}`
        : ok
          ? `${service.name}: ${seen.length}/${service.replicas} replicas in ${requests} requests (${spread})`
          : `${service.name}: ${requests} requests reached ${seen.length} of ${service.replicas} replicas (${spread || 'none'})`
      results.push({
        service: service.name,
        route: route.path,
        replicas: service.replicas,
        requests,
        hostnames,
        ok,
        detail,
      })
    }

    const data = {services: results}
    const failed = results.filter((result) => !result.ok)
    if (failed.length > 0) return fail(failed.map((result) => result.detail).join('; '), data)
    return pass(results.map((result) => result.detail).join('; '), data)
  },
}
