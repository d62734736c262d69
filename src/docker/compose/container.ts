import type Docker from 'dockerode'

import type {Labels} from '../engine.js'
import {unsupported} from './errors.js'
import {composeServiceHash} from './hash.js'
import {COMPOSE_LABELS, COMPOSE_VERSION} from './labels.js'
import type {NormalizedNetwork, NormalizedProject, NormalizedService} from './model.js'
import {containerMounts} from './mounts.js'
import {endpoint, networksByPriority} from './networks.js'

/**
 * What `docker compose up` (v2.40) sends to the engine to create a service's container, computed from
 * the normalized service: labels, Config, HostConfig, the primary network's endpoint, and the other
 * networks it connects before the start (engines before API 1.44 take one network at create).
 * The mapping follows Compose's getCreateConfigs field by field for the settings our compose files
 * use; a normalized setting it does not map is an error rather than a silent difference.
 */

export interface ComposeContainerContext {
  project: NormalizedProject
  /** Absolute path of the compose file, for `com.docker.compose.project.config_files`. */
  configFile: string
  number: number
  /** Image ID (`sha256:...`) of the service's image: Compose recreates when its label differs. */
  imageId: string
  /** Labels of our own, added after Compose's (none for users; the test run id in tests). */
  extraLabels?: Labels
}

export interface ExtraNetwork {
  name: string
  endpoint: Docker.EndpointSettings
}

export interface ComposeContainer {
  name: string
  hash: string
  options: Docker.ContainerCreateOptions
  /** Networks after the primary one, connected between create and start (as Compose does on API < 1.44). */
  extraNetworks: ExtraNetwork[]
}

const HANDLED = new Set([
  'name',
  'image',
  'build',
  'command',
  'entrypoint',
  'environment',
  'healthcheck',
  'ports',
  'expose',
  'volumes',
  'secrets',
  'depends_on',
  'deploy',
  'networks',
  'network_mode',
  'logging',
  'labels',
  'restart',
  'stop_signal',
  'stop_grace_period',
  'user',
  'working_dir',
  'hostname',
  'domainname',
  'read_only',
  'privileged',
  'init',
  'tty',
  'stdin_open',
  'tmpfs',
  'cap_add',
  'cap_drop',
  'security_opt',
  'group_add',
  'dns',
  'dns_search',
  'dns_opt',
  'sysctls',
  'ulimits',
  'mem_limit',
  'mem_reservation',
  'memswap_limit',
  'shm_size',
  'cpus',
  'cpu_shares',
  'cpu_period',
  'cpu_quota',
  'cpuset',
  'pids_limit',
  'oom_score_adj',
  'oom_kill_disable',
  'ipc',
  'pid',
  'userns_mode',
  'profiles',
  'pull_policy',
  'scale',
])

/** Compose's default container name: `<project>-<service>-<number>`. */
export function composeContainerName(project: string, service: NormalizedService, number: number): string {
  return service.container_name ?? `${project}-${service.name}-${number}`
}

function restartPolicy(service: NormalizedService): Docker.HostRestartPolicy {
  const mode = (condition: string) =>
    condition === 'none' || condition === 'no'
      ? 'no'
      : condition === 'any' || condition === 'always'
        ? 'always'
        : condition // on-failure, unless-stopped
  let policy: Docker.HostRestartPolicy = {Name: '', MaximumRetryCount: 0}
  if (service.restart) {
    const [name = '', attempts] = service.restart.split(':')
    policy = {Name: mode(name), MaximumRetryCount: attempts ? Number(attempts) || 0 : 0}
  }

  const deployed = service.deploy?.restart_policy
  if (deployed) policy = {Name: mode(deployed.condition ?? ''), MaximumRetryCount: deployed.max_attempts ?? 0}
  return policy
}

/**
 * docker/cli's EffectiveCapAddCapDrop, which Compose applies: names upper-cased with the `CAP_` prefix
 * (`ALL` stays), ALL on one side replaces the rest of that side, a name on both sides leaves both, sorted.
 */
export function effectiveCapabilities(add: string[] = [], drop: string[] = []): {add: string[]; drop: string[]} {
  const normalize = (caps: string[]) => {
    const set = new Set(
      caps.map((cap) => {
        const name = cap.trim().toUpperCase()
        return name === 'ALL' || name.startsWith('CAP_') ? name : `CAP_${name}`
      }),
    )
    return set.has('ALL') ? new Set(['ALL']) : set
  }
  const adds = normalize(add)
  const drops = normalize(drop)
  for (const cap of [...drops]) {
    if (adds.has(cap)) {
      adds.delete(cap)
      drops.delete(cap)
    }
  }
  const sorted = (set: Set<string>) => [...set].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  return {add: sorted(adds), drop: sorted(drops)}
}

/** float32 cpus x 1e9 truncated to int64, as Go computes NanoCPUs. */
function nanoCpus(cpus: number): number {
  return Math.trunc(Math.fround(Math.fround(cpus) * 1e9))
}

/** The labels Compose puts on the service's containers (besides the service's own `labels:`). */
export function composeContainerLabels(
  service: NormalizedService,
  context: Omit<ComposeContainerContext, 'extraLabels'>,
  hash: string,
): Labels {
  const dependencies = Object.entries(service.depends_on ?? {})
    // Compose walks a Go map here, so its order varies from run to run; sorted is one of its orders.
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, dependency]) => `${name}:${dependency.condition}:${dependency.restart ?? false}`)
  return {
    ...(service.labels ?? {}),
    [COMPOSE_LABELS.project]: context.project.name,
    [COMPOSE_LABELS.service]: service.name,
    [COMPOSE_LABELS.version]: COMPOSE_VERSION,
    [COMPOSE_LABELS.workingDir]: context.project.workingDir,
    [COMPOSE_LABELS.configFiles]: context.configFile,
    [COMPOSE_LABELS.oneoff]: 'False',
    [COMPOSE_LABELS.image]: context.imageId,
    [COMPOSE_LABELS.configHash]: hash,
    [COMPOSE_LABELS.number]: String(context.number),
    [COMPOSE_LABELS.dependsOn]: dependencies.join(','),
  }
}

/** What `docker compose up` would create for replica `number` of `service`. */
export function composeContainer(service: NormalizedService, context: ComposeContainerContext): ComposeContainer {
  for (const key of Object.keys(service)) if (!HANDLED.has(key)) unsupported(service.name, key)
  if (service.network_mode) unsupported(service.name, 'network_mode')
  const name = composeContainerName(context.project.name, service, context.number)
  const hash = composeServiceHash(service)
  const labels = {...composeContainerLabels(service, context, hash), ...(context.extraLabels ?? {})}
  const ports = service.ports ?? []
  const exposed: Record<string, object> = {}
  for (const port of service.expose ?? []) exposed[port.includes('/') ? port : `${port}/tcp`] = {}
  const bindings: Record<string, Array<{HostIp: string; HostPort: string}>> = {}
  for (const port of ports) {
    const key = `${port.target}/${port.protocol}`
    exposed[key] = {}
    ;(bindings[key] ??= []).push({HostIp: port.host_ip ?? '', HostPort: port.published ?? ''})
  }

  const check = service.healthcheck
  const {binds, mounts} = containerMounts(service, context.project)
  const tmpfs = Object.fromEntries(
    (service.tmpfs ?? []).map((entry) => {
      const at = entry.indexOf(':')
      return at === -1 ? [entry, ''] : [entry.slice(0, at), entry.slice(at + 1)]
    }),
  )
  const limits = service.deploy?.resources.limits
  const reservations = service.deploy?.resources.reservations
  const memory = limits?.memory || service.mem_limit
  const cpus = limits?.cpus || service.cpus
  const pids = limits?.pids && limits.pids > 0 ? limits.pids : service.pids_limit
  const networks = networksByPriority(service)
  const networkName = (key: string): string => {
    const network: NormalizedNetwork | undefined = context.project.networks[key]
    if (!network) unsupported(service.name, `networks.${key} (no top-level network of that name)`)
    return network.name
  }

  const primary = networks[0]
  const capabilities = effectiveCapabilities(service.cap_add, service.cap_drop)
  const hostConfig: Docker.HostConfig = {
    Binds: binds,
    ...(mounts.length > 0 ? {Mounts: mounts} : {}),
    ...(capabilities.add.length > 0 ? {CapAdd: capabilities.add} : {}),
    ...(capabilities.drop.length > 0 ? {CapDrop: capabilities.drop} : {}),
    NetworkMode: primary ? networkName(primary) : 'none',
    ...(service.init !== undefined ? {Init: service.init} : {}),
    ...(service.ipc ? {IpcMode: service.ipc} : {}),
    ...(service.pid ? {PidMode: service.pid} : {}),
    ...(service.userns_mode ? {UsernsMode: service.userns_mode} : {}),
    ReadonlyRootfs: service.read_only ?? false,
    RestartPolicy: restartPolicy(service),
    ...(service.shm_size ? {ShmSize: service.shm_size} : {}),
    ...(service.sysctls ? {Sysctls: service.sysctls} : {}),
    PortBindings: bindings,
    ...(memory ? {Memory: memory} : {}),
    ...(service.memswap_limit ? {MemorySwap: service.memswap_limit} : {}),
    ...(reservations?.memory || service.mem_reservation
      ? {MemoryReservation: reservations?.memory || service.mem_reservation}
      : {}),
    ...(cpus ? {NanoCpus: nanoCpus(cpus)} : {}),
    ...(service.cpu_shares ? {CpuShares: service.cpu_shares} : {}),
    ...(service.cpu_period ? {CpuPeriod: service.cpu_period} : {}),
    ...(service.cpu_quota ? {CpuQuota: service.cpu_quota} : {}),
    ...(service.cpuset ? {CpusetCpus: service.cpuset} : {}),
    ...(pids ? {PidsLimit: pids} : {}),
    OomKillDisable: service.oom_kill_disable ?? false,
    ...(service.ulimits
      ? {
          Ulimits: Object.entries(service.ulimits).map(([limit, value]) => ({
            Name: limit,
            Soft: value.soft || value.single || 0,
            Hard: value.hard || value.single || 0,
          })),
        }
      : {}),
    ...(service.logging
      ? {LogConfig: {Type: service.logging.driver ?? '', Config: service.logging.options ?? {}}}
      : {}),
    ...(service.security_opt ? {SecurityOpt: service.security_opt} : {}),
    ...(service.dns ? {Dns: service.dns} : {}),
    ...(service.dns_search ? {DnsSearch: service.dns_search} : {}),
    ...(service.dns_opt ? {DnsOptions: service.dns_opt} : {}),
    ...(service.group_add ? {GroupAdd: service.group_add} : {}),
    ...(service.privileged ? {Privileged: true} : {}),
    ...(service.oom_score_adj ? {OomScoreAdj: service.oom_score_adj} : {}),
    ...(Object.keys(tmpfs).length > 0 ? {Tmpfs: tmpfs} : {}),
  }

  const options: Docker.ContainerCreateOptions = {
    name,
    ...(service.hostname ? {Hostname: service.hostname} : {}),
    ...(service.domainname ? {Domainname: service.domainname} : {}),
    ...(service.user ? {User: service.user} : {}),
    ...(Object.keys(exposed).length > 0 ? {ExposedPorts: exposed} : {}),
    Tty: service.tty ?? false,
    OpenStdin: service.stdin_open ?? false,
    StdinOnce: false,
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    ...(service.command ? {Cmd: service.command} : {}),
    Image: service.image ?? `${context.project.name}-${service.name}`,
    ...(service.working_dir ? {WorkingDir: service.working_dir} : {}),
    ...(service.entrypoint ? {Entrypoint: service.entrypoint} : {}),
    Labels: labels,
    ...(service.stop_signal ? {StopSignal: service.stop_signal} : {}),
    Env: Object.entries(service.environment ?? {}).map(([key, value]) => (value === null ? key : `${key}=${value}`)),
    ...(check
      ? {
          Healthcheck: {
            Test: check.disable ? ['NONE'] : (check.test ?? []),
            Interval: check.interval ?? 0,
            Timeout: check.timeout ?? 0,
            StartPeriod: check.start_period ?? 0,
            Retries: check.retries ?? 0,
          },
        }
      : {}),
    ...(service.stop_grace_period !== undefined
      ? {StopTimeout: Math.trunc(service.stop_grace_period / 1_000_000_000)}
      : {}),
    HostConfig: hostConfig,
    ...(primary
      ? {NetworkingConfig: {EndpointsConfig: {[networkName(primary)]: endpoint(service, primary, name)}}}
      : {}),
  }
  if (check?.start_interval !== undefined) unsupported(service.name, 'healthcheck.start_interval (needs API 1.44)')

  const extraNetworks = networks
    .slice(1)
    .map((key) => ({name: networkName(key), endpoint: endpoint(service, key, name)}))
  return {name, hash, options, extraNetworks}
}
