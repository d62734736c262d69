import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {checkServerIdentity, connect, type ConnectionOptions, type TLSSocket} from 'node:tls'

import {inspectCertificate} from '../../certs/inspect.js'
import {CERT_FILES} from '../../certs/self-signed.js'
import type {Manifest} from '../../manifest/schema.js'
import {fail, pass, skip, type Check, type CheckOutcome} from '../types.js'

export const EXPIRY_FAIL_DAYS = 7
export const EXPIRY_WARN_DAYS = 21
const MODERN_PROTOCOLS = new Set(['TLSv1.2', 'TLSv1.3'])
const HANDSHAKE_TIMEOUT_MS = 10_000

/**
 * The project CA for self-signed certificates, else undefined: Node's bundled store (what clients use).
 * `caFile` (verify --ca-file) replaces both: a private ACME CA's root, such as Pebble's in tests.
 */
export async function projectTrust(
  dir: string,
  manifest: Manifest,
  caFile?: string,
): Promise<{ca?: string; label: string}> {
  if (caFile) return {ca: await readFile(caFile, 'utf8'), label: caFile}
  if (manifest.tls.mode !== 'self-signed') return {label: 'system store'}
  return {ca: await readFile(join(dir, CERT_FILES.ca), 'utf8'), label: CERT_FILES.ca}
}

interface Handshake {
  socket?: TLSSocket
  error?: NodeJS.ErrnoException
}

/** Connect and resolve once the handshake ends either way; the caller closes the socket. */
function handshake(options: ConnectionOptions & {host: string}): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = connect({rejectUnauthorized: false, ...options, timeout: HANDSHAKE_TIMEOUT_MS})
    socket.once('secureConnect', () => resolve({socket}))
    socket.once('error', (error: NodeJS.ErrnoException) => {
      socket.destroy()
      resolve({error})
    })
    socket.once('timeout', () => {
      socket.destroy()
      resolve({
        error: Object.assign(new Error(`no TLS handshake within ${HANDSHAKE_TIMEOUT_MS} ms`), {code: 'ETIMEDOUT'}),
      })
    })
    socket.once('close', () =>
      resolve({error: Object.assign(new Error('connection closed during the handshake'), {code: 'ECONNRESET'})}),
    )
  })
}

export interface LegacyVerdict {
  refused: boolean
  /** The probe could not be made at all: neither a pass nor a failure of the server. */
  inconclusive?: boolean
  how: string
}

/**
 * How the server answered a client that offers TLS 1.0-1.1 only. OpenSSL 3 refuses to even offer
 * them at its default security level, so the probe lowers it (SECLEVEL=0): otherwise the "refusal"
 * would be our own client's, proving nothing about the server.
 */
export function judgeLegacyHandshake(result: {protocol?: string | null; error?: NodeJS.ErrnoException}): LegacyVerdict {
  if (!result.error) return {refused: false, how: `server accepted ${result.protocol ?? 'TLS 1.1'}`}
  const code = result.error.code ?? ''
  if (/ALERT/i.test(code) || /alert/i.test(result.error.message)) {
    const reason = /alert ([a-z ]+)/i.exec(result.error.message)?.[1]?.trim()
    return {refused: true, how: `server alert${reason ? ` "${reason}"` : ''}`}
  }

  if (code === 'ECONNRESET' || code === 'EPIPE') return {refused: true, how: 'server closed the connection'}
  if (code === 'ERR_SSL_NO_PROTOCOLS_AVAILABLE' || /no protocols available/i.test(result.error.message)) {
    return {refused: false, inconclusive: true, how: 'this Node/OpenSSL cannot offer TLS 1.1, not tested'}
  }

  return {refused: false, how: `probe failed: ${result.error.message}`}
}

export interface TlsFacts {
  protocol: string | null
  cipher?: string
  authorized: boolean
  authorizationError?: string
  identityError?: string
  subject: string
  issuer: string
  sans: string
  validTo: string
  daysLeft: number
  fingerprint256: string
  /** The certbot-mode stand-in that init writes until certbot issues the real certificate. */
  temporary?: boolean
}

/** The verdict on a handshake's facts: everything wrong, and whether the expiry only warrants a warning. */
export function judgeTls(
  facts: TlsFacts,
  domain: string,
  trustLabel: string,
): {problems: string[]; warnings: string[]} {
  const problems: string[] = []
  const warnings: string[] = []
  if (facts.temporary)
    problems.push('the temporary stand-in certificate is still in place: certbot has not issued the real one yet')
  if (!facts.authorized)
    problems.push(`certificate not trusted by ${trustLabel}: ${facts.authorizationError ?? 'unknown reason'}`)
  if (facts.identityError)
    problems.push(`certificate not valid for ${domain} (names: ${facts.sans || facts.subject.replace(/\n/g, ', ')})`)
  if (facts.daysLeft < 0) problems.push(`certificate expired ${-facts.daysLeft} days ago (${facts.validTo})`)
  else if (facts.daysLeft < EXPIRY_FAIL_DAYS)
    problems.push(`certificate expires in ${facts.daysLeft} days (${facts.validTo}): renew now`)
  else if (facts.daysLeft < EXPIRY_WARN_DAYS) warnings.push(`certificate expires in ${facts.daysLeft} days`)
  if (!facts.protocol || !MODERN_PROTOCOLS.has(facts.protocol))
    problems.push(`negotiated ${facts.protocol ?? 'no protocol'}, expected TLSv1.2 or TLSv1.3`)
  return {problems, warnings}
}

export const tlsCheck: Check = {
  id: 'tls',
  title: 'TLS certificate and protocols',
  async run({dir, manifest, http, caFile}): Promise<CheckOutcome> {
    if (manifest.tls.mode === 'off') return skip('tls.mode is off')
    const port = manifest.ports.https
    const trust = await projectTrust(dir, manifest, caFile)
    const servername = http.servername
    const host = http.host

    const main = await handshake({host, port, servername, ca: trust.ca})
    if (!main.socket)
      return fail(
        `no TLS handshake with ${host}:${port} (SNI ${servername ?? 'none'}): ${main.error?.message ?? 'unknown error'}`,
      )
    const socket = main.socket
    let facts: TlsFacts
    try {
      // getPeerCertificate() first: in Node 20, calling it after getPeerX509Certificate() returns {}.
      const peer = socket.getPeerCertificate()
      if (!peer || !peer.raw) return fail('the server sent no certificate')
      const identityError = checkServerIdentity(manifest.domain, peer)
      const info = inspectCertificate(peer.raw)
      facts = {
        protocol: socket.getProtocol(),
        cipher: socket.getCipher()?.name,
        authorized: socket.authorized,
        authorizationError: socket.authorizationError ? String(socket.authorizationError) : undefined,
        identityError: identityError?.message,
        subject: info.subject,
        issuer: info.issuer,
        sans: info.subjectAltName,
        validTo: info.validTo.toISOString(),
        daysLeft: info.daysLeft(),
        fingerprint256: info.fingerprint256,
        temporary: info.temporary,
      }
    } finally {
      socket.destroy()
    }

    const legacyAttempt = await handshake({
      host,
      port,
      servername,
      minVersion: 'TLSv1',
      maxVersion: 'TLSv1.1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    })
    const legacy = judgeLegacyHandshake({protocol: legacyAttempt.socket?.getProtocol(), error: legacyAttempt.error})
    legacyAttempt.socket?.destroy()

    // HSTS on a real answer of the first route (with credentials when it needs them).
    const route = manifest.routes.find((candidate) => candidate.auth === 'none') ?? manifest.routes[0]!
    const response = await http.send({scheme: 'https', path: route.path, auth: route.auth})
    const hsts = response.headers['strict-transport-security']
    const maxAge = Number(/max-age=(\d+)/i.exec(String(hsts ?? ''))?.[1] ?? 0)

    const {problems, warnings} = judgeTls(facts, manifest.domain, trust.label)
    if (legacy.inconclusive) warnings.push(`TLS 1.1: ${legacy.how}`)
    else if (!legacy.refused) problems.push(`TLS 1.1 not refused: ${legacy.how}`)
    if (!hsts || maxAge <= 0) problems.push(`no Strict-Transport-Security on ${route.path} (status ${response.status})`)

    const data = {...facts, trust: trust.label, tls11: legacy.how, hsts: hsts ?? null}
    if (problems.length > 0) return fail(problems.join('; '), data)
    const tls11 = legacy.refused ? `TLS 1.1 refused (${legacy.how})` : 'TLS 1.1 not tested'
    const summary = `${facts.protocol}, certificate for ${manifest.domain} trusted by ${trust.label}, ${facts.daysLeft} days left; ${tls11}; HSTS max-age=${maxAge}`
    if (warnings.length > 0) return {ok: true, warn: true, detail: `${summary}; warning: ${warnings.join('; ')}`, data}
    return pass(summary, data)
  },
}
