import {memoryBytes, sizeBytes} from './grammar.js'
import {djangoServices, replicaName, usesAuth} from './model.js'
import {CacheSchema, DEFAULT_LIMITS, type Manifest} from './schema.js'

/**
 * What runs, derived once from the manifest. The compose file is rendered from this, and `up` creates
 * containers from this, so `docker compose up` and `create-gateway up` start the same stack.
 */

export interface MountSpec {
  /** Relative to the project root. */
  source: string
  target: string
  readOnly: boolean
}

export interface HealthcheckSpec {
  test: string[]
  intervalSeconds: number
  timeoutSeconds: number
  retries: number
  startPeriodSeconds: number
}

export interface StackServiceSpec {
  /** Compose service name. */
  service: string
  role: 'django' | 'gateway' | 'exporter'
  image: string
  /** Build context relative to the project root (Django services). */
  build?: {context: string; dockerfile: string}
  replicas: number
  command?: string[]
  /** Values may hold `${VAR}` references resolved from the project's `.env`, as Compose does. */
  environment: Record<string, string>
  mounts: MountSpec[]
  ports: Array<{bind: string; host: number; container: number}>
  /** None for the exporter: its official image holds only the binary, nothing to probe with. */
  healthcheck?: HealthcheckSpec
  dependsOn: string[]
  stopSignal?: string
  stopGraceSeconds: number
  restart: 'unless-stopped'
  /** The locked-down runtime: read-only root, capabilities, no-new-privileges, limits, bounded logs. */
  runtime: RuntimeSpec
  /** Compose network keys, in order; the first is where the published ports are. */
  networks: string[]
  /** Compose secrets, mounted at /run/secrets/<key>, each from the project file secretFile(key). */
  secrets: string[]
}

export interface RuntimeSpec {
  readOnly: boolean
  /** tmpfs mounts, Compose's short form (`/tmp:size=64m`). */
  tmpfs: string[]
  capDrop: string[]
  capAdd: string[]
  securityOpt: string[]
  limits: {memory: string; cpus: number}
  logging: {driver: string; options: Record<string, string>}
  /** Supplementary groups: the host group of the secret files when they could not be given the container's. */
  groupAdd: string[]
}

/**
 * A container that runs on demand, never as part of `up`: certbot. The compose file lists it under a
 * profile, so `docker compose up` leaves it out too, and `certs issue` / `certs renew` create it from
 * this same description (adding the command of the run).
 */
export interface StackToolSpec {
  service: string
  image: string
  /** The Compose profile that has to be named to start it: `docker compose --profile certbot run ...`. */
  profile: string
  /** Default arguments (after the image's entrypoint). */
  command: string[]
  environment: Record<string, string>
  mounts: MountSpec[]
}

export interface StackSpec {
  project: string
  /** The public network (Compose's `default`): published ports, certbot's way out. */
  network: string
  services: StackServiceSpec[]
  /** One-off containers (tls.mode certbot: certbot); `up` does not start them. */
  tools: StackToolSpec[]
}

/** Ports NGINX listens on inside the gateway container. */
export const GATEWAY_PORTS = {http: 80, https: 443, status: 8081} as const
/**
 * The metrics profile: the gateway serves stub_status on `stubStatus` of its network addresses (the
 * exporter's scrape target); the exporter serves /metrics on `exporter` in its container, which the
 * host reaches at metrics.bind:metrics.port.
 */
export const METRICS_PORTS = {stubStatus: 8082, exporter: 9113} as const
export const METRICS_STUB_STATUS_PATH = '/nginx_status'
/** The exporter's Compose service (a reserved service name). */
export const EXPORTER_SERVICE = 'nginx-exporter'

/** Where the gateway keeps what the project mounts into it. */
export const GATEWAY_PATHS = {
  config: '/etc/nginx/nginx.conf',
  confd: '/etc/nginx/conf.d',
  certs: '/etc/nginx/certs',
  htpasswd: '/etc/nginx/secrets/htpasswd',
  apiKeys: '/etc/nginx/secrets/api-keys.map',
  jwtSecret: '/etc/nginx/secrets/jwt-secret.map',
  /** njs scripts (jwt routes), loaded by the master with the config. */
  njs: '/etc/nginx/njs',
  acmeWebroot: '/var/www/acme',
  /** The response cache (routes with `cache:`): a tmpfs of its own, so its size is capped. */
  cache: '/var/cache/gateway',
} as const

/** Certbot's default directories inside its container; the project keeps them under certbot/. */
export const CERTBOT_PATHS = {
  config: '/etc/letsencrypt',
  work: '/var/lib/letsencrypt',
  logs: '/var/log/letsencrypt',
  /** The same folder the gateway serves at /.well-known/acme-challenge/ (read-only there). */
  webroot: GATEWAY_PATHS.acmeWebroot,
} as const

/** Files and folders of the generated project that the stack refers to. */
export const PROJECT_PATHS = {
  compose: 'docker-compose.yml',
  env: '.env',
  nginxConf: 'gateway/nginx.conf',
  confd: 'gateway/conf.d',
  upstreams: 'gateway/conf.d/upstreams.conf',
  certs: 'certs',
  htpasswd: 'secrets/htpasswd',
  basicAuth: 'secrets/basic-auth.txt',
  apiKeys: 'secrets/api-keys.txt',
  apiKeysMap: 'secrets/api-keys.map',
  /** HS256 key of the jwt routes: what token issuers sign with. */
  jwtSecret: 'secrets/jwt-secret.txt',
  /** The same key as NGINX reads it (a `map` default, see gateway/conf.d/maps.conf). */
  jwtSecretMap: 'secrets/jwt-secret.map',
  njs: 'gateway/njs',
  acmeWebroot: 'acme-webroot',
  /** certbot's state: account key, issued certificates (live/, archive/), renewal config. Never commit it. */
  certbot: 'certbot',
  certbotConfig: 'certbot/config',
  certbotWork: 'certbot/work',
  certbotLogs: 'certbot/logs',
} as const

/** Groups of the users the containers run as: the secret files they read belong to these groups. */
export const CONTAINER_GROUPS = {gateway: 101, django: 10001} as const

/** The internal network's Compose key: the services and the gateway, nothing else, no way out. */
export const INTERNAL_NETWORK = 'internal'

/**
 * Capabilities NGINX keeps: its master binds 80/443, reads root-only files (the keys, the certificate),
 * creates its temp directories for the workers and switches them to the `nginx` user.
 */
export const GATEWAY_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'NET_BIND_SERVICE', 'SETGID', 'SETUID'] as const

/** Container logs: json-file, capped at 3 x 10 MB per container, whatever the traffic. */
export const CONTAINER_LOGGING = {driver: 'json-file', options: {'max-size': '10m', 'max-file': '3'}} as const

/** Where the gateway's NGINX writes its pid file and temp files: a tmpfs, the root being read-only. */
export const GATEWAY_WRITABLE_DIR = '/tmp'

/** Compose secret (and /run/secrets/ file name) of a Django service's SECRET_KEY. */
export function secretKeySecret(service: string): string {
  return `${service}-secret-key`
}

/** The project file of a Compose secret. */
export function secretFile(secret: string): string {
  return `secrets/${secret}`
}

/**
 * Gunicorn workers for a replica's limits: 2 x CPUs + 1 (at least 2), as memory allows at some 64 MB
 * each after 64 MB for the master, and at most 8 (scale out with replicas instead).
 */
export function gunicornWorkers(limits: {memory: string; cpus: number}): number {
  const byCpu = Math.max(2, Math.floor(limits.cpus * 2) + 1)
  const byMemory = Math.floor((memoryBytes(limits.memory) / 1024 ** 2 - 64) / 64)
  return Math.max(1, Math.min(byCpu, byMemory, 8))
}

/**
 * The supplementary group that lets a container read the secret files: none when running as root,
 * which gives the files the container's own group; otherwise the files keep this user's group, which
 * the containers then join.
 */
function secretsGroupAdd(): string[] {
  const uid = process.getuid?.()
  return uid === undefined || uid === 0 ? [] : [String(process.getgid!())]
}

export function serviceImageTag(manifest: Manifest, service: string): string {
  return `${manifest.name}-${service}:latest`
}

export function buildStackSpec(manifest: Manifest): StackSpec {
  const django = djangoServices(manifest)
  const https = manifest.tls.mode !== 'off'
  const publicOrigins = https
    ? [`https://${manifest.domain}`, `https://${manifest.domain}:${manifest.ports.https}`]
    : [`http://${manifest.domain}`, `http://${manifest.domain}:${manifest.ports.http}`]
  const services: StackServiceSpec[] = django.map((service) => ({
    service: service.name,
    role: 'django',
    image: serviceImageTag(manifest, service.name),
    build: {context: service.path, dockerfile: 'Dockerfile'},
    replicas: service.replicas,
    environment: {
      // A file, not a value: `docker inspect` shows the environment to anyone who may run it.
      DJANGO_SECRET_KEY_FILE: `/run/secrets/${secretKeySecret(service.name)}`,
      DJANGO_DEBUG: '0',
      // With TLS off, Django must not redirect to https or mark cookies Secure.
      DJANGO_HTTPS: https ? '1' : '0',
      // The gateway passes the public Host; the service name and loopback are for healthchecks and peers.
      DJANGO_ALLOWED_HOSTS: [manifest.domain, service.name, 'localhost', '127.0.0.1'].join(','),
      DJANGO_CSRF_TRUSTED_ORIGINS: publicOrigins.join(','),
      DJANGO_SERVICE_NAME: service.name,
      GUNICORN_BIND: `0.0.0.0:${service.port}`,
      GUNICORN_WORKERS: String(gunicornWorkers(service.limits)),
    },
    mounts: [],
    ports: [],
    healthcheck: {
      test: [
        'CMD',
        'python3',
        '-c',
        `import urllib.request; urllib.request.urlopen('http://127.0.0.1:${service.port}/healthz', timeout=3)`,
      ],
      intervalSeconds: 5,
      timeoutSeconds: 5,
      retries: 5,
      startPeriodSeconds: 20,
    },
    dependsOn: [],
    stopSignal: 'SIGTERM',
    // Gunicorn's graceful_timeout is 20 s; give it a little more before Docker sends SIGKILL.
    stopGraceSeconds: 25,
    restart: 'unless-stopped',
    runtime: {
      readOnly: true,
      tmpfs: ['/tmp:size=64m'],
      capDrop: ['ALL'],
      capAdd: [],
      securityOpt: ['no-new-privileges:true'],
      limits: service.limits,
      logging: structuredClone(CONTAINER_LOGGING) as RuntimeSpec['logging'],
      groupAdd: secretsGroupAdd(),
    },
    networks: [INTERNAL_NETWORK],
    secrets: [secretKeySecret(service.name)],
  }))

  const gateway: StackServiceSpec = {
    service: 'gateway',
    role: 'gateway',
    image: manifest.images.nginx,
    replicas: 1,
    environment: {},
    mounts: [
      {source: PROJECT_PATHS.nginxConf, target: GATEWAY_PATHS.config, readOnly: true},
      // Folders, not single files: scale rewrites upstreams.conf by atomic rename, which a single-file
      // bind mount would not see.
      {source: PROJECT_PATHS.confd, target: GATEWAY_PATHS.confd, readOnly: true},
      {source: PROJECT_PATHS.certs, target: GATEWAY_PATHS.certs, readOnly: true},
      {source: PROJECT_PATHS.htpasswd, target: GATEWAY_PATHS.htpasswd, readOnly: true},
      {source: PROJECT_PATHS.apiKeysMap, target: GATEWAY_PATHS.apiKeys, readOnly: true},
      // Only with a jwt route, so other projects' stacks (and compose files) stay as they were. A folder
      // for the script, like conf.d: a re-render replaces the file by atomic rename.
      ...(usesAuth(manifest, 'jwt')
        ? [{source: PROJECT_PATHS.jwtSecretMap, target: GATEWAY_PATHS.jwtSecret, readOnly: true}]
        : []),
      // njs: the jwt check, and the credential hash of cached routes with auth.
      ...(usesAuth(manifest, 'jwt') || manifest.routes.some((route) => route.cache && route.auth !== 'none')
        ? [{source: PROJECT_PATHS.njs, target: GATEWAY_PATHS.njs, readOnly: true}]
        : []),
      {source: PROJECT_PATHS.acmeWebroot, target: GATEWAY_PATHS.acmeWebroot, readOnly: true},
    ],
    ports: [
      {bind: manifest.bind, host: manifest.ports.http, container: GATEWAY_PORTS.http},
      ...(manifest.tls.mode === 'off'
        ? []
        : [{bind: manifest.bind, host: manifest.ports.https, container: GATEWAY_PORTS.https}]),
    ],
    healthcheck: {
      test: ['CMD', 'curl', '-fsS', '-o', '/dev/null', `http://127.0.0.1:${GATEWAY_PORTS.status}/healthz`],
      intervalSeconds: 5,
      timeoutSeconds: 3,
      retries: 5,
      startPeriodSeconds: 5,
    },
    dependsOn: django.map((service) => service.name),
    // SIGQUIT is NGINX's graceful shutdown: in-flight requests finish.
    stopSignal: 'SIGQUIT',
    stopGraceSeconds: 15,
    restart: 'unless-stopped',
    runtime: {
      readOnly: true,
      tmpfs: [
        `${GATEWAY_WRITABLE_DIR}:size=64m`,
        // The response cache (routes with `cache:`): a tmpfs of its own, so its size is capped.
        ...(manifest.routes.some((route) => route.cache)
          ? [`${GATEWAY_PATHS.cache}:size=${cacheTmpfsBytes(manifest)}`]
          : []),
      ],
      capDrop: ['ALL'],
      capAdd: [...GATEWAY_CAPABILITIES],
      securityOpt: ['no-new-privileges:true'],
      limits: manifest.gateway.limits,
      logging: structuredClone(CONTAINER_LOGGING) as RuntimeSpec['logging'],
      groupAdd: secretsGroupAdd(),
    },
    // The public network first: the published ports are there.
    networks: ['default', INTERNAL_NETWORK],
    secrets: [],
  }

  const tools: StackToolSpec[] =
    manifest.tls.mode === 'certbot'
      ? [
          {
            service: 'certbot',
            image: manifest.images.certbot,
            profile: 'certbot',
            // The renewal config that `certs issue` left in certbot/config holds the webroot and server.
            command: ['renew', '--non-interactive', '--no-random-sleep-on-renew'],
            environment: {},
            mounts: [
              {source: PROJECT_PATHS.certbotConfig, target: CERTBOT_PATHS.config, readOnly: false},
              {source: PROJECT_PATHS.certbotWork, target: CERTBOT_PATHS.work, readOnly: false},
              {source: PROJECT_PATHS.certbotLogs, target: CERTBOT_PATHS.logs, readOnly: false},
              {source: PROJECT_PATHS.acmeWebroot, target: CERTBOT_PATHS.webroot, readOnly: false},
            ],
          },
        ]
      : []

  return {
    project: manifest.name,
    network: `${manifest.name}_default`,
    services: [...services, gateway, ...(manifest.metrics?.enabled ? [exporterSpec(manifest)] : [])],
    tools,
  }
}

/**
 * The NGINX Prometheus exporter of the metrics profile. It scrapes the gateway's stub_status over the
 * public network (the gateway's and its own; the Django services are not on it) at each scrape of its
 * /metrics, which is published on metrics.bind (loopback by default), never on the gateway's ports.
 */
function exporterSpec(manifest: Manifest): StackServiceSpec {
  const metrics = manifest.metrics!
  return {
    service: EXPORTER_SERVICE,
    role: 'exporter',
    image: manifest.images.exporter,
    replicas: 1,
    // `--name=value`: the official image (1.x) and Debian's build (Go's flag package) both read it.
    command: [
      `--nginx.scrape-uri=http://gateway:${METRICS_PORTS.stubStatus}${METRICS_STUB_STATUS_PATH}`,
      `--web.listen-address=:${METRICS_PORTS.exporter}`,
    ],
    environment: {},
    mounts: [],
    ports: [{bind: metrics.bind, host: metrics.port, container: METRICS_PORTS.exporter}],
    dependsOn: ['gateway'],
    stopGraceSeconds: 5,
    restart: 'unless-stopped',
    runtime: {
      readOnly: true,
      tmpfs: [],
      capDrop: ['ALL'],
      capAdd: [],
      securityOpt: ['no-new-privileges:true'],
      limits: {...DEFAULT_LIMITS.exporter},
      logging: structuredClone(CONTAINER_LOGGING) as RuntimeSpec['logging'],
      groupAdd: [],
    },
    networks: ['default'],
    secrets: [],
  }
}

/**
 * The cache's tmpfs: NGINX's max_size plus a quarter. max_size is enforced by the cache manager after
 * the fact, so the file system needs room above it; a full tmpfs would fail writes, not requests.
 */
export function cacheTmpfsBytes(manifest: Manifest): number {
  return Math.ceil((sizeBytes(cacheSettings(manifest).size)! * 1.25) / 1024 ** 2) * 1024 ** 2
}

/** The manifest's cache bounds, or the defaults when it names none. */
export function cacheSettings(manifest: Manifest): {keys: string; size: string} {
  return manifest.cache ?? CacheSchema.parse({})
}

/** Container names of a service's replicas, 1..count. */
export function replicaNames(manifest: Manifest, service: string, count: number): string[] {
  return Array.from({length: count}, (_, index) => replicaName(manifest, service, index + 1))
}
