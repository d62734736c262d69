import {fail} from './errors.js'
import type {NormalizedService, NormalizeOptions} from './model.js'
import {absolutePath, normalizeFileReference, normalizeVolume} from './mounts.js'
import {normalizeNetworks} from './networks.js'
import {
  boolean,
  float,
  integer,
  interpolateAll,
  isRecord,
  mapping,
  parseBytes,
  parseDuration,
  type Raw,
  stringList,
  text,
} from './read.js'
import {normalizeDeploy, normalizeHealthcheck, normalizePort, normalizeUlimit} from './settings.js'

/** One service, setting by setting, as compose-go's loader leaves it. */

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
