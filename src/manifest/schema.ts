import {z} from 'zod'

import {
  BODY_SIZE_PATTERN,
  cidrProblem,
  durationSeconds,
  isHost,
  isIpAddress,
  LIMITS,
  MEMORY_PATTERN,
  memoryBytes,
  parseUpstreamUrl,
  quoted,
  RANGES,
  routePathProblem,
  servicePathProblem,
  sizeBytes,
} from './grammar.js'

/**
 * The one schema of gateway.yaml. Every generated file is rendered from a value of `Manifest`, and
 * every command reads it through `parseManifest`, so a rule written here holds everywhere.
 */

export const MANIFEST_VERSION = 1
/** Upper bound for replicas of one service: one machine, 2+ cores; documented in the README. */
export const MAX_REPLICAS = 10
export const AUTH_MODES = ['none', 'basic', 'api-key', 'jwt'] as const
export const TLS_MODES = ['self-signed', 'certbot', 'off'] as const
/** Names a service may not take: they are the gateway's own containers. */
export const RESERVED_SERVICE_NAMES = ['gateway', 'certbot', 'nginx-exporter'] as const

/** Paths the gateway serves itself: ACME HTTP-01 challenges and its internal auth/error locations. */
export const RESERVED_ROUTE_PREFIXES = ['/.well-known/acme-challenge/', '/_gateway/'] as const

export const DEFAULT_IMAGES = {
  python: 'python:3.12-slim',
  nginx: 'nginx:1.30',
  certbot: 'certbot/certbot:v5.1.0',
  exporter: 'nginx/nginx-prometheus-exporter:1.5.3',
} as const

/**
 * Memory and CPU of each container when gateway.yaml names none. A Django replica runs Gunicorn's
 * workers (about 40 MB each, see gunicorn.conf.py); NGINX needs little.
 */
export const DEFAULT_LIMITS = {
  django: {memory: '512m', cpus: 1},
  gateway: {memory: '256m', cpus: 1},
  // One Go binary reading stub_status on each scrape.
  exporter: {memory: '64m', cpus: 0.25},
} as const

/** Where the NGINX exporter is published on the host unless gateway.yaml says otherwise. */
export const DEFAULT_METRICS = {port: 9113, bind: '127.0.0.1'} as const

// DNS label: compose project names and container host names must both accept it.
const dnsLabel = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
const imageRef = /^[a-z0-9]+([._\-/:@][a-zA-Z0-9_.-]+)*$/

/** How a value of the wrong type reads in an error: `true`, `null`, `a list`, `text "8080"`. */
function describeValue(value: unknown): string {
  if (Array.isArray(value)) return 'a list'
  if (value === null || typeof value === 'boolean') return String(value)
  if (typeof value === 'string') return `text ${quoted(value)}`
  if (typeof value === 'number') return String(value)
  return typeof value === 'object' ? 'a mapping' : typeof value
}

/**
 * An integer in [min, max], and nothing else: no coercion, so `true`, `null`, `[3]` and `"80"` are
 * errors naming the field rather than 1, 0, 3 and 80. The range sentence is the schema's description,
 * for flag parsers to reuse.
 */
function integerSchema(range: {min: number; max: number}, sentence: string) {
  return z
    .number({
      errorMap: (issue, ctx) =>
        issue.code === z.ZodIssueCode.invalid_type
          ? {message: `${sentence}, not ${describeValue(ctx.data)}`}
          : {message: ctx.defaultError},
    })
    .int(sentence)
    .min(range.min, sentence)
    .max(range.max, sentence)
    .describe(sentence)
}

export const NameSchema = z
  .string()
  .regex(
    dnsLabel,
    'must be DNS-safe: lowercase letters, digits and "-", 1 to 63 characters, not starting or ending with "-"',
  )

export const DomainSchema = z
  .string()
  .refine(isHost, 'must be a host name such as api.example.com or an IP address (no spaces, no scheme, no port)')

export const BindSchema = z.string().refine(isIpAddress, 'must be an IP address such as 127.0.0.1 or 0.0.0.0')

export const PortSchema = integerSchema(
  RANGES.port,
  `must be a port number from ${RANGES.port.min} to ${RANGES.port.max}`,
)

export const RateSchema = z
  .string()
  .regex(/^[1-9]\d{0,6}r\/[sm]$/, 'must look like 10r/s or 600r/m')
  .refine(
    (rate) => Number.parseInt(rate, 10) <= RANGES.rate.max,
    `must be at most ${RANGES.rate.max} requests per second or minute`,
  )

export const BurstSchema = integerSchema(
  RANGES.burst,
  `must be a whole number from ${RANGES.burst.min} to ${RANGES.burst.max}`,
)

export const ReplicasSchema = integerSchema(
  {min: 1, max: MAX_REPLICAS},
  `must be a whole number from 1 to ${MAX_REPLICAS}`,
)

export const StatusSchema = integerSchema(RANGES.status, 'must be a 4xx or 5xx status')

export const UpstreamUrlSchema = z.string().superRefine((value, ctx) => {
  const parsed = parseUpstreamUrl(value)
  if ('problem' in parsed) ctx.addIssue({code: z.ZodIssueCode.custom, message: parsed.problem})
})

export const ServicePathSchema = z.string().superRefine((value, ctx) => {
  const problem = servicePathProblem(value)
  if (problem) ctx.addIssue({code: z.ZodIssueCode.custom, message: problem})
})

export const RoutePathSchema = z.string().superRefine((value, ctx) => {
  const problem = routePathProblem(value)
  if (problem) ctx.addIssue({code: z.ZodIssueCode.custom, message: problem})
})

export const ServiceNameSchema = z
  .string()
  .regex(dnsLabel, 'service names must be DNS-safe (lowercase letters, digits, "-")')
  .refine(
    (name) => !(RESERVED_SERVICE_NAMES as readonly string[]).includes(name),
    (name) => ({message: `"${name}" is reserved for the gateway's own containers`}),
  )

export const ImageSchema = z
  .string()
  .max(LIMITS.image, `must be at most ${LIMITS.image} characters`)
  .regex(imageRef, 'must be an image reference such as nginx:1.30')

export const MemorySchema = z
  .string()
  .regex(MEMORY_PATTERN, 'must be a size such as 256m or 1g')
  .refine((memory) => memoryBytes(memory) >= 32 * 1024 ** 2, 'must be at least 32m')

export const CpusSchema = z
  .number({errorMap: () => ({message: 'must be a number of CPUs from 0.1 to 64, such as 0.5 or 2'})})
  .min(0.1, 'must be at least 0.1 CPUs')
  .max(64, 'must be at most 64 CPUs')
  .refine((cpus) => /^\d+(\.\d{1,2})?$/.test(String(cpus)), 'must have at most two decimals, such as 0.25')

function limitsSchema(defaults: {memory: string; cpus: number}) {
  return z
    .object({memory: MemorySchema.default(defaults.memory), cpus: CpusSchema.default(defaults.cpus)})
    .strict()
    .default({})
}

export const TrustedProxySchema = z.string().superRefine((value, ctx) => {
  const problem = cidrProblem(value)
  if (problem) ctx.addIssue({code: z.ZodIssueCode.custom, message: problem})
})

export const BodySizeSchema = z
  .string()
  .regex(BODY_SIZE_PATTERN, 'must be a size such as 1m, 512k or 20m (NGINX client_max_body_size)')

export const CACHE_CREDENTIALED = ['bypass', 'share'] as const

export const DurationSchema = z
  .string()
  .refine((text) => durationSeconds(text) !== undefined, 'must be a time such as 30s, 5m or 1h, at most 7d')

/** Bounds of the cache, in bytes: below 1 MB it holds next to nothing; above 4 GB it is a CDN's job. */
const CACHE_SIZE = {min: 1024 ** 2, max: 4 * 1024 ** 3}
export const SizeSchema = z.string().refine((text) => {
  const bytes = sizeBytes(text)
  return bytes !== undefined && bytes >= CACHE_SIZE.min && bytes <= CACHE_SIZE.max
}, 'must be a size such as 10m, 512m or 1g, from 1m to 4g')

/**
 * A route's response cache. On routes with auth the credential is checked on every request (the
 * cache answers in the content phase, after auth) and entries are keyed by a hash of the credential,
 * so one client's cached answer never reaches another. On public routes, requests that carry
 * Authorization or a Cookie go to the service and are not stored, unless `credentialed: share`.
 */
export const RouteCacheSchema = z
  .object({
    ttl: DurationSchema,
    credentialed: z
      .enum(CACHE_CREDENTIALED, {errorMap: () => ({message: `must be one of ${CACHE_CREDENTIALED.join(', ')}`})})
      .default('bypass'),
  })
  .strict()

/** The one cache all cached routes share: keys in memory, responses on a size-capped tmpfs. Optional:
 * the defaults apply when a route caches. */
export const CacheSchema = z
  .object({
    keys: SizeSchema.default('10m'),
    size: SizeSchema.default('256m'),
  })
  .strict()

/**
 * The metrics profile: the NGINX Prometheus exporter reads the gateway's stub_status over the
 * project's own network and serves it at /metrics on its own port, on loopback unless `bind` says
 * otherwise. Never one of the gateway's public ports (checked with the manifest).
 */
export const MetricsSchema = z
  .object({
    enabled: z.boolean({errorMap: () => ({message: 'must be true or false'})}).default(false),
    port: PortSchema.default(DEFAULT_METRICS.port),
    bind: BindSchema.default(DEFAULT_METRICS.bind),
  })
  .strict()

export const RouteRateLimitSchema = z.object({rate: RateSchema, burst: BurstSchema}).strict()

export const RateLimitSchema = z
  .object({
    rate: RateSchema.default('10r/s'),
    burst: BurstSchema.default(20),
    status: StatusSchema.default(503),
  })
  .strict()

export const TlsModeSchema = z.enum(TLS_MODES, {errorMap: () => ({message: `must be one of ${TLS_MODES.join(', ')}`})})

export const TlsSchema = z
  .object({
    mode: TlsModeSchema.default('self-signed'),
    email: z.string().max(LIMITS.email).email('must be an email address').optional(),
    staging: z.boolean().optional(),
    acmeServer: z.string().max(LIMITS.url).url('must be the URL of an ACME directory').optional(),
  })
  .strict()
  .superRefine((tls, ctx) => {
    if (tls.mode === 'certbot' && !tls.email) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['email'],
        message: "is required when tls.mode is certbot (Let's Encrypt sends expiry notices there)",
      })
    }
  })

export const DjangoServiceSchema = z
  .object({
    kind: z.literal('django'),
    path: ServicePathSchema.optional(),
    replicas: ReplicasSchema.default(1),
    port: PortSchema.default(8000),
    // Gunicorn's worker count follows these (GUNICORN_WORKERS in docker-compose.yml).
    limits: limitsSchema(DEFAULT_LIMITS.django),
  })
  .strict()

export const ExternalServiceSchema = z
  .object({
    kind: z.literal('external'),
    url: UpstreamUrlSchema,
  })
  .strict()

export const ServiceSchema = z.discriminatedUnion('kind', [DjangoServiceSchema, ExternalServiceSchema], {
  errorMap: (issue, ctx) =>
    issue.code === z.ZodIssueCode.invalid_union_discriminator
      ? {message: 'kind must be django or external'}
      : {message: ctx.defaultError},
})

export const RouteSchema = z
  .object({
    path: RoutePathSchema,
    service: z.string(),
    auth: z.enum(AUTH_MODES, {errorMap: () => ({message: `must be one of ${AUTH_MODES.join(', ')}`})}).default('none'),
    rateLimit: RouteRateLimitSchema.optional(),
    cache: RouteCacheSchema.optional(),
  })
  .strict()

export const ManifestSchema = z
  .object({
    version: z.literal(MANIFEST_VERSION, {errorMap: () => ({message: `must be ${MANIFEST_VERSION}`})}),
    name: NameSchema,
    domain: DomainSchema,
    bind: BindSchema.default('127.0.0.1'),
    ports: z
      .object({http: PortSchema.default(8080), https: PortSchema.default(8443)})
      .strict()
      .default({})
      .refine((ports) => ports.http !== ports.https, {
        message: 'http and https must be different ports',
        path: ['https'],
      }),
    tls: TlsSchema.default({}),
    // Load balancers in front of the gateway (the seed's ALB) whose X-Forwarded-For NGINX believes;
    // empty: the client is whoever connected, and what it claims in X-Forwarded-For is dropped.
    trustedProxies: z
      .array(TrustedProxySchema)
      .max(LIMITS.trustedProxies, `at most ${LIMITS.trustedProxies} networks`)
      .default([]),
    // Largest request body the gateway accepts (413 with a JSON body above it).
    clientMaxBodySize: BodySizeSchema.default('1m'),
    rateLimit: RateLimitSchema.default({}),
    cache: CacheSchema.optional(),
    metrics: MetricsSchema.optional(),
    // Names are checked as keys, so a `__proto__` key is refused rather than silently dropped.
    services: z
      .record(ServiceNameSchema, ServiceSchema)
      .refine((services) => Object.keys(services).length <= LIMITS.services, `at most ${LIMITS.services} services`),
    routes: z
      .array(RouteSchema)
      .min(1, 'needs at least one route')
      .max(LIMITS.routes, `at most ${LIMITS.routes} routes`),
    images: z
      .object({
        python: ImageSchema.default(DEFAULT_IMAGES.python),
        nginx: ImageSchema.default(DEFAULT_IMAGES.nginx),
        // Used by `certs issue` / `certs renew` (tls.mode certbot) and the compose file's certbot service.
        certbot: ImageSchema.default(DEFAULT_IMAGES.certbot),
        // The NGINX Prometheus exporter (metrics.enabled).
        exporter: ImageSchema.default(DEFAULT_IMAGES.exporter),
      })
      .strict()
      .default({}),
    gateway: z
      .object({limits: limitsSchema(DEFAULT_LIMITS.gateway)})
      .strict()
      .default({}),
  })
  .strict()
  .superRefine((manifest, ctx) => {
    if (!Object.values(manifest.services).some((service) => service.kind === 'django')) {
      ctx.addIssue({code: z.ZodIssueCode.custom, path: ['services'], message: 'needs at least one django service'})
    }

    const metrics = manifest.metrics
    if (metrics?.enabled && (metrics.port === manifest.ports.http || metrics.port === manifest.ports.https))
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['metrics', 'port'],
        message: `must differ from the gateway's public ports (${manifest.ports.http}, ${manifest.ports.https})`,
      })

    const folders = new Map<string, string>()
    for (const [name, service] of Object.entries(manifest.services)) {
      if (service.kind !== 'django') continue
      const folder = (service.path ?? `services/${name}`).replace(/\/$/, '')
      const other = folders.get(folder)
      if (other !== undefined)
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['services', name, 'path'],
          message: `${folder} is already the folder of service "${other}"`,
        })
      else folders.set(folder, name)
    }

    const seen = new Map<string, number>()
    for (const [index, route] of manifest.routes.entries()) {
      const reserved = RESERVED_ROUTE_PREFIXES.find((prefix) => route.path.startsWith(prefix))
      if (reserved)
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['routes', index, 'path'],
          message: `${reserved} is reserved for the gateway itself`,
        })

      // Own properties only: `constructor` or `toString` is not a service of every manifest.
      if (!Object.hasOwn(manifest.services, route.service)) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['routes', index, 'service'],
          message: `no service named ${quoted(route.service)}`,
        })
      }

      const earlier = seen.get(route.path)
      if (earlier === undefined) seen.set(route.path, index)
      else
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['routes', index, 'path'],
          message: `duplicate path ${quoted(route.path)} (also routes[${earlier}])`,
        })
    }
  })

/** What gateway.yaml holds after defaults are applied. */
export type Manifest = z.output<typeof ManifestSchema>
/** What a user may write in gateway.yaml (defaults optional). */
export type ManifestInput = z.input<typeof ManifestSchema>
export type Service = Manifest['services'][string]
export type DjangoService = z.output<typeof DjangoServiceSchema>
export type ExternalService = z.output<typeof ExternalServiceSchema>
export type Route = Manifest['routes'][number]
export type AuthMode = (typeof AUTH_MODES)[number]
export type TlsMode = (typeof TLS_MODES)[number]
export type RouteCache = z.output<typeof RouteCacheSchema>
export type Metrics = z.output<typeof MetricsSchema>

/** `['routes', 2, 'service']` -> `routes[2].service`, the form users see in errors. */
export function formatFieldPath(path: ReadonlyArray<string | number>): string {
  let out = ''
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`
    // A key from gateway.yaml is the user's text: anything but a plain name is shown quoted and escaped.
    else if (!/^[A-Za-z0-9_-]+$/.test(part)) out += `[${quoted(part)}]`
    else out += out === '' ? part : `.${part}`
  }

  return out === '' ? '(manifest)' : out
}
