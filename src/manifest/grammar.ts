import {isIP} from 'node:net'

/**
 * The grammar of every manifest value that reaches a generated file, a path or a command line: a value
 * from a flag, a prompt or gateway.yaml is untrusted, so it is checked here, never escaped later. NGINX splits its configuration into tokens on whitespace, ";", "{" and "}", and
 * gives meaning to quotes, "\", "#" and "$" (ngx_conf_read_token). No grammar here admits any of those
 * characters, so each value lands in the configuration as one literal token and nothing needs escaping:
 * the property test (test/integration/nginx-property.test.ts) checks that NGINX reads back what we meant.
 */

/** Length caps: NGINX refuses a token over 4096 bytes, and no sane value comes near these. */
export const LIMITS = {
  domain: 253,
  routePath: 256,
  url: 2048,
  servicePath: 255,
  image: 255,
  email: 254,
  /** Each route with its own rate limit gets a 10 MB shared-memory zone. */
  routes: 100,
  services: 50,
  trustedProxies: 64,
} as const

/**
 * Ranges of the integers NGINX reads. NGINX parses rate and burst into a machine word but then counts
 * in thousandths of a request, multiplied by elapsed milliseconds, without overflow checks: a million
 * requests per second from one client is far beyond any gateway and far from that overflow.
 */
export const RANGES = {
  port: {min: 1, max: 65_535},
  rate: {min: 1, max: 1_000_000},
  burst: {min: 0, max: 1_000_000},
  status: {min: 400, max: 599},
} as const

/**
 * An NGINX time (`30s`, `5m`, `1h`, `1d`): one number and one unit, as proxy_cache_valid reads it. At most
 * a week: a response cached longer than that is a deployment artifact, not a cache entry.
 */
export function durationSeconds(text: string): number | undefined {
  const match = /^([1-9][0-9]{0,5})([smhd])$/.exec(text)
  if (!match) return undefined
  const seconds = Number(match[1]) * {s: 1, m: 60, h: 3600, d: 86_400}[match[2] as 's' | 'm' | 'h' | 'd']
  return seconds <= 7 * 86_400 ? seconds : undefined
}

/** An NGINX size (`10m`, `512k`, `1g`) as bytes, or undefined. */
export function sizeBytes(text: string): number | undefined {
  const match = /^([1-9][0-9]{0,5})([kmg])$/.exec(text)
  if (!match) return undefined
  return Number(match[1]) * {k: 1024, m: 1024 ** 2, g: 1024 ** 3}[match[2] as 'k' | 'm' | 'g']
}

const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
const HOST_NAME = new RegExp(`^(?=.{1,${LIMITS.domain}}$)${LABEL}(?:\\.${LABEL})*$`)

/** A DNS name such as api.example.com: letters, digits and "-" in dot-separated labels. */
export function isHostName(text: string): boolean {
  return HOST_NAME.test(text)
}

/** An IPv4 or IPv6 address, without an IPv6 zone ("%eth0" means nothing inside a container). */
export function isIpAddress(text: string): boolean {
  return /^[0-9A-Fa-f:.]+$/.test(text) && isIP(text) !== 0
}

/** What `domain`, an external URL's host and `bind` may name: a host name or an IP address. */
export function isHost(text: string): boolean {
  return isHostName(text) || isIpAddress(text)
}

/**
 * A value as an error quotes it: in double quotes, at most 60 characters, with control and
 * bidirectional-override characters escaped, so a hostile value can neither flood the terminal nor
 * drive it (ANSI escapes) nor disguise itself.
 */
export function quoted(text: string): string {
  const clipped = text.length > 60 ? `${text.slice(0, 57)}...` : text
  // Cc: C0, DEL and C1 controls (ESC, CSI); Cf: format characters (bidi overrides, zero-width ones).
  const escaped = clipped.replace(/[\\"\p{Cc}\p{Cf}\u2028\u2029]/gu, (char) =>
    char === '\\' || char === '"' ? `\\${char}` : `\\u{${char.codePointAt(0)!.toString(16)}}`,
  )
  return `"${escaped}"`
}

/** Decimal digits only, as a safe integer: "0x50", "1e3", "+8", " 8" and "08" are not numbers here. */
export function parseDecimal(text: string): number | undefined {
  return /^(0|[1-9][0-9]{0,14})$/.test(text) ? Number(text) : undefined
}

const ROUTE_PATH = /^\/([A-Za-z0-9._~-]+\/)*$/

/**
 * Why `path` cannot be a route prefix, or undefined. Only unreserved URL characters, so NGINX takes it
 * literally in `location`, `set` and the rewrite regex, and Django's URLconf can match it. "." and ".."
 * segments are refused: NGINX normalizes a request's path before matching, so /a/../ would never match.
 */
export function routePathProblem(path: string): string | undefined {
  if (path.length > LIMITS.routePath) return `must be at most ${LIMITS.routePath} characters`
  if (!ROUTE_PATH.test(path))
    return 'must start and end with "/" and hold only letters, digits, ".", "_", "~", "-" and "/"'
  if (path.split('/').some((segment) => segment === '.' || segment === '..'))
    return 'must not hold "." or ".." segments (a request path arrives normalized, so the route could never match)'
  return undefined
}

/** Top-level names create-gateway writes itself: a service folder among them would overwrite them. */
export const GENERATED_TOP_LEVEL = [
  'gateway',
  'certs',
  'secrets',
  'logs',
  'acme-webroot',
  'certbot',
  'gateway.yaml',
  'docker-compose.yml',
  'README.md',
] as const

/**
 * Why `path` cannot hold a Django service's code, or undefined: it must be a normalized relative path
 * that stays inside the project (no "..", no absolute path, no hidden folder) and outside the folders
 * create-gateway writes itself.
 */
export function servicePathProblem(path: string): string | undefined {
  if (path.length > LIMITS.servicePath) return `must be at most ${LIMITS.servicePath} characters`
  const segments = path.replace(/\/$/, '').split('/')
  if (path.startsWith('/') || segments.some((segment) => segment === '..'))
    return 'must stay inside the project: a relative path such as services/web, without ".."'
  if (!segments.every((segment) => /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(segment)))
    return 'must be a relative path such as services/web: letters, digits, ".", "_" and "-" between "/", no segment starting with "."'
  const first = segments[0]!
  if ((GENERATED_TOP_LEVEL as readonly string[]).includes(first))
    return `must not be inside ${first}, which create-gateway writes itself`
  return undefined
}

/** An external service's URL, as the gateway configuration uses it. */
export interface UpstreamUrl {
  scheme: 'http' | 'https'
  /** Lower case; an IPv6 address in brackets, as in the URL. */
  host: string
  /** Set only when it is not the scheme's default. */
  port?: number
  /** Starts and ends with "/". */
  path: string
}

/**
 * `http(s)://host[:port][/path]`, parsed by our own grammar rather than WHATWG's: the URL standard
 * accepts "; { } $ ' \"" in a host, all of which mean something to NGINX.
 */
export function parseUpstreamUrl(text: string): {url: UpstreamUrl} | {problem: string} {
  const example = 'must be a URL such as https://payments.example.com'
  if (text.length > LIMITS.url) return {problem: `must be at most ${LIMITS.url} characters`}
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)([?#].*)?$/s.exec(text)
  if (!match) return {problem: example}
  const [, scheme, authority, path, rest] = match as unknown as [string, string, string, string, string | undefined]
  if (scheme !== 'http' && scheme !== 'https') return {problem: 'must use http:// or https://'}
  if (authority.includes('@') || rest !== undefined)
    return {problem: 'must not carry credentials, a query or a fragment'}

  const hostPort = /^(\[[^\]]*\]|[^:]*)(?::([^:]*))?$/.exec(authority)
  const host = hostPort?.[1] ?? ''
  const bracketed = host.startsWith('[')
  const hostOk = bracketed ? isIP(host.slice(1, -1)) === 6 && isIpAddress(host.slice(1, -1)) : isHostName(host)
  if (!hostPort || !hostOk)
    return {
      problem: `must name a host such as payments.example.com or an IP address, not ${quoted(host)}`,
    }

  let port: number | undefined
  if (hostPort[2] !== undefined) {
    port = parseDecimal(hostPort[2])
    if (port === undefined || port < RANGES.port.min || port > RANGES.port.max)
      return {problem: `must have a port from ${RANGES.port.min} to ${RANGES.port.max}`}
    if (port === (scheme === 'https' ? 443 : 80)) port = undefined
  }

  const segments = path === '' ? [] : path.slice(1).split('/')
  if (segments.at(-1) === '') segments.pop()
  for (const segment of segments) {
    if (!/^([A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})+$/.test(segment))
      return {problem: 'must have a path of letters, digits, ".", "_", "~", "-" and "%XX" escapes between single "/"'}
    if (segment === '.' || segment === '..') return {problem: 'must have a path without "." or ".." segments'}
  }

  return {
    url: {
      scheme,
      host: host.toLowerCase(),
      ...(port === undefined ? {} : {port}),
      path: segments.length === 0 ? '/' : `/${segments.join('/')}/`,
    },
  }
}

/** `https://host[:port]`: the URL without its path. */
export function upstreamOrigin(url: UpstreamUrl): string {
  return `${url.scheme}://${url.host}${url.port === undefined ? '' : `:${url.port}`}`
}

/**
 * An API key as the gateway reads it: inside `"<key>" 1;` of a `map`. Long enough to be a secret, so
 * it is never map's `default` or `include` keyword; no quote, "\", "$" or space; and no leading "~",
 * which would make it a regular expression that matches other keys.
 */
export const API_KEY_PATTERN = /^[A-Za-z0-9._+/=-][A-Za-z0-9._~+/=-]{15,511}$/

/** The basic-auth user of an htpasswd line: no ":" (the separator) and no line break. */
export const BASIC_AUTH_USER_PATTERN = /^[A-Za-z0-9._@-]{1,64}$/

/**
 * A trusted proxy's network for NGINX's realip module (`set_real_ip_from`): an IPv4 or IPv6 address
 * with an optional prefix length, as `10.0.0.0/8` or `2001:db8::/32`. Undefined when it is one.
 */
export function cidrProblem(text: string): string | undefined {
  const example = 'must be an address or network such as 10.0.0.0/8 or 2001:db8::/32'
  const match = /^([0-9A-Fa-f:.]+)(?:\/(\d{1,3}))?$/.exec(text)
  if (!match || !isIpAddress(match[1]!)) return example
  if (match[2] === undefined) return undefined
  const prefix = parseDecimal(match[2])
  const max = isIP(match[1]!) === 4 ? 32 : 128
  if (prefix === undefined || prefix > max) return `must have a prefix length from 0 to ${max}`
  return undefined
}

/** NGINX's client_max_body_size, in its own size syntax: `1m`, `512k`, `20m` (0 would mean unlimited). */
export const BODY_SIZE_PATTERN = /^[1-9][0-9]{0,5}[km]?$/

/** A memory limit the way Compose reads it (go-units RAMInBytes): `256m`, `1g`. At least 32m. */
export const MEMORY_PATTERN = /^[1-9][0-9]{0,5}[mg]$/

/** Bytes of a MEMORY_PATTERN value (a subset of what sizeBytes reads). */
export function memoryBytes(text: string): number {
  const bytes = sizeBytes(text)
  if (bytes === undefined) throw new Error(`not a memory size: ${JSON.stringify(text)}`)
  return bytes
}
