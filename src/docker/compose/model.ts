/**
 * Compose v2's model of a compose file, as far as create-gateway needs it: the normalized service
 * config (what `docker compose config --format json` prints for a service) and the config hash that
 * Compose v2 puts on every container in `com.docker.compose.config-hash`.
 *
 * Why a model of our own: `docker compose up` recreates any container whose hash label differs from
 * the hash it computes from the file. The hash is sha256 of Go's json.Marshal of compose-go's
 * ServiceConfig after the loader normalized it (short syntax expanded, defaults filled in, paths made
 * absolute, maps sorted, durations and byte sizes in Go's own formats), minus build, pull_policy,
 * scale, deploy.replicas, depends_on and profiles. To leave Compose's containers alone and have
 * Compose leave ours alone, `create-gateway up` must compute exactly that, from the same file.
 *
 * The model follows compose-go v2.9.1 (the one Compose v2.40 is built with). This file is the
 * canonical form, keyed by JSON name; around it:
 *   1. the loader, input forms -> the canonical form: project.ts (the whole file), service.ts,
 *      settings.ts (ports, deploy, healthcheck, ulimits), mounts.ts, networks.ts, on read.ts' scalars;
 *   2. go-json.ts, the canonical form -> the bytes Go's encoding/json writes, from go-structs.ts' table
 *      of Go struct fields in declaration order with their omitempty rules and custom marshalers;
 *      hash.ts hashes those bytes as Compose does;
 *   3. container.ts, the canonical form -> what `docker compose up` sends to the engine (with
 *      labels.ts, and the engine side of mounts.ts and networks.ts).
 * A key the model does not know is an error, not a silent difference: a new field in the generated
 * compose file then fails the unit tests until it is modelled here.
 */

// ---- the canonical form -------------------------------------------------------------------------

export interface Ulimit {
  single?: number
  soft?: number
  hard?: number
}

export interface NormalizedPort {
  mode: string
  host_ip?: string
  target: number
  published?: string
  protocol: string
  name?: string
  app_protocol?: string
}

export interface NormalizedVolume {
  type: 'bind' | 'volume' | 'tmpfs'
  source?: string
  target: string
  read_only?: boolean
  consistency?: string
  bind?: {selinux?: string; propagation?: string; create_host_path?: boolean; recursive?: string}
  volume?: {labels?: Record<string, string>; nocopy?: boolean; subpath?: string}
  tmpfs?: {size?: number; mode?: number}
}

export interface NormalizedFileReference {
  source: string
  target?: string
  uid?: string
  gid?: string
  mode?: number
}

export interface NormalizedResource {
  cpus?: number
  memory?: number
  pids?: number
}

/**
 * A service after compose-go's loader, keyed by JSON name. Durations are in nanoseconds, byte sizes
 * in bytes. Only the fields create-gateway's compose files use are typed; `goJson` knows them all.
 */
export interface NormalizedService {
  name: string
  image?: string
  build?: {context: string; dockerfile: string; [key: string]: unknown}
  command?: string[]
  entrypoint?: string[]
  environment?: Record<string, string | null>
  healthcheck?: {
    test?: string[]
    timeout?: number
    interval?: number
    retries?: number
    start_period?: number
    start_interval?: number
    disable?: boolean
  }
  ports?: NormalizedPort[]
  expose?: string[]
  volumes?: NormalizedVolume[]
  secrets?: NormalizedFileReference[]
  depends_on?: Record<string, {condition: string; restart?: boolean; required: boolean}>
  deploy?: {
    mode?: string
    replicas?: number
    labels?: Record<string, string>
    resources: {limits?: NormalizedResource; reservations?: NormalizedResource}
    restart_policy?: {condition?: string; delay?: number; max_attempts?: number; window?: number}
    placement: {constraints?: string[]; max_replicas_per_node?: number}
    endpoint_mode?: string
  }
  networks?: Record<string, {aliases?: string[]; ipv4_address?: string; priority?: number} | null>
  network_mode?: string
  logging?: {driver?: string; options?: Record<string, string>}
  labels?: Record<string, string>
  restart?: string
  stop_signal?: string
  stop_grace_period?: number
  user?: string
  working_dir?: string
  hostname?: string
  domainname?: string
  read_only?: boolean
  privileged?: boolean
  init?: boolean
  tty?: boolean
  stdin_open?: boolean
  tmpfs?: string[]
  cap_add?: string[]
  cap_drop?: string[]
  security_opt?: string[]
  group_add?: string[]
  dns?: string[]
  dns_search?: string[]
  dns_opt?: string[]
  sysctls?: Record<string, string>
  ulimits?: Record<string, Ulimit>
  mem_limit?: number
  mem_reservation?: number
  memswap_limit?: number
  shm_size?: number
  cpus?: number
  cpu_shares?: number
  cpu_period?: number
  cpu_quota?: number
  cpuset?: string
  pids_limit?: number
  oom_score_adj?: number
  oom_kill_disable?: boolean
  ipc?: string
  pid?: string
  userns_mode?: string
  profiles?: string[]
  pull_policy?: string
  scale?: number
  container_name?: string
  platform?: string
  runtime?: string
}

export interface NormalizedNetwork {
  name: string
  driver?: string
  driver_opts?: Record<string, string>
  ipam: {driver?: string; config?: Array<{subnet?: string; gateway?: string; ip_range?: string}>}
  external?: boolean
  internal?: boolean
  attachable?: boolean
  labels?: Record<string, string>
  enable_ipv4?: boolean
  enable_ipv6?: boolean
}

export interface NormalizedSecret {
  name: string
  file?: string
  environment?: string
  external?: boolean
  labels?: Record<string, string>
}

export interface NormalizedProject {
  name: string
  workingDir: string
  services: Record<string, NormalizedService>
  networks: Record<string, NormalizedNetwork>
  secrets: Record<string, NormalizedSecret>
}

// ---- what the loader needs besides the file --------------------------------------------------------

export interface NormalizeOptions {
  /** The compose project name (`COMPOSE_PROJECT_NAME`, or `name:`). */
  project: string
  /** Absolute project directory: where the compose file is, which relative paths start from. */
  dir: string
  /** Resolves `${VAR}` in string values (Compose interpolates the whole file); default: no `$` allowed. */
  interpolate?: (value: string, where: string) => string
  /** Home directory for `~` in paths. */
  home?: string
}
