import {posix} from 'node:path'

import type Docker from 'dockerode'

import {fail, unsupported} from './errors.js'
import type {
  NormalizedFileReference,
  NormalizedProject,
  NormalizedService,
  NormalizedVolume,
  NormalizeOptions,
} from './model.js'
import {boolean, integer, isRecord, mapping, parseBytes, text} from './read.js'

/**
 * Volumes and file references: their short and long syntax read as compose-go does (loader), then
 * the binds and mounts Compose asks the engine for (container).
 */

function expandHome(path: string, home: string | undefined): string {
  if (path === '~' || path.startsWith('~/')) {
    if (!home) throw new Error('no home directory to expand ~ in a path')
    return posix.join(home, path.slice(1))
  }

  return path
}

/** compose-go's maybeUnixPath: relative paths are joined to the project directory (and cleaned). */
export function absolutePath(path: string, options: NormalizeOptions): string {
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

export function normalizeVolume(value: unknown, where: string, options: NormalizeOptions): NormalizedVolume {
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

export function normalizeFileReference(value: unknown, where: string, directory: string): NormalizedFileReference {
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

// ---- engine side: what `docker compose up` asks for ----------------------------------------------

function bindString(source: string, volume: NonNullable<NormalizedService['volumes']>[number]): string {
  const options = [volume.read_only ? 'ro' : 'rw']
  if (volume.bind?.selinux) options.push(volume.bind.selinux)
  if (volume.bind?.propagation) options.push(volume.bind.propagation)
  if (volume.volume?.nocopy) options.push('nocopy')
  return `${source}:${volume.target}:${options.join(',')}`
}

/**
 * The engine's BindOptions as Go marshals Compose's (both fields omitempty): `{}` when neither is set.
 * dockerode's type insists on Propagation and lacks CreateMountpoint (API 1.42), hence the cast.
 */
function bindOptions(propagation: string | undefined, createMountpoint: boolean): Docker.MountSettings['BindOptions'] {
  return {
    ...(propagation ? {Propagation: propagation} : {}),
    ...(createMountpoint ? {CreateMountpoint: true} : {}),
  } as Docker.MountSettings['BindOptions']
}

/** Binds for bind volumes the legacy API can express, Mounts for the rest, then the secrets' files. */
export function containerMounts(
  service: NormalizedService,
  project: NormalizedProject,
): {binds: string[]; mounts: Docker.MountSettings[]} {
  const binds: string[] = []
  const mounts: Docker.MountSettings[] = []
  const targets = new Set<string>()
  for (const volume of service.volumes ?? []) {
    targets.add(volume.target)
    if (volume.type === 'bind') {
      const bind = volume.bind
      const needsMountApi = bind !== undefined && (!bind.create_host_path || !!bind.propagation || !!bind.recursive)
      if (!needsMountApi) {
        binds.push(bindString(volume.source!, volume))
        continue
      }

      mounts.push({
        Type: 'bind',
        Source: volume.source!,
        Target: volume.target,
        ReadOnly: volume.read_only ?? false,
        ...(volume.consistency ? {Consistency: volume.consistency as Docker.MountConsistency} : {}),
        BindOptions: bindOptions(bind.propagation, bind.create_host_path ?? false),
      })
    } else if (volume.type === 'tmpfs') {
      mounts.push({
        Type: 'tmpfs',
        Source: '',
        Target: volume.target,
        ReadOnly: volume.read_only ?? false,
        ...(volume.tmpfs ? {TmpfsOptions: {SizeBytes: volume.tmpfs.size ?? 0, Mode: volume.tmpfs.mode ?? 0}} : {}),
      })
    } else {
      unsupported(service.name, `volumes (${volume.type} ${volume.source ?? volume.target})`)
    }
  }

  for (const secret of service.secrets ?? []) {
    const target = secret.target?.startsWith('/') ? secret.target : `/run/secrets/${secret.target ?? secret.source}`
    if (targets.has(target)) continue
    const defined = project.secrets[secret.source]
    if (!defined) unsupported(service.name, `secrets.${secret.source} (no top-level secret of that name)`)
    if (defined.external) unsupported(service.name, `secrets.${secret.source} (external)`)
    if (defined.environment !== undefined) continue // Compose injects these itself after the start
    if (!defined.file) unsupported(service.name, `secrets.${secret.source} (no file)`)
    targets.add(target)
    mounts.push({
      Type: 'bind',
      Source: defined.file,
      Target: target,
      ReadOnly: true,
      BindOptions: bindOptions(undefined, false),
    })
  }

  return {binds, mounts}
}
