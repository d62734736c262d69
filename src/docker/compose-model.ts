import {createHash} from 'node:crypto'
import {posix} from 'node:path'

import {UsageError} from '../errors.js'

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
 * The model follows compose-go v2.9.1 (the one Compose v2.40 is built with). Two halves:
 *   1. normalizeService / normalizeNetwork: input forms -> the canonical form, keyed by JSON name;
 *   2. goJson: the canonical form -> the bytes Go's encoding/json writes, from a table of Go struct
 *      fields in declaration order with their omitempty rules and custom marshalers.
 * A key the model does not know is an error, not a silent difference: a new field in the generated
 * compose file then fails the unit tests until it is modelled here.
 */

// ---- Go's encoding/json ----------------------------------------------------------------------------

/** A Go type, as far as encoding/json cares. */
type GoType =
  | 'string'
  | 'bool'
  | 'int'
  /** float32: Go prints the shortest decimal that reads back as the same float32. */
  | 'float32'
  /** compose-go's Duration: `time.Duration.String()` in quotes; the value is in nanoseconds. */
  | 'duration'
  /** compose-go's UnitBytes: the byte count as a decimal string in quotes. */
  | 'bytes'
  /** compose-go's FileMode: octal with a leading 0, in quotes. */
  | 'fileMode'
  /** compose-go's UlimitsConfig: a bare number when `single` is set, else the struct. */
  | 'ulimit'
  | {slice: GoType}
  | {map: GoType}
  /** A pointer: omitempty only leaves out nil (undefined here), never a zero value. */
  | {ptr: GoType}
  | {struct: StructType}

/** [JSON name, type, omitempty] in the struct's declaration order (fields with json:"-" left out). */
type StructType = ReadonlyArray<readonly [string, GoType, boolean?]>

const O = true // omitempty

const durationPtr: GoType = {ptr: 'duration'}
const strings: GoType = {slice: 'string'}
const stringMap: GoType = {map: 'string'}

const HEALTHCHECK: StructType = [
  ['test', strings, O],
  ['timeout', durationPtr, O],
  ['interval', durationPtr, O],
  ['retries', {ptr: 'int'}, O],
  ['start_period', durationPtr, O],
  ['start_interval', durationPtr, O],
  ['disable', 'bool', O],
]

const RESOURCE: StructType = [
  ['cpus', 'float32', O],
  ['memory', 'bytes', O],
  ['pids', 'int', O],
  ['devices', {slice: {map: 'string'}}, O],
  ['generic_resources', {slice: {map: 'string'}}, O],
]

const UPDATE_CONFIG: StructType = [
  ['parallelism', {ptr: 'int'}, O],
  ['delay', 'duration', O],
  ['failure_action', 'string', O],
  ['monitor', 'duration', O],
  ['max_failure_ratio', 'float32', O],
  ['order', 'string', O],
]

const DEPLOY: StructType = [
  ['mode', 'string', O],
  ['replicas', {ptr: 'int'}, O],
  ['labels', stringMap, O],
  ['update_config', {ptr: {struct: UPDATE_CONFIG}}, O],
  ['rollback_config', {ptr: {struct: UPDATE_CONFIG}}, O],
  // Struct values, not pointers: Go's omitempty never leaves them out (`"resources":{}`).
  [
    'resources',
    {
      struct: [
        ['limits', {ptr: {struct: RESOURCE}}, O],
        ['reservations', {ptr: {struct: RESOURCE}}, O],
      ],
    },
    O,
  ],
  [
    'restart_policy',
    {
      ptr: {
        struct: [
          ['condition', 'string', O],
          ['delay', durationPtr, O],
          ['max_attempts', {ptr: 'int'}, O],
          ['window', durationPtr, O],
        ],
      },
    },
    O,
  ],
  [
    'placement',
    {
      struct: [
        ['constraints', strings, O],
        ['preferences', {slice: {struct: [['spread', 'string', O]]}}, O],
        ['max_replicas_per_node', 'int', O],
      ],
    },
    O,
  ],
  ['endpoint_mode', 'string', O],
]

const FILE_REFERENCE: StructType = [
  ['source', 'string', O],
  ['target', 'string', O],
  ['uid', 'string', O],
  ['gid', 'string', O],
  ['mode', {ptr: 'fileMode'}, O],
]

const SERVICE_NETWORK: StructType = [
  ['aliases', strings, O],
  ['driver_opts', stringMap, O],
  ['gw_priority', 'int', O],
  ['interface_name', 'string', O],
  ['ipv4_address', 'string', O],
  ['ipv6_address', 'string', O],
  ['link_local_ips', strings, O],
  ['mac_address', 'string', O],
  ['priority', 'int', O],
]

const PORT: StructType = [
  ['name', 'string', O],
  ['mode', 'string', O],
  ['host_ip', 'string', O],
  ['target', 'int', O],
  ['published', 'string', O],
  ['protocol', 'string', O],
  ['app_protocol', 'string', O],
]

const VOLUME: StructType = [
  ['type', 'string', O],
  ['source', 'string', O],
  ['target', 'string', O],
  ['read_only', 'bool', O],
  ['consistency', 'string', O],
  [
    'bind',
    {
      ptr: {
        struct: [
          ['selinux', 'string', O],
          ['propagation', 'string', O],
          ['create_host_path', 'bool', O],
          ['recursive', 'string', O],
        ],
      },
    },
    O,
  ],
  [
    'volume',
    {
      ptr: {
        struct: [
          ['labels', stringMap, O],
          ['nocopy', 'bool', O],
          ['subpath', 'string', O],
        ],
      },
    },
    O,
  ],
  [
    'tmpfs',
    {
      ptr: {
        struct: [
          ['size', 'bytes', O],
          ['mode', 'int', O],
        ],
      },
    },
    O,
  ],
  ['image', {ptr: {struct: [['subpath', 'string', O]]}}, O],
]

const BUILD: StructType = [
  ['context', 'string', O],
  ['dockerfile', 'string', O],
  ['dockerfile_inline', 'string', O],
  ['entitlements', strings, O],
  ['args', {map: {ptr: 'string'}}, O],
  ['provenance', 'string', O],
  ['sbom', 'string', O],
  ['ssh', {slice: {map: 'string'}}, O],
  ['labels', stringMap, O],
  ['cache_from', strings, O],
  ['cache_to', strings, O],
  ['no_cache', 'bool', O],
  ['additional_contexts', stringMap, O],
  ['pull', 'bool', O],
  ['extra_hosts', {map: strings}, O],
  ['isolation', 'string', O],
  ['network', 'string', O],
  ['target', 'string', O],
  ['secrets', {slice: {struct: FILE_REFERENCE}}, O],
  ['shm_size', 'bytes', O],
  ['tags', strings, O],
  ['ulimits', {map: {ptr: 'ulimit'}}, O],
  ['platforms', strings, O],
  ['privileged', 'bool', O],
]

const LOGGING: StructType = [
  ['driver', 'string', O],
  ['options', stringMap, O],
]

/** compose-go's ServiceConfig, field for field, in declaration order. */
const SERVICE: StructType = [
  ['profiles', strings, O],
  ['annotations', stringMap, O],
  ['attach', {ptr: 'bool'}, O],
  ['build', {ptr: {struct: BUILD}}, O],
  ['develop', {ptr: {map: 'string'}}, O],
  ['blkio_config', {ptr: {map: 'string'}}, O],
  ['cap_add', strings, O],
  ['cap_drop', strings, O],
  ['cgroup_parent', 'string', O],
  ['cgroup', 'string', O],
  ['cpu_count', 'int', O],
  ['cpu_percent', 'float32', O],
  ['cpu_period', 'int', O],
  ['cpu_quota', 'int', O],
  ['cpu_rt_period', 'int', O],
  ['cpu_rt_runtime', 'int', O],
  ['cpus', 'float32', O],
  ['cpuset', 'string', O],
  ['cpu_shares', 'int', O],
  // ShellCommand has no omitempty in JSON: an unset command is `"command":null`.
  ['command', strings],
  ['configs', {slice: {struct: FILE_REFERENCE}}, O],
  ['container_name', 'string', O],
  ['credential_spec', {ptr: {map: 'string'}}, O],
  [
    'depends_on',
    {
      map: {
        struct: [
          ['condition', 'string', O],
          ['restart', 'bool', O],
          ['required', 'bool'],
        ],
      },
    },
    O,
  ],
  ['deploy', {ptr: {struct: DEPLOY}}, O],
  ['device_cgroup_rules', strings, O],
  ['devices', {slice: {struct: FILE_REFERENCE}}, O],
  ['dns', strings, O],
  ['dns_opt', strings, O],
  ['dns_search', strings, O],
  ['dockerfile', 'string', O],
  ['domainname', 'string', O],
  ['entrypoint', strings],
  ['provider', {ptr: {map: 'string'}}, O],
  ['environment', {map: {ptr: 'string'}}, O],
  ['env_file', {slice: {map: 'string'}}, O],
  ['expose', strings, O],
  ['extends', {ptr: {map: 'string'}}, O],
  ['external_links', strings, O],
  ['extra_hosts', {map: strings}, O],
  ['group_add', strings, O],
  ['gpus', {slice: {map: 'string'}}, O],
  ['hostname', 'string', O],
  ['healthcheck', {ptr: {struct: HEALTHCHECK}}, O],
  ['image', 'string', O],
  ['init', {ptr: 'bool'}, O],
  ['ipc', 'string', O],
  ['isolation', 'string', O],
  ['labels', stringMap, O],
  ['label_file', strings, O],
  ['links', strings, O],
  ['logging', {ptr: {struct: LOGGING}}, O],
  ['log_driver', 'string', O],
  ['log_opt', stringMap, O],
  ['mem_limit', 'bytes', O],
  ['mem_reservation', 'bytes', O],
  ['memswap_limit', 'bytes', O],
  ['mem_swappiness', 'bytes', O],
  ['mac_address', 'string', O],
  ['models', {map: {ptr: {map: 'string'}}}, O],
  ['net', 'string', O],
  ['network_mode', 'string', O],
  ['networks', {map: {ptr: {struct: SERVICE_NETWORK}}}, O],
  ['oom_kill_disable', 'bool', O],
  ['oom_score_adj', 'int', O],
  ['pid', 'string', O],
  ['pids_limit', 'int', O],
  ['platform', 'string', O],
  ['ports', {slice: {struct: PORT}}, O],
  ['privileged', 'bool', O],
  ['pull_policy', 'string', O],
  ['read_only', 'bool', O],
  ['restart', 'string', O],
  ['runtime', 'string', O],
  ['scale', {ptr: 'int'}, O],
  ['secrets', {slice: {struct: FILE_REFERENCE}}, O],
  ['security_opt', strings, O],
  ['shm_size', 'bytes', O],
  ['stdin_open', 'bool', O],
  ['stop_grace_period', durationPtr, O],
  ['stop_signal', 'string', O],
  ['storage_opt', stringMap, O],
  ['sysctls', stringMap, O],
  ['tmpfs', strings, O],
  ['tty', 'bool', O],
  ['ulimits', {map: {ptr: 'ulimit'}}, O],
  ['use_api_socket', 'bool', O],
  ['user', 'string', O],
  ['userns_mode', 'string', O],
  ['uts', 'string', O],
  ['volume_driver', 'string', O],
  ['volumes', {slice: {struct: VOLUME}}, O],
  ['volumes_from', strings, O],
  ['working_dir', 'string', O],
  ['post_start', {slice: {map: 'string'}}, O],
  ['pre_stop', {slice: {map: 'string'}}, O],
]

/** compose-go's NetworkConfig. */
const NETWORK: StructType = [
  ['name', 'string', O],
  ['driver', 'string', O],
  ['driver_opts', stringMap, O],
  [
    'ipam',
    {
      struct: [
        ['driver', 'string', O],
        [
          'config',
          {
            slice: {
              ptr: {
                struct: [
                  ['subnet', 'string', O],
                  ['gateway', 'string', O],
                  ['ip_range', 'string', O],
                  ['aux_addresses', stringMap, O],
                ],
              },
            },
          },
          O,
        ],
      ],
    },
    O,
  ],
  ['external', 'bool', O],
  ['internal', 'bool', O],
  ['attachable', 'bool', O],
  ['labels', stringMap, O],
  ['enable_ipv4', {ptr: 'bool'}, O],
  ['enable_ipv6', {ptr: 'bool'}, O],
]

/** Go's encoding/json escapes these for HTML safety by default; Compose hashes with that default. */
function goString(value: string): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}

/** strconv.FormatFloat(f, 'f' or 'e', -1, 32), the way encoding/json writes a float32. */
export function goFloat32(value: number): string {
  const target = Math.fround(value)
  if (target === 0) return '0'
  let shortest = String(target)
  for (let precision = 1; precision <= 9; precision++) {
    const candidate = Number(target.toPrecision(precision))
    if (Math.fround(candidate) === target) {
      shortest = String(candidate)
      break
    }
  }

  const abs = Math.abs(target)
  if (abs >= 1e-6 && abs < 1e21) {
    // 'f' format: JavaScript may have chosen exponent notation for small magnitudes.
    return shortest.includes('e')
      ? Number(shortest)
          .toFixed(20)
          .replace(/\.?0+$/, '')
      : shortest
  }

  // 'e' format with a two-digit exponent at least, as Go writes it (1e-07, 1e+21).
  const [mantissa, exponent] = Number(shortest).toExponential().split('e') as [string, string]
  const sign = exponent.startsWith('-') ? '-' : '+'
  const digits = exponent.replace(/^[-+]/, '').padStart(2, '0')
  return `${mantissa}e${sign}${digits}`
}

/** time.Duration.String(): `1h2m3.5s`, `500ms`, `0s`. */
export function goDuration(nanoseconds: number): string {
  if (!Number.isSafeInteger(nanoseconds)) throw new Error(`duration out of range: ${nanoseconds}`)
  if (nanoseconds === 0) return '0s'
  const negative = nanoseconds < 0
  const ns = Math.abs(nanoseconds)
  let text: string
  if (ns < 1_000_000_000) {
    // Below a second: the largest unit that keeps the integer part non-zero.
    const [unit, size] = ns < 1_000 ? ['ns', 1] : ns < 1_000_000 ? ['µs', 1_000] : ['ms', 1_000_000]
    text = `${fraction(ns, size)}${unit}`
  } else {
    const hours = Math.floor(ns / 3_600_000_000_000)
    const minutes = Math.floor((ns % 3_600_000_000_000) / 60_000_000_000)
    const seconds = fraction(ns % 60_000_000_000, 1_000_000_000)
    text = hours > 0 ? `${hours}h${minutes}m${seconds}s` : minutes > 0 ? `${minutes}m${seconds}s` : `${seconds}s`
  }

  return negative ? `-${text}` : text
}

/** `value / size` with the fraction's trailing zeros dropped, as Go's fmtFrac does. */
function fraction(value: number, size: number): string {
  const whole = Math.floor(value / size)
  const rest = value % size
  if (rest === 0) return String(whole)
  const digits = String(size).length - 1
  return `${whole}.${String(rest).padStart(digits, '0').replace(/0+$/, '')}`
}

function isEmpty(value: unknown, type: GoType): boolean {
  if (value === undefined || value === null) return true
  if (typeof type === 'object' && 'ptr' in type) return false
  if (typeof type === 'object' && 'struct' in type) return false
  if (typeof type === 'object' && 'slice' in type) return (value as unknown[]).length === 0
  if (typeof type === 'object' && 'map' in type) return Object.keys(value as object).length === 0
  if (type === 'ulimit') return false
  return value === '' || value === false || value === 0
}

/** The JSON Go writes for `value` of Go type `type`; undefined stands for Go's zero value / nil. */
export function goJson(value: unknown, type: GoType): string {
  if (typeof type === 'object') {
    if ('ptr' in type) return value === undefined || value === null ? 'null' : goJson(value, type.ptr)
    if ('slice' in type) {
      if (value === undefined || value === null) return 'null'
      return `[${(value as unknown[]).map((item) => goJson(item, type.slice)).join(',')}]`
    }

    if ('map' in type) {
      if (value === undefined || value === null) return 'null'
      // Go writes map keys sorted (byte order of the UTF-8 keys).
      const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
        Buffer.compare(Buffer.from(a), Buffer.from(b)),
      )
      return `{${entries.map(([key, item]) => `${goString(key)}:${goJson(item, type.map)}`).join(',')}}`
    }

    const object = (value ?? {}) as Record<string, unknown>
    const parts: string[] = []
    for (const [key, fieldType, omitempty] of type.struct) {
      const field = object[key]
      if (omitempty && isEmpty(field, fieldType)) continue
      parts.push(`${goString(key)}:${goJson(field, fieldType)}`)
    }

    return `{${parts.join(',')}}`
  }

  switch (type) {
    case 'string':
      return goString((value as string | undefined) ?? '')
    case 'bool':
      return value ? 'true' : 'false'
    case 'int':
      return String((value as number | undefined) ?? 0)
    case 'float32':
      return goFloat32((value as number | undefined) ?? 0)
    case 'duration':
      return goString(goDuration((value as number | undefined) ?? 0))
    case 'bytes':
      return `"${(value as number | undefined) ?? 0}"`
    case 'fileMode':
      return `"0${((value as number | undefined) ?? 0).toString(8)}"`
    case 'ulimit': {
      const limit = value as Ulimit
      if (limit.single) return String(limit.single)
      return goJson(limit, {
        struct: [
          ['single', 'int', O],
          ['soft', 'int', O],
          ['hard', 'int', O],
        ],
      })
    }
  }
}

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

// ---- input forms -> canonical form ------------------------------------------------------------------

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

class ModelError extends UsageError {}

function fail(where: string, message: string): never {
  throw new ModelError(`${where}: ${message}`, {
    hint: 'create-gateway computes the Compose v2 config hash itself (src/docker/compose-model.ts); this part of the compose file is not modelled there yet.',
  })
}

type Raw = Record<string, unknown>

function isRecord(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function text(value: unknown, where: string): string {
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  return fail(where, `expected a string, got ${JSON.stringify(value)}`)
}

function integer(value: unknown, where: string): number {
  const number = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value
  if (typeof number === 'number' && Number.isSafeInteger(number)) return number
  return fail(where, `expected an integer, got ${JSON.stringify(value)}`)
}

function float(value: unknown, where: string): number {
  const number = typeof value === 'string' ? Number(value) : value
  if (typeof number === 'number' && Number.isFinite(number)) return number
  return fail(where, `expected a number, got ${JSON.stringify(value)}`)
}

function boolean(value: unknown, where: string): boolean {
  if (typeof value === 'boolean') return value
  if (value === 'true' || value === 'false') return value === 'true'
  return fail(where, `expected true or false, got ${JSON.stringify(value)}`)
}

/** A list of strings; a lone string is a list of one (compose-go's StringList). */
function stringList(value: unknown, where: string, allowString = true): string[] {
  if (allowString && typeof value === 'string') return [value]
  if (!Array.isArray(value)) return fail(where, `expected a list, got ${JSON.stringify(value)}`)
  return value.map((item, index) => text(item, `${where}[${index}]`))
}

/** `KEY: value` or `- KEY=value` (compose-go's Mapping); values become strings. */
function mapping(value: unknown, where: string): Record<string, string> {
  if (Array.isArray(value)) {
    return Object.fromEntries(
      value.map((item, index) => {
        const entry = text(item, `${where}[${index}]`)
        const at = entry.indexOf('=')
        return at === -1 ? [entry, ''] : [entry.slice(0, at), entry.slice(at + 1)]
      }),
    )
  }

  if (!isRecord(value)) return fail(where, `expected a mapping, got ${JSON.stringify(value)}`)
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [key, item === null ? '' : text(item, `${where}.${key}`)]),
  )
}

/** str2duration units, as compose-go parses `5s`, `1m30s`, `1h`, `2d`. */
const DURATION_UNITS: Record<string, number> = {
  ns: 1,
  us: 1_000,
  µs: 1_000,
  μs: 1_000,
  ms: 1_000_000,
  s: 1_000_000_000,
  m: 60_000_000_000,
  h: 3_600_000_000_000,
  d: 86_400_000_000_000,
  w: 604_800_000_000_000,
}

export function parseDuration(value: unknown, where: string): number {
  const input = typeof value === 'number' ? `${value}s` : text(value, where)
  if (input === '0') return 0
  const pattern = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d|w)/gy
  let total = 0
  let consumed = 0
  for (const match of input.matchAll(pattern)) {
    total += Number(match[1]) * DURATION_UNITS[match[2]!]!
    consumed = (match.index ?? 0) + match[0].length
  }

  if (consumed !== input.length || input.length === 0) fail(where, `not a duration: ${JSON.stringify(value)}`)
  return Math.round(total)
}

/** go-units RAMInBytes: `256m`, `1g`, `512MiB` (binary multiples), or a plain byte count. */
export function parseBytes(value: unknown, where: string): number {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*$/i.exec(text(value, where))
  if (!match) return fail(where, `not a byte size: ${JSON.stringify(value)}`)
  const power = ['', 'k', 'm', 'g', 't', 'p'].indexOf(match[2]!.toLowerCase())
  return Math.trunc(Number(match[1]) * 1024 ** power)
}

/** The short port syntax: `[IP:][HOST:]CONTAINER[/PROTOCOL]`, IPv6 hosts in brackets. */
function parsePort(spec: string, where: string): NormalizedPort {
  const [body, protocol = 'tcp'] = spec.split('/') as [string, string?]
  let hostIp = ''
  let rest = body
  const bracketed = /^\[([^\]]+)\]:(.*)$/.exec(body)
  if (bracketed) {
    hostIp = bracketed[1]!
    rest = bracketed[2]!
  } else {
    const parts = body.split(':')
    if (parts.length === 3) {
      hostIp = parts[0]!
      rest = `${parts[1]}:${parts[2]}`
    } else if (parts.length > 3) {
      fail(where, `IPv6 host addresses need brackets: ${spec}`)
    }
  }

  const [published, target] = rest.includes(':') ? (rest.split(':') as [string, string]) : ['', rest]
  if (!/^\d+$/.test(target) || !/^\d*$/.test(published))
    fail(where, `port ranges and names are not modelled: ${JSON.stringify(spec)}`)
  return {
    mode: 'ingress',
    ...(hostIp ? {host_ip: hostIp} : {}),
    target: Number(target),
    ...(published ? {published} : {}),
    protocol: protocol.toLowerCase(),
  }
}

/** A port in either syntax; the long one gets compose-go's defaults (tcp, ingress). */
function normalizePort(value: unknown, where: string): NormalizedPort {
  if (typeof value === 'string' || typeof value === 'number') return parsePort(String(value), where)
  if (!isRecord(value)) return fail(where, `expected a port, got ${JSON.stringify(value)}`)
  const port: NormalizedPort = {mode: 'ingress', target: 0, protocol: 'tcp'}
  for (const [key, item] of Object.entries(value)) {
    const at = `${where}.${key}`
    if (key === 'target') port.target = integer(item, at)
    else if (key === 'published') port.published = text(item, at)
    else if (key === 'host_ip' || key === 'mode' || key === 'protocol' || key === 'name' || key === 'app_protocol')
      port[key] = text(item, at)
    else fail(at, 'not modelled')
  }

  return port
}

function expandHome(path: string, home: string | undefined): string {
  if (path === '~' || path.startsWith('~/')) {
    if (!home) throw new Error('no home directory to expand ~ in a path')
    return posix.join(home, path.slice(1))
  }

  return path
}

/** compose-go's maybeUnixPath: relative paths are joined to the project directory (and cleaned). */
function absolutePath(path: string, options: NormalizeOptions): string {
  const expanded = expandHome(path, options.home)
  return posix.isAbsolute(expanded) ? expanded : posix.join(options.dir, expanded)
}

const BIND_PROPAGATIONS = new Set(['rprivate', 'private', 'rshared', 'shared', 'rslave', 'slave'])

/** format.ParseVolume: `SOURCE:TARGET[:OPTIONS]`, a bind when the source looks like a path. */
function parseVolume(spec: string, where: string): NormalizedVolume {
  const parts = spec.split(':')
  if (parts.some((part) => part === '')) fail(where, `empty section between colons: ${spec}`)
  if (parts.length === 1) return {type: 'volume', target: parts[0]!, volume: {}}
  if (parts.length > 3) fail(where, `too many colons: ${spec}`)
  const [source, target, options] = parts as [string, string, string?]
  const volume: NormalizedVolume = {type: 'volume', source, target}
  for (const option of options?.split(',') ?? []) {
    if (option === 'ro') volume.read_only = true
    else if (option === 'rw') volume.read_only = false
    else if (option === 'nocopy') volume.volume = {nocopy: true}
    else if (BIND_PROPAGATIONS.has(option)) volume.bind = {...volume.bind, propagation: option}
    else if (option === 'z' || option === 'Z') volume.bind = {...volume.bind, selinux: option}
  }

  if (/^[./~]/.test(source)) {
    volume.type = 'bind'
    // Short syntax keeps docker-compose v1's behaviour: a missing host path is created.
    volume.bind = {...volume.bind, create_host_path: true}
  } else {
    volume.volume ??= {}
  }

  if (!volume.read_only) delete volume.read_only
  return volume
}

function normalizeVolume(value: unknown, where: string, options: NormalizeOptions): NormalizedVolume {
  let volume: NormalizedVolume
  if (typeof value === 'string') {
    volume = parseVolume(value, where)
  } else if (isRecord(value)) {
    const known = new Set(['type', 'source', 'target', 'read_only', 'bind', 'volume', 'tmpfs', 'consistency'])
    for (const key of Object.keys(value)) if (!known.has(key)) fail(`${where}.${key}`, 'unknown volume key')
    const type = text(value.type, `${where}.type`)
    if (type !== 'bind' && type !== 'volume' && type !== 'tmpfs') fail(`${where}.type`, `type ${type} is not modelled`)
    volume = {type, target: text(value.target, `${where}.target`)}
    if (value.source !== undefined) volume.source = text(value.source, `${where}.source`)
    if (value.read_only !== undefined && boolean(value.read_only, `${where}.read_only`)) volume.read_only = true
    if (value.consistency !== undefined) volume.consistency = text(value.consistency, `${where}.consistency`)
    if (isRecord(value.bind)) {
      const bind = value.bind
      volume.bind = {}
      if (bind.selinux !== undefined) volume.bind.selinux = text(bind.selinux, `${where}.bind.selinux`)
      if (bind.propagation !== undefined) volume.bind.propagation = text(bind.propagation, `${where}.bind.propagation`)
      if (bind.create_host_path !== undefined)
        volume.bind.create_host_path = boolean(bind.create_host_path, `${where}.bind.create_host_path`)
      if (bind.recursive !== undefined) volume.bind.recursive = text(bind.recursive, `${where}.bind.recursive`)
    }

    if (isRecord(value.volume)) {
      const named = value.volume
      volume.volume = {}
      if (named.nocopy !== undefined) volume.volume.nocopy = boolean(named.nocopy, `${where}.volume.nocopy`)
      if (named.subpath !== undefined) volume.volume.subpath = text(named.subpath, `${where}.volume.subpath`)
      if (named.labels !== undefined) volume.volume.labels = mapping(named.labels, `${where}.volume.labels`)
    }

    if (isRecord(value.tmpfs)) {
      volume.tmpfs = {}
      if (value.tmpfs.size !== undefined) volume.tmpfs.size = parseBytes(value.tmpfs.size, `${where}.tmpfs.size`)
      if (value.tmpfs.mode !== undefined) volume.tmpfs.mode = integer(value.tmpfs.mode, `${where}.tmpfs.mode`)
    }
  } else {
    return fail(where, `expected a volume, got ${JSON.stringify(value)}`)
  }

  if (volume.type === 'bind') volume.source = absolutePath(volume.source ?? '', options)
  volume.target = posix.normalize(volume.target).replace(/(.)\/$/, '$1')
  return volume
}

function normalizeFileReference(value: unknown, where: string, directory: string): NormalizedFileReference {
  if (typeof value === 'string') return {source: value, target: `${directory}/${value}`}
  if (!isRecord(value)) return fail(where, `expected a name or a mapping, got ${JSON.stringify(value)}`)
  for (const key of Object.keys(value))
    if (!['source', 'target', 'uid', 'gid', 'mode'].includes(key)) fail(`${where}.${key}`, 'unknown key')
  const source = text(value.source, `${where}.source`)
  return {
    source,
    target: value.target === undefined ? `${directory}/${source}` : text(value.target, `${where}.target`),
    ...(value.uid !== undefined ? {uid: text(value.uid, `${where}.uid`)} : {}),
    ...(value.gid !== undefined ? {gid: text(value.gid, `${where}.gid`)} : {}),
    ...(value.mode !== undefined
      ? {mode: typeof value.mode === 'string' ? parseInt(value.mode, 8) : integer(value.mode, `${where}.mode`)}
      : {}),
  }
}

function normalizeResource(value: unknown, where: string): NormalizedResource {
  if (!isRecord(value)) return fail(where, 'expected a mapping')
  const resource: NormalizedResource = {}
  for (const [key, item] of Object.entries(value)) {
    if (key === 'cpus') resource.cpus = float(item, `${where}.cpus`)
    else if (key === 'memory') resource.memory = parseBytes(item, `${where}.memory`)
    else if (key === 'pids') resource.pids = integer(item, `${where}.pids`)
    else fail(`${where}.${key}`, 'not modelled')
  }

  return resource
}

function normalizeDeploy(value: unknown, where: string): NonNullable<NormalizedService['deploy']> {
  if (!isRecord(value)) return fail(where, 'expected a mapping')
  const deploy: NonNullable<NormalizedService['deploy']> = {resources: {}, placement: {}}
  for (const [key, item] of Object.entries(value)) {
    const at = `${where}.${key}`
    switch (key) {
      case 'mode':
      case 'endpoint_mode':
        deploy[key] = text(item, at)
        break
      case 'replicas':
        deploy.replicas = integer(item, at)
        break
      case 'labels':
        deploy.labels = mapping(item, at)
        break
      case 'resources':
        if (!isRecord(item)) fail(at, 'expected a mapping')
        for (const [kind, resource] of Object.entries(item)) {
          if (kind !== 'limits' && kind !== 'reservations') fail(`${at}.${kind}`, 'not modelled')
          deploy.resources[kind] = normalizeResource(resource, `${at}.${kind}`)
        }

        break
      case 'restart_policy': {
        if (!isRecord(item)) fail(at, 'expected a mapping')
        const policy: NonNullable<NonNullable<NormalizedService['deploy']>['restart_policy']> = {}
        for (const [field, setting] of Object.entries(item)) {
          if (field === 'condition') policy.condition = text(setting, `${at}.condition`)
          else if (field === 'delay' || field === 'window') policy[field] = parseDuration(setting, `${at}.${field}`)
          else if (field === 'max_attempts') policy.max_attempts = integer(setting, `${at}.max_attempts`)
          else fail(`${at}.${field}`, 'not modelled')
        }

        deploy.restart_policy = policy
        break
      }

      case 'placement':
        if (!isRecord(item)) fail(at, 'expected a mapping')
        for (const [field, setting] of Object.entries(item)) {
          if (field === 'constraints') deploy.placement.constraints = stringList(setting, `${at}.constraints`, false)
          else if (field === 'max_replicas_per_node')
            deploy.placement.max_replicas_per_node = integer(setting, `${at}.${field}`)
          else fail(`${at}.${field}`, 'not modelled')
        }

        break
      default:
        fail(at, 'not modelled')
    }
  }

  return deploy
}

function normalizeHealthcheck(value: unknown, where: string): NonNullable<NormalizedService['healthcheck']> {
  if (!isRecord(value)) return fail(where, 'expected a mapping')
  const check: NonNullable<NormalizedService['healthcheck']> = {}
  for (const [key, item] of Object.entries(value)) {
    const at = `${where}.${key}`
    switch (key) {
      case 'test':
        check.test = typeof item === 'string' ? ['CMD-SHELL', item] : stringList(item, at, false)
        break
      case 'timeout':
      case 'interval':
      case 'start_period':
      case 'start_interval':
        check[key] = parseDuration(item, at)
        break
      case 'retries':
        check.retries = integer(item, at)
        break
      case 'disable':
        check.disable = boolean(item, at)
        break
      default:
        fail(at, 'not modelled')
    }
  }

  return check
}

function normalizeUlimit(value: unknown, where: string): Ulimit {
  if (typeof value === 'number') return {single: integer(value, where)}
  if (!isRecord(value)) return fail(where, 'expected a number or soft/hard')
  return {soft: integer(value.soft ?? 0, `${where}.soft`), hard: integer(value.hard ?? 0, `${where}.hard`)}
}

function normalizeNetworks(value: unknown, where: string): NonNullable<NormalizedService['networks']> {
  if (Array.isArray(value)) return Object.fromEntries(stringList(value, where, false).map((name) => [name, null]))
  if (!isRecord(value)) return fail(where, 'expected a list or a mapping')
  const networks: NonNullable<NormalizedService['networks']> = {}
  for (const [name, item] of Object.entries(value)) {
    const at = `${where}.${name}`
    if (item === null || item === undefined) {
      networks[name] = null
      continue
    }

    if (!isRecord(item)) fail(at, 'expected a mapping')
    const network: NonNullable<NonNullable<NormalizedService['networks']>[string]> = {}
    for (const [key, setting] of Object.entries(item)) {
      if (key === 'aliases') network.aliases = stringList(setting, `${at}.aliases`, false)
      else if (key === 'ipv4_address') network.ipv4_address = text(setting, `${at}.ipv4_address`)
      else if (key === 'priority') network.priority = integer(setting, `${at}.priority`)
      else fail(`${at}.${key}`, 'not modelled')
    }

    networks[name] = network
  }

  return networks
}

/** Every string of a value, interpolated; keys stay as they are (Compose does not interpolate keys). */
function interpolateAll(value: unknown, where: string, options: NormalizeOptions): unknown {
  if (typeof value === 'string') {
    if (!value.includes('$')) return value
    if (!options.interpolate) return fail(where, 'uses $ but no variables were given')
    return options.interpolate(value, where)
  }

  if (Array.isArray(value)) return value.map((item, index) => interpolateAll(item, `${where}[${index}]`, options))
  if (isRecord(value))
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, interpolateAll(item, `${where}.${key}`, options)]),
    )
  return value
}

const STRING_FIELDS = [
  'image',
  'restart',
  'stop_signal',
  'user',
  'working_dir',
  'hostname',
  'domainname',
  'network_mode',
  'container_name',
  'platform',
  'runtime',
  'pull_policy',
  'ipc',
  'pid',
  'userns_mode',
  'cpuset',
] as const
const BOOL_FIELDS = ['read_only', 'privileged', 'init', 'tty', 'stdin_open', 'oom_kill_disable'] as const
const LIST_FIELDS = ['cap_add', 'cap_drop', 'security_opt', 'group_add', 'dns_opt', 'profiles'] as const
const STRING_OR_LIST_FIELDS = ['tmpfs', 'dns', 'dns_search'] as const
const BYTE_FIELDS = ['mem_limit', 'mem_reservation', 'memswap_limit', 'shm_size'] as const
const INT_FIELDS = ['cpu_shares', 'cpu_period', 'cpu_quota', 'pids_limit', 'oom_score_adj', 'scale'] as const

/**
 * One service as compose-go's loader leaves it. `environment` values given here are taken as they
 * are (already interpolated by the caller, who knows the shell and .env); every other string is
 * interpolated with `options.interpolate`.
 */
export function normalizeService(name: string, raw: Raw, options: NormalizeOptions): NormalizedService {
  const where = `services.${name}`
  const {environment, ...rest} = raw
  const input = interpolateAll(rest, where, options) as Raw
  const service: NormalizedService = {name}
  for (const [key, value] of Object.entries(input)) {
    const at = `${where}.${key}`
    if (key.startsWith('x-')) continue // extensions are not part of the JSON model
    if (value === undefined) continue
    if ((STRING_FIELDS as readonly string[]).includes(key)) {
      service[key as (typeof STRING_FIELDS)[number]] = text(value, at)
    } else if ((BOOL_FIELDS as readonly string[]).includes(key)) {
      service[key as (typeof BOOL_FIELDS)[number]] = boolean(value, at)
    } else if ((LIST_FIELDS as readonly string[]).includes(key)) {
      service[key as (typeof LIST_FIELDS)[number]] = stringList(value, at, false)
    } else if ((STRING_OR_LIST_FIELDS as readonly string[]).includes(key)) {
      service[key as (typeof STRING_OR_LIST_FIELDS)[number]] = stringList(value, at)
    } else if ((BYTE_FIELDS as readonly string[]).includes(key)) {
      service[key as (typeof BYTE_FIELDS)[number]] = parseBytes(value, at)
    } else if ((INT_FIELDS as readonly string[]).includes(key)) {
      service[key as (typeof INT_FIELDS)[number]] = integer(value, at)
    } else {
      switch (key) {
        case 'build': {
          const build = typeof value === 'string' ? {context: value} : value
          if (!isRecord(build)) fail(at, 'expected a path or a mapping')
          // Left out of the hash by Compose; normalized only so the model prints what `config` prints.
          service.build = {
            ...build,
            context: absolutePath(text(build.context ?? '.', `${at}.context`), options),
            dockerfile: text(build.dockerfile ?? 'Dockerfile', `${at}.dockerfile`),
          }
          break
        }

        case 'command':
        case 'entrypoint':
          if (typeof value === 'string') fail(at, 'the string form (split like a shell) is not modelled; use a list')
          service[key] = stringList(value, at, false)
          break
        case 'healthcheck':
          service.healthcheck = normalizeHealthcheck(value, at)
          break
        case 'ports':
          if (!Array.isArray(value)) fail(at, 'expected a list')
          service.ports = value.map((item, index) => normalizePort(item, `${at}[${index}]`))
          break
        case 'expose':
          service.expose = stringList(value, at, false)
          break
        case 'volumes':
          if (!Array.isArray(value)) fail(at, 'expected a list')
          service.volumes = value.map((item, index) => normalizeVolume(item, `${at}[${index}]`, options))
          break
        case 'secrets':
          if (!Array.isArray(value)) fail(at, 'expected a list')
          service.secrets = value.map((item, index) => normalizeFileReference(item, `${at}[${index}]`, '/run/secrets'))
          break
        case 'depends_on': {
          const entries: Array<[string, unknown]> = Array.isArray(value)
            ? value.map((item) => [text(item, at), {}])
            : isRecord(value)
              ? Object.entries(value)
              : fail(at, 'expected a list or a mapping')
          service.depends_on = Object.fromEntries(
            entries.map(([dependency, setting]) => {
              const item = (setting ?? {}) as Raw
              return [
                dependency,
                {
                  condition: text(item.condition ?? 'service_started', `${at}.${dependency}.condition`),
                  ...(item.restart !== undefined
                    ? {restart: boolean(item.restart, `${at}.${dependency}.restart`)}
                    : {}),
                  required: item.required === undefined ? true : boolean(item.required, `${at}.${dependency}.required`),
                },
              ]
            }),
          )
          break
        }

        case 'deploy':
          service.deploy = normalizeDeploy(value, at)
          break
        case 'networks':
          service.networks = normalizeNetworks(value, at)
          break
        case 'logging': {
          if (!isRecord(value)) fail(at, 'expected a mapping')
          const logging: NonNullable<NormalizedService['logging']> = {}
          for (const [field, setting] of Object.entries(value)) {
            if (field === 'driver') logging.driver = text(setting, `${at}.driver`)
            else if (field === 'options') logging.options = mapping(setting, `${at}.options`)
            else fail(`${at}.${field}`, 'not modelled')
          }

          service.logging = logging
          break
        }

        case 'labels':
          service.labels = mapping(value, at)
          break
        case 'sysctls':
          service.sysctls = mapping(value, at)
          break
        case 'ulimits':
          if (!isRecord(value)) fail(at, 'expected a mapping')
          service.ulimits = Object.fromEntries(
            Object.entries(value).map(([limit, setting]) => [limit, normalizeUlimit(setting, `${at}.${limit}`)]),
          )
          break
        case 'stop_grace_period':
          service.stop_grace_period = parseDuration(value, at)
          break
        case 'cpus':
          service.cpus = float(value, at)
          break
        default:
          fail(at, 'not modelled')
      }
    }
  }

  if (environment !== undefined) {
    const at = `${where}.environment`
    const entries: Array<[string, string | null]> = Array.isArray(environment)
      ? environment.map((item, index) => {
          const entry = text(item, `${at}[${index}]`)
          const equals = entry.indexOf('=')
          return equals === -1 ? [entry, null] : [entry.slice(0, equals), entry.slice(equals + 1)]
        })
      : isRecord(environment)
        ? Object.entries(environment).map(([key, value]) => [
            key,
            value === null || value === undefined ? null : text(value, `${at}.${key}`),
          ])
        : fail(at, 'expected a list or a mapping')
    service.environment = Object.fromEntries(entries)
  }

  // compose-go connects a service that names no network (and has no network_mode) to `default`.
  if (!service.network_mode && (!service.networks || Object.keys(service.networks).length === 0))
    service.networks = {default: null}
  return service
}

function normalizeNetwork(key: string, raw: unknown, options: NormalizeOptions): NormalizedNetwork {
  const where = `networks.${key}`
  const input = (interpolateAll(raw ?? {}, where, options) ?? {}) as Raw
  if (!isRecord(input)) fail(where, 'expected a mapping')
  const network: NormalizedNetwork = {name: '', ipam: {}}
  for (const [field, value] of Object.entries(input)) {
    const at = `${where}.${field}`
    switch (field) {
      case 'name':
      case 'driver':
        network[field] = text(value, at)
        break
      case 'driver_opts':
      case 'labels':
        network[field] = mapping(value, at)
        break
      case 'external':
      case 'internal':
      case 'attachable':
      case 'enable_ipv4':
      case 'enable_ipv6':
        network[field] = boolean(value, at)
        break
      case 'ipam':
        if (!isRecord(value)) fail(at, 'expected a mapping')
        if (value.driver !== undefined) network.ipam.driver = text(value.driver, `${at}.driver`)
        if (value.config !== undefined) {
          if (!Array.isArray(value.config)) fail(`${at}.config`, 'expected a list')
          network.ipam.config = value.config.map((pool, index) => {
            if (!isRecord(pool)) fail(`${at}.config[${index}]`, 'expected a mapping')
            return Object.fromEntries(
              Object.entries(pool).map(([name, setting]) => [name, text(setting, `${at}.config[${index}].${name}`)]),
            )
          })
        }

        break
      default:
        if (!field.startsWith('x-')) fail(at, 'not modelled')
    }
  }

  network.name ||= network.external ? key : `${options.project}_${key}`
  return network
}

function normalizeSecret(key: string, raw: unknown, options: NormalizeOptions): NormalizedSecret {
  const where = `secrets.${key}`
  const input = interpolateAll(raw ?? {}, where, options)
  if (!isRecord(input)) return fail(where, 'expected a mapping')
  const secret: NormalizedSecret = {name: ''}
  for (const [field, value] of Object.entries(input)) {
    const at = `${where}.${field}`
    if (field === 'name' || field === 'environment') secret[field] = text(value, at)
    else if (field === 'file') secret.file = absolutePath(text(value, at), options)
    else if (field === 'external') secret.external = boolean(value, at)
    else if (field === 'labels') secret.labels = mapping(value, at)
    else if (!field.startsWith('x-')) fail(at, 'not modelled')
  }

  secret.name ||= secret.external ? key : `${options.project}_${key}`
  return secret
}

/**
 * The whole file as compose-go loads it. `services` whose environment the caller already resolved
 * should be passed with that environment (see normalizeService).
 */
export function normalizeProject(compose: Raw, options: NormalizeOptions): NormalizedProject {
  for (const key of Object.keys(compose))
    if (!['services', 'networks', 'secrets', 'name', 'version'].includes(key) && !key.startsWith('x-'))
      fail(key, 'top-level key not modelled')
  const rawServices = (compose.services ?? {}) as Record<string, Raw>
  const services = Object.fromEntries(
    Object.entries(rawServices).map(([name, service]) => [name, normalizeService(name, service, options)]),
  )
  const rawNetworks = {...((compose.networks ?? {}) as Raw)}
  // The implicit `default` network exists only when a service is on it.
  if (Object.values(services).some((service) => service.networks && 'default' in service.networks))
    rawNetworks.default ??= null
  const networks = Object.fromEntries(
    Object.entries(rawNetworks).map(([key, network]) => [key, normalizeNetwork(key, network, options)]),
  )
  const secrets = Object.fromEntries(
    Object.entries((compose.secrets ?? {}) as Raw).map(([key, secret]) => [key, normalizeSecret(key, secret, options)]),
  )
  return {name: options.project, workingDir: options.dir, services, networks, secrets}
}

// ---- hashes ----------------------------------------------------------------------------------------

/** The service as `docker compose config --format json` prints it (compact). */
export function serviceJson(service: NormalizedService): string {
  return goJson(service, {struct: SERVICE})
}

/**
 * Compose v2's ServiceHash: what does not change the container (build, pull policy, scale and
 * replicas, dependencies, profiles) is left out, the rest is hashed as Go marshals it.
 */
export function composeServiceHash(service: NormalizedService): string {
  const hashed: NormalizedService = {...service}
  delete hashed.build
  delete hashed.pull_policy
  delete hashed.scale
  delete hashed.depends_on
  delete hashed.profiles
  if (hashed.deploy) {
    hashed.deploy = {...hashed.deploy}
    delete hashed.deploy.replicas
  }

  return createHash('sha256').update(serviceJson(hashed)).digest('hex')
}

export function networkJson(network: NormalizedNetwork): string {
  return goJson(network, {struct: NETWORK})
}

/** Compose v2's NetworkHash: a network whose label differs is removed and made again by `compose up`. */
export function composeNetworkHash(network: NormalizedNetwork): string {
  return createHash('sha256').update(networkJson(network)).digest('hex')
}
