import {request as httpRequest, type IncomingHttpHeaders} from 'node:http'
import {request as httpsRequest} from 'node:https'
import {isIP} from 'node:net'

import {connectAddress, urlHost} from '../manifest/model.js'
import type {AuthMode, Manifest} from '../manifest/schema.js'
import type {ProjectSecrets} from '../render/secrets.js'
import {retryUntil, systemClock, WaitTimeoutError, type Clock} from '../util/retry.js'
import {verifyToken} from './jwt.js'
import {ratePerSecond} from './rate.js'

/**
 * The only way verify talks HTTP: always to 127.0.0.1 on the published ports (even when the stack binds
 * 0.0.0.0), with Host and SNI set to the project's domain, every request tagged
 * `X-Request-ID: verify-<runId>-<n>` so the `logs` check can find it in the access log.
 *
 * The certificate is the `tls` check's business: requests here set the trust (project CA or system
 * store) but do not reject a bad certificate, so one fault (a wrong certificate) fails one check and
 * the others still say whether routing, auth and limits work.
 */

export const REQUEST_TIMEOUT_MS = 10_000
/** Header the API-key routes read (see secrets/api-keys.txt). */
export const API_KEY_HEADER = 'x-api-key'
/** Header the gateway puts on responses it generates itself (rate limited, upstream down...). */
export const GATEWAY_ERROR_HEADER = 'x-gateway-error'

/** `expired`: a jwt route's token with a good signature whose `exp` has passed (other modes: as `wrong`). */
export type Credentials = 'none' | 'valid' | 'wrong' | 'expired'

export interface GatewayRequest {
  scheme: 'http' | 'https'
  path: string
  /** Which credentials the route takes; `credentials` says whether to send the right ones. */
  auth?: AuthMode
  credentials?: Credentials
  method?: string
  headers?: Record<string, string>
  /** Return a rate-limited answer as is instead of waiting and trying again. */
  acceptRateLimited?: boolean
  timeoutMs?: number
}

export interface GatewayResponse {
  status: number
  headers: IncomingHttpHeaders
  body: string
  /** The body parsed, when it is JSON. */
  json?: unknown
  requestId: string
  ms: number
}

/** A connection that never produced an HTTP answer (refused, reset, timed out, TLS failure). */
export class GatewayUnreachableError extends Error {
  readonly requestId: string
  constructor(message: string, requestId: string, options?: {cause?: unknown}) {
    super(message, options)
    this.name = 'GatewayUnreachableError'
    this.requestId = requestId
  }
}

export interface GatewayClientOptions {
  manifest: Manifest
  secrets: ProjectSecrets
  runId: string
  /** PEM of the project CA (self-signed mode); undefined uses the system store. */
  ca?: string
  clock?: Clock
}

export function basicAuthorization(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
}

/** Headers that present the project's own (or deliberately wrong) credentials for a route's auth mode. */
export function credentialHeaders(
  auth: AuthMode,
  credentials: Credentials,
  secrets: ProjectSecrets,
  wrongToken: string,
  nowMs = Date.now(),
): Record<string, string> {
  if (auth === 'none' || credentials === 'none') return {}
  if (auth === 'jwt') return {authorization: `Bearer ${verifyToken(secrets.jwtSecret, credentials, nowMs, wrongToken)}`}
  if (auth === 'basic') {
    const password = credentials === 'valid' ? secrets.basicAuth.password : `wrong-${wrongToken}`
    return {authorization: basicAuthorization(secrets.basicAuth.user, password)}
  }

  return {[API_KEY_HEADER]: credentials === 'valid' ? (secrets.apiKeys[0] ?? '') : `wrong-${wrongToken}`}
}

/** `Host` as a browser sends it: the port only when it is not the scheme's default. */
export function hostHeader(domain: string, scheme: 'http' | 'https', port: number): string {
  const host = isIP(domain) === 6 ? `[${domain}]` : domain
  return (scheme === 'http' && port === 80) || (scheme === 'https' && port === 443) ? host : `${host}:${port}`
}

export class GatewayClient {
  readonly manifest: Manifest
  readonly secrets: ProjectSecrets
  readonly runId: string
  readonly ca?: string
  readonly clock: Clock
  /** Where the published ports are reached from here: the bind address (loopback for 0.0.0.0). */
  readonly host: string
  /** Ids of every request that got an HTTP answer: what the access log must hold. */
  readonly answered: string[] = []
  /** Ids of the load test's requests (sent by autocannon, not through `send`). */
  readonly loadTestIds: string[] = []
  /** How many of the load test's requests got an answer: each of those is in the access log. */
  loadTestAnswered = 0
  /** clock.now() of the last request sent, so the rate-limit check knows how long the bucket needs. */
  lastRequestAt?: number
  private counter = 0

  constructor(options: GatewayClientOptions) {
    this.manifest = options.manifest
    this.secrets = options.secrets
    this.runId = options.runId
    this.ca = options.ca
    this.clock = options.clock ?? systemClock
    this.host = connectAddress(options.manifest.bind)
  }

  nextRequestId(): string {
    this.counter += 1
    return `verify-${this.runId}-${this.counter}`
  }

  port(scheme: 'http' | 'https'): number {
    return scheme === 'http' ? this.manifest.ports.http : this.manifest.ports.https
  }

  /** SNI name: the domain, unless it is an IP address (SNI carries host names only). */
  get servername(): string | undefined {
    return isIP(this.manifest.domain) === 0 ? this.manifest.domain : undefined
  }

  isRateLimited(response: GatewayResponse): boolean {
    return (
      response.status === this.manifest.rateLimit.status && response.headers[GATEWAY_ERROR_HEADER] === 'rate-limited'
    )
  }

  /**
   * One request. A rate-limited answer (the gateway's own, by its X-Gateway-Error header) is retried at
   * the slowest configured rate until the bucket lets it through: functional checks must not fail
   * because an earlier check used up the burst.
   */
  async send(request: GatewayRequest): Promise<GatewayResponse> {
    if (request.acceptRateLimited) return this.sendOnce(request)
    const {intervalMs, timeoutMs} = this.pacing()
    try {
      return await retryUntil(
        () => this.sendOnce(request),
        (response) => !this.isRateLimited(response),
        {timeoutMs, intervalMs, clock: this.clock, describe: `${request.path} to get past the rate limit`},
      )
    } catch (error) {
      if (error instanceof WaitTimeoutError && error.lastValue) return error.lastValue as GatewayResponse
      throw error
    }
  }

  /** Retry interval and bound for rate-limited answers: one token of the slowest zone, and a full refill. */
  pacing(): {intervalMs: number; timeoutMs: number} {
    const zones = [
      this.manifest.rateLimit,
      ...this.manifest.routes.flatMap((route) => (route.rateLimit ? [route.rateLimit] : [])),
    ]
    const slowest = Math.min(...zones.map((zone) => ratePerSecond(zone.rate)))
    const burst = Math.max(...zones.map((zone) => zone.burst))
    const intervalMs = Math.ceil(1000 / slowest) + 20
    return {intervalMs, timeoutMs: Math.min(60_000, Math.ceil(((burst + 1) / slowest) * 1000) + 3000)}
  }

  sendOnce(request: GatewayRequest): Promise<GatewayResponse> {
    const requestId = this.nextRequestId()
    const {scheme, path, auth = 'none', credentials = 'valid', method = 'GET'} = request
    const port = this.port(scheme)
    const headers: Record<string, string> = {
      host: hostHeader(this.manifest.domain, scheme, port),
      'x-request-id': requestId,
      'user-agent': 'create-gateway-verify',
      accept: 'application/json',
      ...credentialHeaders(auth, credentials, this.secrets, this.runId, this.clock.now()),
      ...request.headers,
    }
    const timeoutMs = request.timeoutMs ?? REQUEST_TIMEOUT_MS
    const started = performance.now()
    this.lastRequestAt = this.clock.now()

    return new Promise<GatewayResponse>((resolve, reject) => {
      const common = {host: this.host, port, path, method, headers, agent: false as const, timeout: timeoutMs}
      const req =
        scheme === 'https'
          ? httpsRequest({...common, servername: this.servername, ca: this.ca, rejectUnauthorized: false})
          : httpRequest(common)
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
      req.on('error', (error) => {
        reject(
          new GatewayUnreachableError(`${scheme}://${urlHost(this.host)}:${port}${path}: ${error.message}`, requestId, {
            cause: error,
          }),
        )
      })
      req.on('response', (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('error', (error) =>
          reject(new GatewayUnreachableError(`${path}: ${error.message}`, requestId, {cause: error})),
        )
        res.on('end', () => {
          this.answered.push(requestId)
          const body = Buffer.concat(chunks).toString('utf8')
          let json: unknown
          if (/json/i.test(String(res.headers['content-type'] ?? ''))) {
            try {
              json = JSON.parse(body)
            } catch {
              json = undefined
            }
          }

          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json,
            requestId,
            ms: Math.round(performance.now() - started),
          })
        })
      })
      req.end()
    })
  }
}

/** A short description of an answer for a detail line: `503 (rate-limited)`. */
export function describeResponse(response: GatewayResponse): string {
  const marker = response.headers[GATEWAY_ERROR_HEADER]
  return marker ? `${response.status} (${String(marker)})` : String(response.status)
}
