import type {Manifest} from '../../manifest/schema.js'
import type {PlannedFile} from '../../render/plan.js'

/**
 * What every resource builder of `export kubernetes` reads: the manifest, the flags, the project's
 * secret material (read from disk once, in export.ts) and the gateway's configuration rendered for the
 * cluster. Builders are pure functions of this, so the same project exports the same bytes.
 */

export interface KubernetesOptions {
  namespace: string
  /** Registry the Django images are pushed to (`ghcr.io/acme`); without it, the local image names. */
  registry?: string
  /** DNS server the gateway asks at request time. */
  resolver: string
}

/** The project's secrets as the cluster needs them: exactly what the gateway and Django read. */
export interface SecretMaterial {
  /** Django SECRET_KEY per service. */
  secretKeys: Record<string, string>
  /** Files of the gateway's secrets/ folder the routes use (`htpasswd`, `api-keys.map`, `jwt-secret.map`). */
  gatewayAuth: Record<string, string>
  /** tls.mode self-signed: the project's certificate chain and key (certs/). */
  certificate?: {chain: string; key: string}
}

export interface ExportContext {
  manifest: Manifest
  options: KubernetesOptions
  secrets: SecretMaterial
  /** The gateway's NGINX files rendered for the cluster, paths relative to the project (gateway/...). */
  gatewayFiles: PlannedFile[]
}

/** One document of the export and the file it goes to (kustomization.yaml lists them in this order). */
export interface Resource {
  file: string
  document: object
  /** Holds secret values: written 0600 and listed in the export's .gitignore. */
  secret?: boolean
}

export interface ResourceBuilder {
  /** What it builds, for messages and tests. */
  kind: string
  build(context: ExportContext): Resource[]
}

export const GATEWAY = 'gateway'
/** cluster.local is every distribution's default (EKS too); the resolver flag covers other setups. */
export const CLUSTER_DOMAIN = 'cluster.local'
export const DEFAULT_RESOLVER = `kube-dns.kube-system.svc.${CLUSTER_DOMAIN}`

/**
 * Container ports of the gateway: NGINX runs as uid 101, which may not bind below 1024. The Service
 * publishes them as 80 and 443.
 */
export const GATEWAY_CONTAINER_PORTS = {http: 8080, https: 8443, status: 8081} as const
/** The gateway image's `nginx` user (official image and stand-in alike); the Django image's `app`. */
export const GATEWAY_UID = 101
export const DJANGO_UID = 10001
/** The only writable path of every container (an emptyDir): the root file system is read-only. */
export const WRITABLE_DIR = '/tmp'

/**
 * Requests and limits until gateway.yaml carries its own. Django: Gunicorn runs 2 workers here
 * (GUNICORN_WORKERS), about 40 MB each plus the master, and scales out by replicas; the gateway: 2
 * NGINX workers (see workerProcesses) with 10 MB rate-limit and TLS session zones.
 */
export const DEFAULT_RESOURCES = {
  django: {requests: {cpu: '100m', memory: '192Mi'}, limits: {cpu: '1', memory: '384Mi'}},
  gateway: {requests: {cpu: '100m', memory: '96Mi'}, limits: {cpu: '2', memory: '256Mi'}},
  // The compose service's limits (64 MB, a quarter of a CPU); a scrape costs little more than the Go runtime.
  exporter: {requests: {cpu: '10m', memory: '16Mi'}, limits: {cpu: '250m', memory: '64Mi'}},
} as const
export const GUNICORN_WORKERS = 2
export const GATEWAY_REPLICAS = 2

/** cert-manager's HTTP-01 solver pods listen here. */
export const ACME_SOLVER_PORT = 8089
export const ACME_SOLVER = 'acme-http-solver'

/** The Kubernetes recommended labels (app.kubernetes.io/*) of one part of the project. */
export function labels(context: ExportContext, name: string, component: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': name,
    'app.kubernetes.io/instance': context.manifest.name,
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/part-of': context.manifest.name,
    'app.kubernetes.io/managed-by': 'create-gateway',
  }
}

/** The labels a selector matches on: stable across exports (a Deployment's selector is immutable). */
export function selector(context: ExportContext, name: string): Record<string, string> {
  return {'app.kubernetes.io/name': name, 'app.kubernetes.io/instance': context.manifest.name}
}

export function metadata(context: ExportContext, name: string, component: string) {
  return {name, namespace: context.options.namespace, labels: labels(context, name, component)}
}

/** `web-deployment.yaml`: one file per resource, named after what it is. */
export function resourceFile(name: string, kind: string): string {
  return `${name}-${kind.toLowerCase()}.yaml`
}

/** The Django image as the manifests name it; kustomization.yaml maps it onto the registry. */
export function localImageName(context: ExportContext, service: string): string {
  return `${context.manifest.name}-${service}`
}

/** Secret names. */
export function djangoSecretName(service: string): string {
  return `${service}-django`
}
export const GATEWAY_AUTH_SECRET = 'gateway-auth'
export const GATEWAY_TLS_SECRET = 'gateway-tls'
export const GATEWAY_CONFIG_MAP = 'gateway-nginx'

/**
 * The metrics profile (gateway.yaml metrics.enabled): the NGINX exporter runs beside NGINX in each
 * gateway pod and serves /metrics on this container port; a headless Service of this name lists the
 * pods for scrapers that discover through Services (the Prometheus Operator's ServiceMonitor).
 */
export const EXPORTER_CONTAINER_PORT = 9113
export const GATEWAY_METRICS_SERVICE = 'gateway-metrics'
