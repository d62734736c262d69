import type {AuthMode, Route} from '../../manifest/schema.js'
import {describeResponse, type Credentials, type GatewayResponse} from '../http.js'
import {fail, pass, skip, type Check} from '../types.js'
import {probePath} from './routes.js'

/** What the gateway says about the cache on a cached route (`X-Cache-Status`). */
export const CACHE_STATUS_HEADER = 'x-cache-status'

/** One request of the cache check and what it must get. */
export interface CacheStep {
  /** first: fills the cache; again: must come from it; then, on routes with auth, without/with wrong credentials. */
  step: 'first' | 'again' | Exclude<Credentials, 'valid' | 'expired'>
  status: number
  cache: string
  ok: boolean
}

export function cacheStatus(response: GatewayResponse): string {
  const value = response.headers[CACHE_STATUS_HEADER]
  return typeof value === 'string' ? value : ''
}

/**
 * Judges a cached route's answers: the first request (a URI no one asked before) is a MISS answered
 * 200, the same request again a HIT with the same body, and on a route with auth, a request without
 * credentials or with wrong ones still 401 while the cache holds the answer (auth comes before cache).
 */
export function judgeCacheRoute(
  auth: AuthMode,
  first: GatewayResponse,
  again: GatewayResponse,
  refused: Array<{credentials: 'none' | 'wrong'; response: GatewayResponse}>,
): {steps: CacheStep[]; problems: string[]} {
  const problems: string[] = []
  const steps: CacheStep[] = []
  const firstOk = first.status === 200 && cacheStatus(first) === 'MISS'
  steps.push({step: 'first', status: first.status, cache: cacheStatus(first), ok: firstOk})
  if (!firstOk)
    problems.push(
      `first request: ${describeResponse(first)}, X-Cache-Status ${cacheStatus(first) || 'absent'}, expected 200 MISS`,
    )
  const againOk = again.status === 200 && cacheStatus(again) === 'HIT' && again.body === first.body
  steps.push({step: 'again', status: again.status, cache: cacheStatus(again), ok: againOk})
  if (!againOk) {
    const body = again.body === first.body ? '' : ', a different body'
    problems.push(
      `same request again: ${describeResponse(again)}, X-Cache-Status ${cacheStatus(again) || 'absent'}${body}, expected 200 HIT with the same body`,
    )
  }

  if (auth !== 'none') {
    for (const {credentials, response} of refused) {
      const ok = response.status === 401
      steps.push({step: credentials, status: response.status, cache: cacheStatus(response), ok})
      if (!ok)
        problems.push(
          `with ${credentials === 'none' ? 'no credentials' : 'wrong credentials'} while cached: ${describeResponse(response)}, expected 401`,
        )
    }
  }

  return {steps, problems}
}

export const cacheCheck: Check = {
  id: 'cache',
  title: 'Cached routes answer from the cache, auth first',
  async run({manifest, http, runId}) {
    const cached = manifest.routes.filter((route): route is Route & {cache: NonNullable<Route['cache']>} =>
      Boolean(route.cache),
    )
    if (cached.length === 0) return skip('no route has cache')
    const scheme = manifest.tls.mode === 'off' ? 'http' : 'https'
    const problems: string[] = []
    const results: Array<{path: string; auth: AuthMode; ttl: string; steps: CacheStep[]}> = []
    for (const [index, route] of cached.entries()) {
      // A URI of this run's own: a MISS first whatever an earlier run or a client left in the cache.
      const path = `${probePath(manifest, route)}?cache=${runId}-${index}`
      const send = (credentials: Credentials) => http.send({scheme, path, auth: route.auth, credentials})
      const first = await send('valid')
      const again = await send('valid')
      const refused =
        route.auth === 'none'
          ? []
          : [
              {credentials: 'none' as const, response: await send('none')},
              {credentials: 'wrong' as const, response: await send('wrong')},
            ]
      const verdict = judgeCacheRoute(route.auth, first, again, refused)
      results.push({path: route.path, auth: route.auth, ttl: route.cache.ttl, steps: verdict.steps})
      problems.push(...verdict.problems.map((problem) => `${route.path}: ${problem}`))
    }

    const data = {routes: results}
    if (problems.length > 0) return fail(problems.join('; '), data)
    return pass(
      results
        .map((result) => `${result.path} ${result.steps.map((step) => step.cache || step.status).join('/')}`)
        .join(', '),
      data,
    )
  },
}
