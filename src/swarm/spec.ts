import type Docker from 'dockerode'

import {UsageError} from '../errors.js'
import {
  CONTAINER_GROUPS,
  INTERNAL_NETWORK,
  secretFile,
  type StackServiceSpec,
  type StackSpec,
} from '../manifest/stack.js'
import type {SwarmFile} from './gateway-files.js'
import {
  internalNetworkName,
  networkName,
  objectName,
  serviceName,
  SOURCE_FILE_LABEL,
  STACK_IMAGE_LABEL,
  STACK_NAMESPACE_LABEL,
  stackLabels,
} from './names.js'
import {lockedDownContainer, lockedDownTask} from './runtime.js'

/**
 * The pure half of `deploy`: from the stack spec (the same one the compose file and `up` come from) to
 * the Swarm objects: two overlay networks (as the compose stack: the public one for the gateway's ports,
 * an internal one with no way out for the services), content-named configs and secrets, and service
 * specs with healthchecks, update/rollback and restart policies, the compose stack's locked-down
 * runtime (src/swarm/runtime.ts) and the stack labels.
 */

const SECOND_NS = 1_000_000_000

/** Swarm kills tasks that stay unhealthy; on a small, busy machine Django's first answer is slow. */
export const DJANGO_START_PERIOD_SECONDS = 90
/** The generated Dockerfile's user (templates/service/Dockerfile.ejs): it has to read its secret key. */
const APP_UID = String(CONTAINER_GROUPS.django)

export interface SwarmObject {
  kind: 'config' | 'secret'
  name: string
  labels: Record<string, string>
  data: Buffer
  /** Where the file appears in the service's containers. */
  target: string
  service: string
  uid: string
  gid: string
  mode: number
}

export interface SwarmService {
  /** The manifest's name for it (`web`, `gateway`). */
  service: string
  /** The swarm service name (`my-api_web`). */
  name: string
  role: 'django' | 'gateway' | 'exporter'
  replicas: number
  /** The spec without object IDs; `withObjectIds` adds them once the configs and secrets exist. */
  spec: Docker.ServiceSpec
}

export interface SwarmNetwork {
  name: string
  labels: Record<string, string>
  /** No route out of the cluster (Compose's `internal: true`). */
  internal: boolean
}

export interface SwarmPlan {
  namespace: string
  /** The public network first. */
  networks: SwarmNetwork[]
  objects: SwarmObject[]
  services: SwarmService[]
}

export interface SwarmPlanInput {
  stack: StackSpec
  /** Pushed image reference per Django service. */
  images: Record<string, string>
  /** Resolved environment per Django service (from `.env`, as `up` does). */
  environment: Record<string, Record<string, string>>
  /** Content of each Compose secret the services name (`web-secret-key`: the project's secrets/web-secret-key). */
  secrets: Record<string, Buffer>
  gatewayFiles: SwarmFile[]
  /** Placement of the gateway: `node.role==manager`, or `node.labels.edge==true` when nodes are labelled. */
  gatewayConstraint: string
}

function seconds(value: number): number {
  return value * SECOND_NS
}

/** The service's healthcheck for Swarm; none for a service without one (the metrics exporter). */
function healthcheck(spec: StackServiceSpec, startPeriodSeconds?: number): Docker.HealthConfig | undefined {
  if (!spec.healthcheck) return undefined
  return {
    Test: spec.healthcheck.test,
    Interval: seconds(spec.healthcheck.intervalSeconds),
    Timeout: seconds(spec.healthcheck.timeoutSeconds),
    Retries: spec.healthcheck.retries,
    StartPeriod: seconds(startPeriodSeconds ?? spec.healthcheck.startPeriodSeconds),
  }
}

/** Nodes labelled `edge=true` hold the gateway when there are any (where an external load balancer points). */
export function gatewayConstraint(nodeLabels: ReadonlyArray<Record<string, string>>): string {
  return nodeLabels.some((labels) => labels.edge === 'true') ? 'node.labels.edge==true' : 'node.role==manager'
}

function objectFor(namespace: string, service: string, file: SwarmFile): SwarmObject {
  return {
    kind: file.kind,
    name: objectName(namespace, file.source, file.content),
    labels: {...stackLabels(namespace), [SOURCE_FILE_LABEL]: file.source},
    data: file.content,
    target: file.target,
    service,
    uid: '0',
    gid: '0',
    mode: file.mode ?? 0o444,
  }
}

/** A compose network key (`default`, `internal`) -> the stack's overlay, with the service's name as alias. */
function networkAttachments(namespace: string, spec: StackServiceSpec): Docker.NetworkAttachmentConfig[] {
  return spec.networks.map((key) => ({
    Target: key === INTERNAL_NETWORK ? internalNetworkName(namespace) : networkName(namespace),
    Aliases: [spec.service],
  }))
}

/** What differs between the stack's kinds of service; everything else comes from `swarmService`. */
interface ServiceParts {
  role: SwarmService['role']
  image: string
  replicas: number
  /** Environment, healthcheck, command, configs and secrets: the kind's own container settings. */
  container: Docker.ContainerSpec
  restart: 'any' | 'on-failure'
  placement: Docker.Placement
  /** start-first: a new task takes traffic once healthy; stop-first: a host port cannot be bound twice on a node. */
  order: 'start-first' | 'stop-first'
  monitorSeconds: number
  endpoint: Docker.EndpointSpec
}

/**
 * One service of the stack: its name and labels, the compose stack's locked-down runtime, its networks,
 * update and rollback (one task at a time, rolled back on failure) and the kind's own parts.
 */
function swarmService(namespace: string, spec: StackServiceSpec, parts: ServiceParts): SwarmService {
  const name = serviceName(namespace, spec.service)
  const update = {Parallelism: 1, Delay: 0, Monitor: seconds(parts.monitorSeconds), Order: parts.order}
  return {
    service: spec.service,
    name,
    role: parts.role,
    replicas: parts.replicas,
    spec: {
      Name: name,
      Labels: {...stackLabels(namespace), [STACK_IMAGE_LABEL]: parts.image},
      TaskTemplate: {
        ContainerSpec: {
          Image: parts.image,
          Labels: stackLabels(namespace),
          ...(spec.stopSignal ? {StopSignal: spec.stopSignal} : {}),
          StopGracePeriod: seconds(spec.stopGraceSeconds),
          ...lockedDownContainer(spec),
          ...parts.container,
        },
        ...lockedDownTask(spec),
        RestartPolicy: {Condition: parts.restart, Delay: seconds(5), MaxAttempts: 0},
        Placement: parts.placement,
        Networks: networkAttachments(namespace, spec),
      },
      Mode: {Replicated: {Replicas: parts.replicas}},
      UpdateConfig: {...update, FailureAction: 'rollback'},
      RollbackConfig: {...update, FailureAction: 'pause'},
      EndpointSpec: parts.endpoint,
    },
  }
}

function djangoService(
  namespace: string,
  spec: StackServiceSpec,
  input: SwarmPlanInput,
  secrets: SwarmObject[],
): SwarmService {
  // The secret key is a file (DJANGO_SECRET_KEY_FILE), never a value in the service's environment.
  const environment: Record<string, string> = {...input.environment[spec.service]}
  delete environment.DJANGO_SECRET_KEY
  return swarmService(namespace, spec, {
    role: 'django',
    image: input.images[spec.service]!,
    replicas: spec.replicas,
    container: {
      Env: Object.entries(environment)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([variable, value]) => `${variable}=${value}`),
      HealthCheck: healthcheck(spec, DJANGO_START_PERIOD_SECONDS),
      Secrets: secrets.map(secretReference),
    },
    restart: 'on-failure',
    placement: {Preferences: [{Spread: {SpreadDescriptor: 'node.id'}}]},
    // A new replica takes traffic only once healthy, then an old one stops; a failed update rolls back.
    order: 'start-first',
    monitorSeconds: 15,
    // No IPVS needed: the gateway resolves every task's address through DNS.
    endpoint: {Mode: 'dnsrr'},
  })
}

function gatewayService(
  namespace: string,
  spec: StackServiceSpec,
  input: SwarmPlanInput,
  objects: SwarmObject[],
): SwarmService {
  return swarmService(namespace, spec, {
    role: 'gateway',
    image: spec.image,
    replicas: 1,
    container: {
      ...(spec.healthcheck ? {HealthCheck: healthcheck(spec)} : {}),
      // The pid file and temp files on a tmpfs, and the response cache on its own, size-capped one
      // (lockedDownContainer's mounts).
      Configs: objects.filter((object) => object.kind === 'config').map(configReference),
      Secrets: objects.filter((object) => object.kind === 'secret').map(secretReference),
    },
    restart: 'any',
    placement: {Constraints: [input.gatewayConstraint]},
    // stop-first: a second task cannot bind the same host-mode port on the same edge node.
    order: 'stop-first',
    monitorSeconds: 10,
    endpoint: {
      Mode: 'dnsrr',
      Ports: spec.ports.map((port) => ({
        Protocol: 'tcp',
        TargetPort: port.container,
        PublishedPort: port.container,
        PublishMode: 'host',
      })),
    },
  })
}

/** Addresses that mean "this machine only" and "every address", as `metrics.bind` may say them. */
const LOOPBACK = new Set(['127.0.0.1', '::1'])
const EVERY_ADDRESS = new Set(['0.0.0.0', '::'])

/**
 * How the exporter's /metrics is published on a swarm. Swarm publishes a port on every address of a
 * node (mode host) or through the routing mesh, never on one address: so the default loopback bind
 * publishes nothing (the exporter is reachable as `nginx-exporter:9113` on the stack's public overlay
 * network, which is attachable), 0.0.0.0 publishes metrics.port in host mode on the exporter's node,
 * and any other address is refused before anything is built.
 */
export function exporterPorts(spec: StackServiceSpec): Docker.PortConfig[] {
  return spec.ports.flatMap((port) => {
    if (LOOPBACK.has(port.bind)) return []
    if (EVERY_ADDRESS.has(port.bind))
      return [
        {Protocol: 'tcp' as const, TargetPort: port.container, PublishedPort: port.host, PublishMode: 'host' as const},
      ]
    throw new UsageError(
      `metrics.bind ${port.bind}: a swarm cannot publish a port on one address of a node, only on all of them (mode host) or on none`,
      {
        hint: `Use metrics.bind 127.0.0.1 (not published: scrape nginx-exporter:${port.container} from the stack's overlay network) or 0.0.0.0 (published on port ${port.host} of every address of the exporter's node: keep it behind a firewall).`,
      },
    )
  })
}

/**
 * What the stack spec asks that a swarm cannot do, refused before anything is built or created
 * (`deploy` calls it first; buildSwarmPlan meets the same refusals).
 */
export function checkSwarmStack(stack: StackSpec): void {
  for (const spec of stack.services) {
    if (spec.role === 'exporter') exporterPorts(spec)
    if (spec.role === 'gateway') gatewayPublishNote(spec)
  }
}

/**
 * What a swarm does with gateway.yaml's `bind`: the gateway's 80 and 443 are published in host mode on
 * every address of its node, since a swarm cannot publish on one address. 0.0.0.0 says just that; the
 * default 127.0.0.1 (right for one machine, where the gateway stays private until you open it) cannot
 * hold on a cluster, so `deploy` says so rather than ignoring it silently; any other address asks for
 * one interface, which would be a promise we break, so it is refused before anything is built.
 */
export function gatewayPublishNote(spec: StackServiceSpec): string | undefined {
  const binds = [...new Set(spec.ports.map((port) => port.bind))]
  const published = spec.ports.map((port) => port.container).join(' and ')
  const other = binds.find((bind) => !LOOPBACK.has(bind) && !EVERY_ADDRESS.has(bind))
  if (other !== undefined)
    throw new UsageError(
      `bind ${other}: a swarm cannot publish the gateway on one address of a node, only on all of them (mode host)`,
      {
        hint: `Set bind: 0.0.0.0 in gateway.yaml for a swarm (ports ${published} of every address of the gateway's node: put a firewall or your load balancer in front), or run the stack on one host with \`up\`.`,
      },
    )
  if (binds.some((bind) => LOOPBACK.has(bind)))
    return `gateway.yaml's bind ${binds.join(', ')} applies on one host only: on a swarm the gateway is published on ports ${published} of every address of its node (set bind: 0.0.0.0 to say so)`
  return undefined
}

/**
 * The metrics profile's NGINX exporter (`<ns>_nginx-exporter`): the compose service's image, command
 * and lockdown, on the public overlay network, where it scrapes the gateway's stub_status listener
 * (`gateway:8082`, never published). Placed where the gateway is, so a published /metrics is on a
 * known node, and the image the gateway's node has is the one it needs.
 */
function exporterService(namespace: string, spec: StackServiceSpec, input: SwarmPlanInput): SwarmService {
  return swarmService(namespace, spec, {
    role: 'exporter',
    image: spec.image,
    replicas: 1,
    container: {
      ...(spec.command ? {Args: [...spec.command]} : {}),
      ...(spec.healthcheck ? {HealthCheck: healthcheck(spec)} : {}),
    },
    restart: 'any',
    placement: {Constraints: [input.gatewayConstraint]},
    // stop-first: a published host port cannot be bound twice on one node.
    order: 'stop-first',
    monitorSeconds: 10,
    endpoint: {Mode: 'dnsrr', Ports: exporterPorts(spec)},
  })
}

// Object IDs are filled in by withObjectIds; the name is enough to plan and compare.
function configReference(object: SwarmObject): Docker.ConfigReference {
  return {
    ConfigID: '',
    ConfigName: object.name,
    File: {Name: object.target, UID: object.uid, GID: object.gid, Mode: object.mode},
  } as Docker.ConfigReference
}

function secretReference(object: SwarmObject): Docker.SecretReference {
  return {
    SecretID: '',
    SecretName: object.name,
    File: {Name: object.target, UID: object.uid, GID: object.gid, Mode: object.mode},
  } as Docker.SecretReference
}

/** A Compose secret as Swarm secret, at the path Compose mounts it (/run/secrets/<key>), for the app user only. */
function serviceSecret(namespace: string, spec: StackServiceSpec, key: string, input: SwarmPlanInput): SwarmObject {
  const content = input.secrets[key]
  if (!content) throw new Error(`no content for secret ${key} of service ${spec.service}`)
  return {
    ...objectFor(namespace, spec.service, {
      source: secretFile(key),
      target: `/run/secrets/${key}`,
      kind: 'secret',
      content,
    }),
    uid: APP_UID,
    gid: APP_UID,
    mode: 0o400,
  }
}

export function buildSwarmPlan(input: SwarmPlanInput): SwarmPlan {
  const namespace = input.stack.project
  const objects: SwarmObject[] = []
  const services: SwarmService[] = []
  for (const spec of input.stack.services) {
    if (spec.role === 'django') {
      const secrets = spec.secrets.map((key) => serviceSecret(namespace, spec, key, input))
      objects.push(...secrets)
      services.push(djangoService(namespace, spec, input, secrets))
    } else if (spec.role === 'exporter') {
      services.push(exporterService(namespace, spec, input))
    } else {
      const files = input.gatewayFiles.map((file) => objectFor(namespace, spec.service, file))
      objects.push(...files)
      services.push(gatewayService(namespace, spec, input, files))
    }
  }

  // The gateway last: it starts once the services it resolves exist.
  return {
    namespace,
    networks: [
      {name: networkName(namespace), labels: stackLabels(namespace), internal: false},
      {name: internalNetworkName(namespace), labels: stackLabels(namespace), internal: true},
    ],
    objects,
    services,
  }
}

/** The spec to send, with the IDs of the configs and secrets it names. */
export function withObjectIds(spec: Docker.ServiceSpec, ids: ReadonlyMap<string, string>): Docker.ServiceSpec {
  const template = spec.TaskTemplate as Docker.ContainerTaskSpec | undefined
  const container = template?.ContainerSpec
  if (!template || !container) return spec
  const id = (name: string) => {
    const found = ids.get(name)
    if (!found) throw new Error(`no ID for swarm object ${name}`)
    return found
  }

  return {
    ...spec,
    TaskTemplate: {
      ...template,
      ContainerSpec: {
        ...container,
        ...(container.Configs
          ? {Configs: container.Configs.map((ref: Docker.ConfigReference) => ({...ref, ConfigID: id(ref.ConfigName!)}))}
          : {}),
        ...(container.Secrets
          ? {Secrets: container.Secrets.map((ref: Docker.SecretReference) => ({...ref, SecretID: id(ref.SecretName!)}))}
          : {}),
      },
    },
  }
}

export {STACK_NAMESPACE_LABEL}
