import {OperationError, UsageError} from '../errors.js'
import {isIpAddress, parseUpstreamUrl, upstreamOrigin} from '../manifest/grammar.js'
import {djangoServices, externalServices, isLocalDomain, upstreamName, urlHost, usesAuth} from '../manifest/model.js'
import type {AuthMode, Manifest, Route} from '../manifest/schema.js'
import {
  cacheSettings,
  GATEWAY_PATHS,
  GATEWAY_PORTS,
  GATEWAY_WRITABLE_DIR,
  METRICS_PORTS,
  METRICS_STUB_STATUS_PATH,
  PROJECT_PATHS,
} from '../manifest/stack.js'
import {upstreamFormFor, type UpstreamForm} from './nginx-version.js'
import {renderTemplate, type PlannedFile} from './plan.js'

/**
 * The NGINX gateway: nginx.conf plus conf.d/. Templates stay dumb; every decision (zone names, which
 * route strips its prefix, what each error looks like) is made here in `gatewayView`, where the unit
 * tests can see it.
 *
 * Prefix rule: a Django service is proxied WITHOUT stripping the route prefix (`/secure/api/` reaches
 * Django as `/secure/api/`; the generated app serves under its prefixes), while an external service gets
 * the prefix stripped, as in the seed (`/payment/checkout/` -> `<url path>checkout/`).
 */

/** Mozilla server-side TLS guideline 6.0, "intermediate", verbatim (no DHE suites since 6.0). */
export const MOZILLA_INTERMEDIATE_CIPHERS =
  'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:' +
  'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305'

/** Guideline 6.0's key exchange groups, for OpenSSL >= 3.5 (the official nginx image has 3.5). */
export const MOZILLA_INTERMEDIATE_GROUPS = 'X25519MLKEM768:X25519:prime256v1:secp384r1'

/**
 * Docker's embedded DNS, asked again every second: a replica given or denied the service name is
 * picked up or dropped within about a second, with no reload.
 */
export const UPSTREAM_RESOLVER = '127.0.0.11 valid=1s ipv6=off'

/** Upstream health and pooling, shared by every Django upstream. */
export const UPSTREAM_SERVER_PARAMS = 'max_fails=3 fail_timeout=10s'

/** Clock skew a jwt route tolerates on `exp` and `nbf` (templates/gateway/njs/jwt.js.ejs). */
export const JWT_LEEWAY_SECONDS = 30

/** Snippets live in a sub-folder so the `conf.d/*.conf` glob of nginx.conf does not load them at http level. */
const SNIPPETS = `${GATEWAY_PATHS.confd}/snippets`

/** Files of gateway/conf.d/ besides upstreams.conf, each from templates/gateway/conf.d/<name>.ejs. */
const CONFD_TEMPLATES = [
  'maps.conf',
  'limits.conf',
  'gateway.conf',
  'snippets/proxy.conf',
  'snippets/headers.conf',
  'snippets/errors.conf',
] as const

/**
 * The gateway rendered for a Kubernetes cluster instead of one Docker host (`export kubernetes`). The
 * templates stay the same; these values change what differs there: services are found through the
 * cluster's DNS at request time, NGINX runs unprivileged on a read-only root, logs go to stdout.
 */
export interface ClusterTarget {
  /** Django services are reached as `<service>.<namespace>.svc.<clusterDomain>`. */
  namespace: string
  clusterDomain: string
  /** The DNS server NGINX asks at request time: kube-dns's Service name or an address. */
  resolver: string
  /** How long NGINX caches an answer: how soon a new or removed replica is seen. */
  resolverValid: string
  /** Unprivileged container ports: NGINX runs as a non-root user and cannot bind 80/443. */
  ports: {http: number; https: number; status: number}
  /** What clients connect to (the load balancer's ports), for redirects and X-Forwarded-Port. */
  publicPorts: {http: number; https: number}
  /**
   * NGINX workers. `auto` counts the node's cores, not the container's CPU limit: on a 64-core node it
   * would start 64 workers inside a 2-CPU limit.
   */
  workerProcesses: number
  /** The only writable directory (an emptyDir): pid file and NGINX's temp files. */
  writableDir: string
  /** tls.mode certbot: URL of the cert-manager HTTP-01 solver that ACME challenges are passed to. */
  acmeSolver?: string
}

export interface LimitZone {
  name: string
  rate: string
}

export interface ExternalView {
  /** NGINX variable holding the upstream origin: with a variable, proxy_pass resolves at request time. */
  variable: string
  origin: string
  https: boolean
  /** Host header: the upstream's own host, with the port when it is not the scheme's default. */
  hostHeader: string
  sslName: string
  /** rewrite regex and replacement that strip the route prefix and prepend the URL's own path. */
  stripRegex: string
  stripReplacement: string
  /** Path on the upstream that the route prefix maps to, for proxy_redirect. */
  basePath: string
}

export interface RouteView {
  path: string
  service: string
  auth: AuthMode
  zone: string
  burst: number
  /** Set for Django services on one host: the upstream block. */
  upstream?: string
  /** Set for Django services in a cluster: proxied through a variable, resolved per request. */
  serviceDns?: {variable: string; url: string}
  /** Set for external services. */
  external?: ExternalView
  cache?: RouteCacheView
}

/** How a cached route uses the shared cache (see RouteCacheSchema for the rules it implements). */
export interface RouteCacheView {
  ttl: string
  /**
   * The cache key's identity part on routes with auth: an njs variable holding a hash of the credential
   * the route checked (never the credential itself: the key is stored in the cache files).
   */
  identity?: string
  /** Variables that, when non-empty, make a request skip the cache (read and store). */
  bypass: string[]
}

/** The shared cache zone all cached routes use. */
export const CACHE_ZONE = 'gateway_cache'

/** njs variables with a hash of each kind of credential, for the cache keys of routes with auth. */
const CACHE_IDENTITY: Record<Exclude<AuthMode, 'none'>, {variable: string; fn: string}> = {
  basic: {variable: 'cache_identity_authorization', fn: 'cache.authorization'},
  jwt: {variable: 'cache_identity_authorization', fn: 'cache.authorization'},
  'api-key': {variable: 'cache_identity_api_key', fn: 'cache.apiKey'},
}

function routeCacheView(route: Route): RouteCacheView | undefined {
  if (!route.cache) return undefined
  if (route.auth !== 'none') {
    // The credential is part of the key; a cookie could still change what the service answers.
    return {ttl: route.cache.ttl, identity: CACHE_IDENTITY[route.auth].variable, bypass: ['$http_cookie']}
  }

  return {
    ttl: route.cache.ttl,
    bypass: route.cache.credentialed === 'share' ? [] : ['$http_authorization', '$http_cookie'],
  }
}

/** Cache identity variables (njs js_set) the routes use, each once. */
function cacheIdentities(manifest: Manifest): Array<{variable: string; fn: string}> {
  const wanted = new Map<string, {variable: string; fn: string}>()
  for (const route of manifest.routes)
    if (route.cache && route.auth !== 'none')
      wanted.set(CACHE_IDENTITY[route.auth].variable, CACHE_IDENTITY[route.auth])
  return [...wanted.values()]
}

export interface GatewayErrorPage {
  status: number
  /** Named location, without the "@". */
  location: string
  /** Value of the X-Gateway-Error response header: what the verify command keys on. */
  reason: string
  message: string
}

/** Escape a literal for a PCRE regex. */
function regexLiteral(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** Zone names: `global`, and `route_<index>_<path as identifier>` (the index keeps them unique). */
function routeZoneName(index: number, path: string): string {
  const slug = path.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_+|_+$/g, '')
  return `route_${index}${slug ? `_${slug}` : '_root'}`
}

function externalView(name: string, url: string, routePath: string): ExternalView {
  // The manifest's grammar, not WHATWG's URL parser, which lets "; { } $" through in a host.
  const parsed = parseUpstreamUrl(url)
  if ('problem' in parsed) throw new UsageError(`services.${name}.url: ${parsed.problem}`)
  const {host, path: basePath, scheme} = parsed.url
  const origin = upstreamOrigin(parsed.url)
  return {
    variable: `external_${name.replace(/-/g, '_')}`,
    origin,
    https: scheme === 'https',
    hostHeader: origin.slice(`${scheme}://`.length),
    sslName: host.replace(/^\[|\]$/g, ''),
    // (?s): a decoded %0A in the URI must not make the strip silently fail.
    stripRegex: `(?s)^${regexLiteral(routePath)}(.*)$`,
    stripReplacement: `${basePath}$1`,
    basePath,
  }
}

/** Everything the gateway templates need, derived from the manifest. */
export function gatewayView(manifest: Manifest, cluster?: ClusterTarget) {
  const tls = manifest.tls.mode !== 'off'
  const rateLimit = manifest.rateLimit
  const zones: LimitZone[] = [{name: 'global', rate: rateLimit.rate}]
  const externals = new Map(externalServices(manifest).map((service) => [service.name, service]))

  const routes: RouteView[] = manifest.routes.map((route, index) => {
    let zone = 'global'
    let burst = rateLimit.burst
    // A route's own limit replaces the global one for that route (one bucket per request, so the
    // verify command can predict how many requests pass).
    if (route.rateLimit) {
      zone = routeZoneName(index, route.path)
      burst = route.rateLimit.burst
      zones.push({name: zone, rate: route.rateLimit.rate})
    }

    const external = externals.get(route.service)
    const django = djangoServices(manifest).find((service) => service.name === route.service)
    return {
      path: route.path,
      service: route.service,
      auth: route.auth,
      zone,
      burst,
      ...(route.cache ? {cache: routeCacheView(route)} : {}),
      ...(external
        ? {external: externalView(external.name, external.url, route.path)}
        : cluster && django
          ? {serviceDns: clusterServiceDns(cluster, django.name, django.port)}
          : {upstream: upstreamName(route.service)}),
    }
  })

  // Responses the gateway itself generates; a JSON body and X-Gateway-Error tell them apart from an
  // upstream's own 502/503/504 (which pass through untouched: proxy_intercept_errors stays off).
  const errors: GatewayErrorPage[] = [
    {status: rateLimit.status, location: 'rate_limited', reason: 'rate-limited', message: 'rate limit exceeded'},
  ]
  for (const error of [
    {status: 413, location: 'body_too_large', reason: 'body-too-large', message: 'request body too large'},
    {status: 502, location: 'bad_gateway', reason: 'upstream-unavailable', message: 'upstream unavailable'},
    {status: 504, location: 'gateway_timeout', reason: 'upstream-timeout', message: 'upstream timed out'},
  ]) {
    if (error.status !== rateLimit.status) errors.push(error)
  }

  // `localhost` too only for a local domain (api.localhost, 127.0.0.1): on a public one it would be a
  // second name any client can send.
  const serverNames = [...new Set([manifest.domain, ...(isLocalDomain(manifest.domain) ? ['localhost'] : [])])]
  const publicPorts = cluster?.publicPorts ?? manifest.ports
  const httpsPortSuffix = publicPorts.https === 443 ? '' : `:${publicPorts.https}`
  const hasExternals = routes.some((route) => route.external)
  const ports = cluster?.ports ?? GATEWAY_PORTS
  const caching = manifest.routes.some((route) => route.cache)
  const identities = cacheIdentities(manifest)

  return {
    project: manifest.name,
    cluster: cluster !== undefined,
    tls,
    serverNames: serverNames.join(' '),
    ports,
    paths: GATEWAY_PATHS,
    snippets: SNIPPETS,
    // What clients connected to, for X-Forwarded-Port ($server_port would say 443 inside the container).
    publicPort: tls ? publicPorts.https : publicPorts.http,
    httpsPortSuffix,
    redirectHost: urlHost(manifest.domain),
    // SNI carries host names only: with an IP address as the domain, a handshake without SNI is the
    // normal one and cannot be refused.
    rejectUnknownSni: !isIpAddress(manifest.domain),
    trustedProxies: manifest.trustedProxies,
    clientMaxBodySize: manifest.clientMaxBodySize,
    // Names resolved at request time: external hosts (Docker's embedded DNS on one host) and, in a
    // cluster, the services too. Without ipv6=off there: an IPv6 or dual-stack cluster answers AAAA.
    resolver: cluster
      ? `${cluster.resolver} valid=${cluster.resolverValid}`
      : hasExternals
        ? '127.0.0.11 valid=30s ipv6=off'
        : undefined,
    // On one host the master runs as root and switches its workers to `nginx`; in a cluster the whole
    // container runs as that user already (and NGINX warns about a `user` it cannot apply).
    user: cluster ? undefined : 'nginx',
    workerProcesses: cluster?.workerProcesses ?? 'auto',
    // The container's output everywhere: the engine keeps it, capped (CONTAINER_LOGGING), and
    // `logs --access`, `top` and `verify` read it through the engine, as an orchestrator's tools do.
    // `stderr` is NGINX's own name for its standard error: no file to open.
    logs: {access: '/dev/stdout', error: 'stderr'},
    // Both run on a read-only root: one writable directory (a tmpfs here, an emptyDir there).
    writableDir: cluster?.writableDir ?? GATEWAY_WRITABLE_DIR,
    // The health endpoint: loopback on one host (the engine's healthcheck runs inside the container),
    // the pod's address in a cluster (the kubelet's probes come from the node).
    statusListen: cluster ? String(ports.status) : `127.0.0.1:${ports.status}`,
    // The metrics profile on one host: stub_status again, on the container's network addresses, for
    // the exporter (never published). The Kubernetes export has no exporter, so no listener either.
    metricsListen: !cluster && manifest.metrics?.enabled ? String(METRICS_PORTS.stubStatus) : undefined,
    metricsPath: METRICS_STUB_STATUS_PATH,
    acmeSolver: cluster?.acmeSolver,
    // cert-manager writes the certificate into a Secret after the gateway started, and renews it there:
    // a path with a variable makes NGINX read it at each handshake, so neither needs a reload.
    certificateDir: cluster && manifest.tls.mode === 'certbot' ? '$gateway_tls_dir' : GATEWAY_PATHS.certs,
    ciphers: MOZILLA_INTERMEDIATE_CIPHERS,
    ecdhCurves: MOZILLA_INTERMEDIATE_GROUPS,
    zones,
    rateLimitStatus: rateLimit.status,
    routes,
    hasRootRoute: manifest.routes.some((route) => route.path === '/'),
    hasExternals,
    apiKey: usesAuth(manifest, 'api-key'),
    // A 401 from the API-key check gets its own JSON body unless the rate-limit status is 401 too.
    apiKeyErrorPage: usesAuth(manifest, 'api-key') && rateLimit.status !== 401,
    // Basic auth's 401 gets a JSON body like every other gateway error, with the challenge kept.
    basicErrorPage: usesAuth(manifest, 'basic') && rateLimit.status !== 401,
    basicChallenge: `Basic realm="${manifest.name} restricted"`,
    jwt: usesAuth(manifest, 'jwt'),
    jwtErrorPage: usesAuth(manifest, 'jwt') && rateLimit.status !== 401,
    // njs runs the jwt check and hashes credentials for cache keys.
    njs: usesAuth(manifest, 'jwt') || identities.length > 0,
    cache: caching
      ? {
          zone: CACHE_ZONE,
          path: cluster ? `${cluster.writableDir}/cache` : GATEWAY_PATHS.cache,
          ...cacheSettings(manifest),
          identities,
        }
      : undefined,
    errors,
  }
}

/** A Django service by its cluster DNS name, held in a variable so NGINX resolves it per request. */
function clusterServiceDns(cluster: ClusterTarget, service: string, port: number) {
  return {
    variable: `service_${service.replace(/-/g, '_')}`,
    url: `http://${service}.${cluster.namespace}.svc.${cluster.clusterDomain}:${port}`,
  }
}

/**
 * gateway/conf.d/upstreams.conf alone. A service listed by its own name gets the `form` the gateway's
 * NGINX takes (by default, what its image tag says: render/nginx-version.ts): `resolve` follows Docker's
 * DNS with no reload. A service listed by replica container names (the reload form, which `scale` keeps
 * for older NGINX) is written as listed.
 */
export async function renderUpstreams(
  manifest: Manifest,
  replicas: Record<string, string[]> = {},
  form: UpstreamForm = upstreamFormFor(manifest.images.nginx),
): Promise<string> {
  const upstreams = djangoServices(manifest).map((service) => {
    // Before any `scale`, the service name: Docker's DNS resolves it to every replica, and NGINX makes
    // one server of each address. Compose v1 (`<project>_web_1`), Compose v2 and `up` (`<project>-web-1`)
    // all register it, so `docker compose up` and `docker-compose up --scale` work too.
    const hosts = (Object.hasOwn(replicas, service.name) ? replicas[service.name] : undefined) ?? [service.name]
    if (hosts.length === 0) {
      throw new OperationError(`upstream of service "${service.name}" would have no servers`, {
        hint: 'Keep at least one replica running.',
      })
    }

    for (const host of hosts) {
      // The value lands in nginx.conf syntax: a stray ";" or space would change the config's meaning.
      // "_" is allowed: Compose v1 names replicas <project>_web_1.
      if (!/^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(host))
        throw new OperationError(`"${host}" is not a valid upstream host name`)
    }

    return {
      name: upstreamName(service.name),
      service: service.name,
      servers: hosts.map((host) => `${host}:${service.port}`),
      resolve: form === 'resolve' && hosts.length === 1 && hosts[0] === service.name,
    }
  })
  return renderTemplate('gateway/conf.d/upstreams.conf.ejs', {
    upstreams,
    serverParams: UPSTREAM_SERVER_PARAMS,
    resolver: UPSTREAM_RESOLVER,
  })
}

/**
 * gateway/nginx.conf and every file under gateway/conf.d/. With `cluster`, the same configuration for
 * Kubernetes; it has no upstreams.conf then, since the cluster's DNS lists the replicas.
 */
export async function renderGateway(manifest: Manifest, cluster?: ClusterTarget): Promise<PlannedFile[]> {
  const view = gatewayView(manifest, cluster)
  const files: PlannedFile[] = [
    {path: PROJECT_PATHS.nginxConf, content: await renderTemplate('gateway/nginx.conf.ejs', view)},
  ]
  for (const name of CONFD_TEMPLATES) {
    files.push({
      path: `${PROJECT_PATHS.confd}/${name}`,
      content: await renderTemplate(`gateway/conf.d/${name}.ejs`, view),
    })
  }

  if (!cluster) files.push({path: PROJECT_PATHS.upstreams, content: await renderUpstreams(manifest)})
  if (view.cache)
    files.push({
      path: `${PROJECT_PATHS.confd}/cache.conf`,
      content: await renderTemplate('gateway/conf.d/cache.conf.ejs', view),
    })
  if (view.jwt)
    files.push({
      path: `${PROJECT_PATHS.njs}/jwt.js`,
      content: await renderTemplate('gateway/njs/jwt.js.ejs', {leewaySeconds: JWT_LEEWAY_SECONDS}),
    })
  if (view.cache && view.cache.identities.length > 0)
    files.push({path: `${PROJECT_PATHS.njs}/cache.js`, content: await renderTemplate('gateway/njs/cache.js.ejs', {})})
  return files
}
