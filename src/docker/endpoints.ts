import {lookup} from 'node:dns/promises'

import {connectAddress, urlHost} from '../manifest/model.js'
import type {Manifest} from '../manifest/schema.js'
import {PROJECT_PATHS} from '../manifest/stack.js'
import {withTimeout} from '../util/retry.js'

const DNS_TIMEOUT_MS = 2_000

/** Where the gateway answers once it is up: its URLs, and a curl command that reaches it from here. */

/** Does the domain resolve to where the gateway listens? If not, curl needs `--resolve`. */
async function resolvesTo(domain: string, address: string): Promise<boolean> {
  try {
    const entries = await withTimeout(lookup(domain, {all: true}), DNS_TIMEOUT_MS, `${domain} to resolve`)
    return entries.some((entry) => entry.address === address)
  } catch {
    return false
  }
}

export async function stackEndpoints(manifest: Manifest): Promise<{urls: string[]; curl: string}> {
  const tls = manifest.tls.mode !== 'off'
  const port = tls ? manifest.ports.https : manifest.ports.http
  const scheme = tls ? 'https' : 'http'
  const urls = [`${scheme}://${manifest.domain}:${port}/`]
  if (tls) urls.push(`http://${manifest.domain}:${manifest.ports.http}/ (redirects to HTTPS)`)
  const address = connectAddress(manifest.bind)
  const parts = ['curl']
  if (manifest.tls.mode === 'self-signed') parts.push('--cacert', `${PROJECT_PATHS.certs}/ca.pem`)
  if (!(await resolvesTo(manifest.domain, address)))
    parts.push('--resolve', `${manifest.domain}:${port}:${urlHost(address)}`)
  parts.push(`${scheme}://${manifest.domain}:${port}/`)
  return {urls, curl: parts.join(' ')}
}
