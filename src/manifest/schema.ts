import {isIP} from 'node:net'
import {z} from 'zod'

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
export const RESERVED_SERVICE_NAMES = ['gateway', 'certbot'] as const

/** Paths the gateway serves itself: ACME HTTP-01 challenges and its internal auth/error locations. */
export const RESERVED_ROUTE_PREFIXES = ['/.well-known/acme-challenge/', '/_gateway/'] as const

export const DEFAULT_IMAGES = {
  python: 'python:3.12-slim',
  nginx: 'nginx:1.27',
  certbot: 'certbot/certbot:latest',
} as const

// DNS label: compose project names and container host names must both accept it.
const dnsLabel = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
const hostname =
  /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/
// One path segment set that NGINX takes literally in a prefix location and Django's URLconf can match.
const routePath = /^\/([A-Za-z0-9._~-]+\/)*$/
const imageRef = /^[a-z0-9]+([._\-/:@][a-zA-Z0-9_.-]+)*$/

export const NameSchema = z
  .string()
  .regex(
    dnsLabel,
    'must be DNS-safe: lowercase letters, digits and "-", 1 to 63 characters, not starting or ending with "-"',
  )

export const DomainSchema = z
  .string()
  .refine(
    (value) => hostname.test(value) || isIP(value) !== 0,
    'must be a host name such as api.example.com (no spaces, no scheme, no port)',
  )

export const BindSchema = z
  .string()
  .refine((value) => isIP(value) !== 0, 'must be an IP address such as 127.0.0.1 or 0.0.0.0')

export const PortSchema = z.coerce
  .number({invalid_type_error: 'must be a port number'})
  .int('must be a whole number')
  .min(1, 'must be between 1 and 65535')
  .max(65_535, 'must be between 1 and 65535')

export const RateSchema = z.string().regex(/^[1-9]\d*r\/[sm]$/, 'must look like 10r/s or 600r/m')

export const BurstSchema = z.coerce
  .number({invalid_type_error: 'must be a number'})
  .int('must be a whole number')
  .min(0, 'must be 0 or more')

export const ReplicasSchema = z.coerce
  .number({invalid_type_error: 'must be a number'})
  .int('must be a whole number')
  .min(1, 'must be at least 1')
  .max(MAX_REPLICAS, `must be at most ${MAX_REPLICAS}`)

export const UpstreamUrlSchema = z
  .string()
  .url('must be a URL such as https://payments.example.com')
  .refine((value) => /^https?:$/.test(new URL(value).protocol), 'must use http:// or https://')
  .refine((value) => {
    const url = new URL(value)
    return url.username === '' && url.password === '' && url.search === '' && url.hash === ''
  }, 'must not carry credentials, a query or a fragment')

export const ImageSchema = z.string().regex(imageRef, 'must be an image reference such as nginx:1.27')

export const RouteRateLimitSchema = z.object({rate: RateSchema, burst: BurstSchema}).strict()

export const RateLimitSchema = z
  .object({
    rate: RateSchema.default('10r/s'),
    burst: BurstSchema.default(20),
    status: z.coerce
      .number()
      .int()
      .min(400, 'must be a 4xx or 5xx status')
      .max(599, 'must be a 4xx or 5xx status')
      .default(503),
  })
  .strict()

export const TlsModeSchema = z.enum(TLS_MODES, {errorMap: () => ({message: `must be one of ${TLS_MODES.join(', ')}`})})

export const TlsSchema = z
  .object({
    mode: TlsModeSchema.default('self-signed'),
    email: z.string().email('must be an email address').optional(),
    staging: z.boolean().optional(),
    acmeServer: z.string().url('must be the URL of an ACME directory').optional(),
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
    path: z.string().min(1).optional(),
    replicas: ReplicasSchema.default(1),
    port: PortSchema.default(8000),
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
    path: z
      .string()
      .regex(routePath, 'must start and end with "/" and hold only letters, digits, ".", "_", "~", "-" and "/"'),
    service: z.string(),
    auth: z.enum(AUTH_MODES, {errorMap: () => ({message: `must be one of ${AUTH_MODES.join(', ')}`})}).default('none'),
    rateLimit: RouteRateLimitSchema.optional(),
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
    rateLimit: RateLimitSchema.default({}),
    services: z.record(z.string(), ServiceSchema),
    routes: z.array(RouteSchema).min(1, 'needs at least one route'),
    images: z
      .object({
        python: ImageSchema.default(DEFAULT_IMAGES.python),
        nginx: ImageSchema.default(DEFAULT_IMAGES.nginx),
        // Used by `certs issue` / `certs renew` (tls.mode certbot) and the compose file's certbot service.
        certbot: ImageSchema.default(DEFAULT_IMAGES.certbot),
      })
      .strict()
      .default({}),
  })
  .strict()
  .superRefine((manifest, ctx) => {
    const names = Object.keys(manifest.services)
    if (!names.some((name) => manifest.services[name]?.kind === 'django')) {
      ctx.addIssue({code: z.ZodIssueCode.custom, path: ['services'], message: 'needs at least one django service'})
    }

    for (const name of names) {
      if (!dnsLabel.test(name)) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['services', name],
          message: 'service names must be DNS-safe (lowercase letters, digits, "-")',
        })
      } else if ((RESERVED_SERVICE_NAMES as readonly string[]).includes(name)) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['services', name],
          message: `"${name}" is reserved for the gateway's own containers`,
        })
      }
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

      if (!(route.service in manifest.services)) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['routes', index, 'service'],
          message: `no service named "${route.service}"`,
        })
      }

      const earlier = seen.get(route.path)
      if (earlier === undefined) seen.set(route.path, index)
      else
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['routes', index, 'path'],
          message: `duplicate path "${route.path}" (also routes[${earlier}])`,
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

/** `['routes', 2, 'service']` -> `routes[2].service`, the form users see in errors. */
export function formatFieldPath(path: ReadonlyArray<string | number>): string {
  let out = ''
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`
    else out += out === '' ? part : `.${part}`
  }

  return out === '' ? '(manifest)' : out
}
