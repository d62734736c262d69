import {randomBytes} from 'node:crypto'

import type {Manifest} from '../../manifest/schema.js'
import {describeResponse, type GatewayResponse} from '../http.js'
import {fail, pass, skip, type Check} from '../types.js'

const PERMANENT = new Set([301, 308])
export const ACME_PREFIX = '/.well-known/acme-challenge/'

/** Where plain HTTP to `pathAndQuery` must send the client; both spellings when the port is 443. */
export function expectedRedirects(manifest: Manifest, pathAndQuery: string): string[] {
  const base = `https://${manifest.domain}`
  return manifest.ports.https === 443
    ? [`${base}${pathAndQuery}`, `${base}:443${pathAndQuery}`]
    : [`${base}:${manifest.ports.https}${pathAndQuery}`]
}

/** undefined when the answer is the permanent redirect we want, else what is wrong with it. */
export function redirectProblem(response: GatewayResponse, expected: string[]): string | undefined {
  const location = response.headers.location
  if (!PERMANENT.has(response.status))
    return `answered ${describeResponse(response)}${location ? ` -> ${location}` : ''}, not a permanent redirect (301/308)`
  if (!location || !expected.includes(location))
    return `${response.status} -> ${location ?? '(no Location)'}, expected ${expected[0]}`
  return undefined
}

export const redirectCheck: Check = {
  id: 'redirect',
  title: 'HTTP redirects to HTTPS',
  async run({manifest, http, runId}) {
    if (manifest.tls.mode === 'off') return skip('tls.mode is off: plain HTTP serves the routes, nothing to redirect')

    const problems: string[] = []
    const checked: Array<{path: string; status: number; location?: string}> = []
    for (const route of manifest.routes) {
      // A query proves the redirect keeps the whole request URI, not just the path.
      const target = `${route.path}?verify=${runId}`
      const response = await http.send({scheme: 'http', path: target})
      checked.push({path: target, status: response.status, location: response.headers.location})
      const problem = redirectProblem(response, expectedRedirects(manifest, target))
      if (problem) problems.push(`http://${manifest.domain}:${manifest.ports.http}${target} ${problem}`)
    }

    // certbot's HTTP-01 challenge must be answered on plain HTTP: a redirect here breaks renewals.
    const token = `${ACME_PREFIX}verify-${randomBytes(8).toString('hex')}`
    const acme = await http.send({scheme: 'http', path: token})
    const acmeRedirected = acme.status >= 300 && acme.status < 400
    if (acmeRedirected)
      problems.push(
        `${token} is redirected (${acme.status} -> ${acme.headers.location ?? '?'}): ACME HTTP-01 challenges would fail`,
      )

    const data = {routes: checked, acme: {path: token, status: acme.status}}
    if (problems.length > 0) return fail(problems.join('; '), data)
    const example = checked[0]
    return pass(
      `${checked.length} route${checked.length === 1 ? '' : 's'} ${example?.status ?? ''} -> https://${manifest.domain}${manifest.ports.https === 443 ? '' : `:${manifest.ports.https}`}<same path>; ACME path not redirected (${acme.status})`,
      data,
    )
  },
}
