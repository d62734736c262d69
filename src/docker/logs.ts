import {watchFile, unwatchFile} from 'node:fs'
import {open, stat} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {StringDecoder} from 'node:string_decoder'

import {OperationError, UsageError} from '../errors.js'
import type {Manifest} from '../manifest/schema.js'
import {PROJECT_PATHS, buildStackSpec} from '../manifest/stack.js'
import {demuxLines, Demuxer, LineSplitter} from './demux.js'
import {engineFailure, type ContainerState, type Engine} from './engine.js'
import {LABELS} from './spec.js'

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream as AsyncIterable<Buffer | string>)
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))
  return Buffer.concat(chunks)
}

/** The last lines a container wrote (stdout and stderr, demultiplexed), for failure messages. */
export async function lastLogLines(engine: Engine, id: string, count: number): Promise<string[]> {
  try {
    return demuxLines(await readAll(await engine.containerLogs(id, {tail: count}))).slice(-count)
  } catch {
    // A failure message must not fail because the logs could not be read.
    return []
  }
}

export interface LogsOptions {
  /** A service of the manifest (all its replicas), or a container name; all containers when absent. */
  service?: string
  follow?: boolean
  tail?: number | 'all'
  /** Unix seconds, from parseLogTime. */
  since?: number
  until?: number
  /** Each line starts with the engine's RFC 3339 time stamp. */
  timestamps?: boolean
  write: (line: string) => void
}

const UNIT_SECONDS: Record<string, number> = {s: 1, m: 60, h: 3600, d: 86_400}

/**
 * A time for --since / --until as `docker compose logs` reads it: a duration back from now (`10m`,
 * `1h30m`, `2d`), an RFC 3339 date or time (`2026-12-05`, `2026-12-05T08:00:00Z`), or Unix seconds.
 * Returns Unix seconds.
 */
export function parseLogTime(text: string, flag: string, now: Date = new Date()): number {
  const value = text.trim()
  if (/^\d+(\.\d+)?$/.test(value)) return Math.floor(Number(value))
  if (/^(\d+[smhd])+$/.test(value)) {
    let seconds = 0
    for (const [, amount, unit] of value.matchAll(/(\d+)([smhd])/g)) seconds += Number(amount) * UNIT_SECONDS[unit!]!
    return Math.floor(now.getTime() / 1000) - seconds
  }

  const time = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)
    ? Date.parse(value.replace(' ', 'T'))
    : Number.NaN
  if (Number.isNaN(time))
    throw new UsageError(
      `--${flag}: must be a duration such as 10m or 1h30m, a date-time such as 2026-12-05T08:00:00Z, or Unix seconds (got "${text}")`,
    )
  return Math.floor(time / 1000)
}

function byServiceAndNumber(order: string[]) {
  return (a: ContainerState, b: ContainerState): number => {
    const service = order.indexOf(a.labels[LABELS.service] ?? '') - order.indexOf(b.labels[LABELS.service] ?? '')
    return service !== 0 ? service : Number(a.labels[LABELS.number] ?? 0) - Number(b.labels[LABELS.number] ?? 0)
  }
}

/**
 * Container logs of the project, demultiplexed into lines. With more than one container each line
 * is prefixed by the container's name, as `docker compose logs` does. `follow` ends when every
 * followed container stops (or the user presses Ctrl-C).
 */
export async function showLogs(
  engine: Engine,
  manifest: Manifest,
  options: LogsOptions,
): Promise<{lines: number; containers: string[]}> {
  const order = buildStackSpec(manifest).services.map((spec) => spec.service)
  let containers = (await engine.containers({[LABELS.project]: manifest.name})).filter(
    (container) => container.labels[LABELS.oneoff] !== 'True',
  )
  if (options.service) {
    const wanted = options.service
    containers = containers.filter(
      (container) => container.labels[LABELS.service] === wanted || container.name === wanted,
    )
    if (containers.length === 0) {
      // A known service with no container is a stack that is down (exit 1); an unknown name is bad input (exit 2).
      if (order.includes(wanted))
        throw new OperationError(`no container of service ${wanted} exists in project ${manifest.name}`, {
          hint: 'Start the stack with `create-gateway up`.',
        })
      throw new UsageError(`${wanted} is neither a service of ${manifest.name} nor one of its containers`, {
        hint: `Services: ${order.join(', ')}.`,
      })
    }
  }

  if (containers.length === 0)
    throw new UsageError(`project ${manifest.name} has no containers`, {
      hint: 'Start the stack with `create-gateway up`.',
    })
  containers.sort(byServiceAndNumber(order))
  const width = Math.max(...containers.map((container) => container.name.length))
  let written = 0
  const prefix = (container: ContainerState) => (containers.length > 1 ? `${container.name.padEnd(width)} | ` : '')
  const write = (container: ContainerState, line: string) => {
    written += 1
    options.write(prefix(container) + line)
  }

  const follow = async (container: ContainerState) => {
    let stream: NodeJS.ReadableStream
    try {
      stream = await engine.containerLogs(container.id, {
        tail: options.tail ?? 'all',
        follow: options.follow,
        timestamps: options.timestamps,
        since: options.since,
        until: options.until,
      })
    } catch (error) {
      throw engineFailure(`Reading the logs of ${container.name}`, error)
    }

    const demuxer = new Demuxer()
    const splitter = new LineSplitter()
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      for (const frame of demuxer.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))) {
        for (const {line} of splitter.push(frame)) write(container, line)
      }
    }

    for (const {line} of splitter.flush()) write(container, line)
  }

  if (options.follow) await Promise.all(containers.map((container) => follow(container)))
  else for (const container of containers) await follow(container)
  return {lines: written, containers: containers.map((container) => container.name)}
}

// ---- the gateway's JSON access log --------------------------------------------------------------

type AccessEntry = Record<string, unknown>

function field(entry: AccessEntry, ...names: string[]): string {
  for (const name of names) {
    const value = entry[name]
    if (value !== undefined && value !== null && value !== '') return String(value)
  }

  return '-'
}

/**
 * One access-log line as `time status method uri -> upstream request_time request_id`. Field names
 * of NGINX's variables and their common short forms are both accepted; a line that is not JSON is
 * shown as it is.
 */
export function formatAccessLine(line: string): string {
  let entry: AccessEntry
  try {
    const parsed: unknown = JSON.parse(line)
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return line
    entry = parsed as AccessEntry
  } catch {
    return line
  }

  const time = field(entry, 'time', 'time_iso8601', 'time_local', 'timestamp', '@timestamp')
  const status = field(entry, 'status')
  const method = field(entry, 'method', 'request_method')
  const uri = field(entry, 'uri', 'request_uri', 'request')
  const upstream = field(entry, 'upstream_addr', 'upstream')
  const requestTime = field(entry, 'request_time', 'duration')
  const id = field(entry, 'request_id', 'id')
  return `${time} ${status} ${method} ${uri} -> ${upstream} ${requestTime === '-' ? '-' : `${requestTime}s`} ${id}`
}

export interface AccessLogOptions {
  follow?: boolean
  tail?: number | 'all'
  write: (line: string) => void
  /** Ends a follow (the command passes none: Ctrl-C ends it). */
  signal?: AbortSignal
}

/** Read `logs/access.log` of the project and print each entry readably; `follow` keeps printing new ones. */
export async function showAccessLog(dir: string, options: AccessLogOptions): Promise<void> {
  const file = join(resolve(dir), PROJECT_PATHS.logs, 'access.log')
  let size: number
  try {
    size = (await stat(file)).size
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    if (!options.follow)
      throw new UsageError(`${file} does not exist yet`, {
        hint: 'The gateway writes it on its first request; start the stack with `create-gateway up`.',
      })
    size = 0
  }

  let position = 0
  let partial = ''
  const emit = (text: string, tailCount?: number | 'all') => {
    const lines = (partial + text).split('\n')
    partial = lines.pop() ?? ''
    const shown = tailCount === undefined || tailCount === 'all' ? lines : lines.slice(-tailCount)
    for (const line of shown) if (line.trim() !== '') options.write(formatAccessLine(line))
  }

  // Bytes, not characters: a read may end inside a multi-byte character, which the decoder keeps.
  const decoder = new StringDecoder('utf8')
  const readFrom = async (start: number, end: number): Promise<{text: string; bytes: number}> => {
    if (end <= start) return {text: '', bytes: 0}
    const handle = await open(file, 'r')
    try {
      const buffer = Buffer.alloc(end - start)
      const {bytesRead} = await handle.read(buffer, 0, buffer.length, start)
      return {text: decoder.write(buffer.subarray(0, bytesRead)), bytes: bytesRead}
    } finally {
      await handle.close()
    }
  }

  const first = await readFrom(0, size)
  emit(first.text, options.tail ?? 'all')
  position = first.bytes
  if (!options.follow) {
    if (partial.trim()) options.write(formatAccessLine(partial))
    return
  }

  // Polling stat rather than inotify: the file is written from inside a container through a bind
  // mount, and logrotate may replace it; a shrink means it was truncated or rotated.
  await new Promise<void>((resolvePromise) => {
    let reading = Promise.resolve()
    const onChange = (current: {size: number}) => {
      reading = reading
        .then(async () => {
          if (current.size < position) {
            position = 0
            partial = ''
          }

          const next = await readFrom(position, current.size)
          position += next.bytes
          emit(next.text)
        })
        .catch(() => {})
    }

    watchFile(file, {interval: 500}, onChange)
    options.signal?.addEventListener('abort', () => {
      unwatchFile(file, onChange)
      resolvePromise()
    })
  })
}
