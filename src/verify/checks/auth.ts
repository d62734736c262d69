import type {AuthMode, Route} from '../../manifest/schema.js'
import {describeResponse, type Credentials, type GatewayResponse} from '../http.js'
import {fail, pass, skip, type Check} from '../types.js'
import {probePath, serviceKind} from './routes.js'

export interface AuthAttempt {
  credentials: Credentials
  status: number
  ok: boolean
}

/**
 * What each attempt must get: 401 without credentials and with wrong ones; with the project's own,
 * 200 from a Django service, and anything but 401/403 from an external one (its answer, or its own
 * error, proves the gateway let the request through).
 */
export function judgeAuthAttempt(
  credentials: Credentials,
  kind: 'django' | 'external',
  response: GatewayResponse,
): boolean {
  if (credentials !== 'valid') return response.status === 401
  return kind === 'django' ? response.status === 200 : response.status !== 401 && response.status !== 403
}

const LABELS: Record<Credentials, string> = {
  none: 'no credentials',
  wrong: 'wrong credentials',
  expired: 'an expired token',
  valid: 'project credentials',
}

/** What each auth mode is tried with, in order; a jwt route also gets a well-signed but expired token. */
export function authAttempts(auth: Exclude<AuthMode, 'none'>): Credentials[] {
  return auth === 'jwt' ? ['none', 'wrong', 'expired', 'valid'] : ['none', 'wrong', 'valid']
}

export const authCheck: Check = {
  id: 'auth',
  title: 'Protected routes need credentials',
  async run({manifest, http}) {
    const protectedRoutes = manifest.routes.filter(
      (route): route is Route & {auth: Exclude<AuthMode, 'none'>} => route.auth !== 'none',
    )
    if (protectedRoutes.length === 0) return skip('no route has auth')
    const scheme = manifest.tls.mode === 'off' ? 'http' : 'https'
    const problems: string[] = []
    const results: Array<{path: string; auth: string; attempts: AuthAttempt[]}> = []
    for (const route of protectedRoutes) {
      const path = probePath(manifest, route)
      const kind = serviceKind(manifest, route)
      const attempts: AuthAttempt[] = []
      for (const credentials of authAttempts(route.auth)) {
        const response = await http.send({scheme, path, auth: route.auth, credentials})
        const ok = judgeAuthAttempt(credentials, kind, response)
        attempts.push({credentials, status: response.status, ok})
        if (!ok) {
          const expected = credentials === 'valid' ? (kind === 'django' ? '200' : 'not 401/403') : '401'
          problems.push(
            `${route.path} (${route.auth}) with ${LABELS[credentials]}: ${describeResponse(response)}, expected ${expected}`,
          )
        }
      }

      results.push({path: route.path, auth: route.auth, attempts})
    }

    const data = {routes: results}
    if (problems.length > 0) return fail(problems.join('; '), data)
    const short: Record<Credentials, string> = {none: 'none', wrong: 'wrong', expired: 'expired', valid: 'own'}
    const summary = results.map(
      (result) =>
        `${result.path} (${result.auth}) ${result.attempts.map((attempt) => short[attempt.credentials]).join('/')} ${result.attempts.map((attempt) => attempt.status).join('/')}`,
    )
    return pass(summary.join(', '), data)
  },
}
