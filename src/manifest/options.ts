import {basename} from 'node:path'

import {UsageError} from '../errors.js'
import {quoted} from './grammar.js'
import {fieldParser, integerParser, listParser, parseCache, parseExternal, parseRoute} from './option-values.js'
import {
  AUTH_MODES,
  BindSchema,
  BurstSchema,
  DEFAULT_IMAGES,
  DomainSchema,
  ImageSchema,
  NameSchema,
  PortSchema,
  RateSchema,
  ReplicasSchema,
  TLS_MODES,
  TlsModeSchema,
  type TlsMode,
} from './schema.js'

/**
 * The one table of `init` options, so every prompt can also be answered by a flag. The init command generates its flags from it, the
 * prompt runner asks from it, and `--yes` takes its defaults from it, so the three never disagree.
 */

export interface InitAnswers {
  name: string
  domain: string
  bind: string
  httpPort: number
  httpsPort: number
  tls: TlsMode
  email?: string
  rate: string
  burst: number
  replicas: number
  services: string[]
  externals: string[]
  routes: string[]
  caches: string[]
  /** The metrics profile's host port (on 127.0.0.1); undefined: no exporter. */
  metricsPort?: number
  pythonImage: string
  nginxImage: string
  certbotImage: string
  exporterImage: string
}

export type AnswerKey = keyof InitAnswers

export interface InitOption<K extends AnswerKey = AnswerKey> {
  key: K
  /** Flag name without dashes. */
  flag: string
  summary: string
  /** Manifest path prefixes this option fills, so a schema error can name the flag. */
  fields: string[]
  multiple?: boolean
  choices?: readonly string[]
  /** Ask interactively; options without a prompt take their default unless flagged. */
  prompt?: 'input' | 'select' | 'list'
  /** Ask only when this holds for the answers so far. */
  when?: (answers: Partial<InitAnswers>) => boolean
  default: (context: {dir: string; answers: Partial<InitAnswers>}) => InitAnswers[K] | undefined
  /** Check and convert one raw value (flag text or prompt text). */
  parse: (raw: string) => InitAnswers[K]
  /**
   * A check against the answers before it (a message, or undefined when fine), so a prompt refuses
   * the answer at once rather than after the last question.
   */
  check?(value: InitAnswers[K], answers: Partial<InitAnswers>): string | undefined
}

/** A directory name turned into a DNS-safe project name: "My_API" -> "my-api". */
export function slugify(text: string): string {
  const slug = text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '')
  return slug === '' ? 'gateway' : slug
}

const option = <K extends AnswerKey>(definition: InitOption<K>): InitOption<K> => definition

export const INIT_OPTIONS = [
  option({
    key: 'name',
    flag: 'name',
    summary: 'Project name: the Compose project and container name prefix (DNS-safe).',
    fields: ['name'],
    prompt: 'input',
    default: ({dir}) => slugify(basename(dir)),
    parse: fieldParser(NameSchema, 'name'),
  }),
  option({
    key: 'domain',
    flag: 'domain',
    summary: 'Domain the gateway answers for: server_name and certificate name.',
    fields: ['domain'],
    prompt: 'input',
    default: () => 'api.localhost',
    parse: fieldParser(DomainSchema, 'domain'),
  }),
  option({
    key: 'bind',
    flag: 'bind',
    summary: 'Address the published ports listen on. Use 0.0.0.0 only to expose the gateway beyond this machine.',
    fields: ['bind'],
    default: () => '127.0.0.1',
    parse: fieldParser(BindSchema, 'bind'),
  }),
  option({
    key: 'httpPort',
    flag: 'http-port',
    summary: 'Host port for plain HTTP (redirects to HTTPS, serves ACME challenges).',
    fields: ['ports.http'],
    prompt: 'input',
    default: () => 8080,
    parse: integerParser(PortSchema, 'http-port'),
  }),
  option({
    key: 'httpsPort',
    flag: 'https-port',
    summary: 'Host port for HTTPS.',
    fields: ['ports.https', 'ports'],
    prompt: 'input',
    default: () => 8443,
    parse: integerParser(PortSchema, 'https-port'),
    check: (port, answers) =>
      port === answers.httpPort ? `must differ from the HTTP port (${answers.httpPort})` : undefined,
  }),
  option({
    key: 'tls',
    flag: 'tls',
    summary: "Certificates: self-signed (a local CA, made now), certbot (Let's Encrypt) or off.",
    fields: ['tls.mode', 'tls'],
    choices: TLS_MODES,
    prompt: 'select',
    default: () => 'self-signed' as TlsMode,
    parse: fieldParser(TlsModeSchema, 'tls'),
  }),
  option({
    key: 'email',
    flag: 'email',
    summary: "Contact email for Let's Encrypt (required with --tls certbot).",
    fields: ['tls.email'],
    prompt: 'input',
    when: (answers) => answers.tls === 'certbot',
    default: () => undefined,
    parse: (raw) => {
      if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(raw))
        throw new UsageError(`--email: must be an email address (got ${quoted(String(raw))})`)
      return raw
    },
  }),
  option({
    key: 'rate',
    flag: 'rate',
    summary: 'Rate limit per client IP, NGINX syntax: 10r/s or 600r/m.',
    fields: ['rateLimit.rate'],
    prompt: 'input',
    default: () => '10r/s',
    parse: fieldParser(RateSchema, 'rate'),
  }),
  option({
    key: 'burst',
    flag: 'burst',
    summary: 'Requests a client may send above the rate before getting the limit status.',
    fields: ['rateLimit.burst'],
    prompt: 'input',
    default: () => 20,
    parse: integerParser(BurstSchema, 'burst'),
  }),
  option({
    key: 'replicas',
    flag: 'replicas',
    summary: 'Replicas of the web service that NGINX balances over.',
    fields: ['services.web.replicas'],
    prompt: 'input',
    default: () => 2,
    parse: integerParser(ReplicasSchema, 'replicas'),
  }),
  option({
    key: 'services',
    flag: 'service',
    summary: 'Extra internal Django service NAME, routed at /NAME/ (repeatable).',
    fields: ['services'],
    multiple: true,
    prompt: 'list',
    default: () => [],
    parse: listParser('service', (value) => {
      const result = NameSchema.safeParse(value)
      if (!result.success) throw new Error(result.error.issues[0]?.message ?? 'invalid name')
    }),
  }),
  option({
    key: 'externals',
    flag: 'external',
    summary: 'External upstream NAME=URL, e.g. payment=https://pay.example.com, routed at /NAME/ (repeatable).',
    fields: ['services'],
    multiple: true,
    prompt: 'list',
    default: () => [],
    parse: listParser('external', (value) => parseExternal(value)),
    check: (externals, answers) => {
      const taken = [MAIN_SERVICE, ...(answers.services ?? [])]
      const clash = externals.map((raw) => parseExternal(raw).name).find((name) => taken.includes(name))
      return clash === undefined ? undefined : `"${clash}" is already the name of a Django service`
    },
  }),
  option({
    key: 'routes',
    flag: 'route',
    summary: `Route PATH=SERVICE[:AUTH], AUTH one of ${AUTH_MODES.join(', ')}; replaces the default route for that path or service (repeatable).`,
    fields: ['routes'],
    multiple: true,
    default: () => [],
    parse: listParser('route', (value) => parseRoute(value)),
  }),
  option({
    key: 'caches',
    flag: 'cache',
    summary:
      'Cache the responses of route PATH for TTL, e.g. /api/=30s (repeatable). Routes with auth still check every request and cache per credential.',
    fields: ['routes'],
    multiple: true,
    default: () => [],
    parse: listParser('cache', (value) => parseCache(value)),
  }),
  option({
    key: 'metricsPort',
    flag: 'metrics',
    summary:
      'Run the NGINX Prometheus exporter, its /metrics published on 127.0.0.1:PORT (9113 is usual); off unless given.',
    fields: ['metrics'],
    default: () => undefined,
    parse: integerParser(PortSchema, 'metrics'),
  }),
  option({
    key: 'pythonImage',
    flag: 'python-image',
    summary:
      'Base image of the Django services (an offline stand-in such as create-gateway-offline/python:forky works too).',
    fields: ['images.python'],
    default: () => DEFAULT_IMAGES.python,
    parse: fieldParser(ImageSchema, 'python-image'),
  }),
  option({
    key: 'nginxImage',
    flag: 'nginx-image',
    summary: 'Image of the NGINX gateway.',
    fields: ['images.nginx'],
    default: () => DEFAULT_IMAGES.nginx,
    parse: fieldParser(ImageSchema, 'nginx-image'),
  }),
  option({
    key: 'certbotImage',
    flag: 'certbot-image',
    summary: 'Image certbot runs in for `certs issue` and `certs renew` (tls certbot).',
    fields: ['images.certbot'],
    default: () => DEFAULT_IMAGES.certbot,
    parse: fieldParser(ImageSchema, 'certbot-image'),
  }),
  option({
    key: 'exporterImage',
    flag: 'exporter-image',
    summary: 'Image of the NGINX Prometheus exporter (with --metrics).',
    fields: ['images.exporter'],
    default: () => DEFAULT_IMAGES.exporter,
    parse: fieldParser(ImageSchema, 'exporter-image'),
  }),
] as const satisfies ReadonlyArray<InitOption<AnswerKey>>

/** The first Django service; `--replicas` and the default routes belong to it. */
export const MAIN_SERVICE = 'web'

/** `routes[1].service` -> `--route`, so errors from flag input name the flag the user typed. */
export function flagForField(path: string): string | undefined {
  let best: {flag: string; length: number} | undefined
  for (const entry of INIT_OPTIONS) {
    for (const field of entry.fields) {
      if (
        (path === field || path.startsWith(`${field}.`) || path.startsWith(`${field}[`)) &&
        field.length > (best?.length ?? -1)
      ) {
        best = {flag: entry.flag, length: field.length}
      }
    }
  }

  return best ? `--${best.flag} (${path})` : undefined
}
