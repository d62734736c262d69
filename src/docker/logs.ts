import {isNotOneOff, replicaNumber} from './containers.js'
import {OperationError, UsageError} from '../errors.js'
import type {Manifest} from '../manifest/schema.js'
import {buildStackSpec} from '../manifest/stack.js'
import {demuxLines, Demuxer, LineSplitter} from './demux.js'
import {engineFailure, type ContainerState, type Engine} from './engine.js'
import {containerLines, gatewayContainer, isAccessLine, LogMark, readLines, type LogEngine} from './gateway-log.js'
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
    return service !== 0 ? service : replicaNumber(a) - replicaNumber(b)
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
  let containers = (await engine.containers({[LABELS.project]: manifest.name})).filter(isNotOneOff)
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
  /** The last N access-log lines (default: all the engine kept). */
  tail?: number | 'all'
  write: (line: string) => void
  /** Ends a follow (the command passes none: Ctrl-C ends it). */
  signal?: AbortSignal
}

/**
 * The gateway's access log (the JSON lines NGINX writes to its container's stdout, read through the
 * engine), each entry printed readably; `follow` keeps printing new ones until the gateway stops.
 */
export async function showAccessLog(engine: LogEngine, manifest: Manifest, options: AccessLogOptions): Promise<void> {
  const gateway = await gatewayContainer(engine, manifest.name)
  if (!gateway)
    throw new OperationError(`no gateway container exists in project ${manifest.name}`, {
      hint: 'Start the stack with `create-gateway up`.',
    })
  // The tail counts access lines only: stdout also holds the image's start-up notes, stderr the error log.
  const tail = options.tail ?? 'all'
  const lines: string[] = []
  const mark = new LogMark()
  try {
    for (const line of await readLines(engine, gateway.id)) {
      mark.see(line)
      if (isAccessLine(line)) lines.push(line.text)
    }
  } catch (error) {
    throw engineFailure(`Reading the logs of ${gateway.name}`, error)
  }

  for (const line of tail === 'all' ? lines : lines.slice(lines.length - tail)) options.write(formatAccessLine(line))
  if (!options.follow) return
  const unseen = mark.unseen()
  try {
    for await (const line of containerLines(engine, gateway.id, {follow: true, since: mark.since}, options.signal)) {
      if (unseen(line) && isAccessLine(line)) options.write(formatAccessLine(line.text))
    }
  } catch (error) {
    throw engineFailure(`Following the logs of ${gateway.name}`, error)
  }
}
