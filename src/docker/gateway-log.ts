import {isNotOneOff} from './containers.js'
import {LABELS} from './spec.js'
import {Demuxer, LineSplitter, type StreamName} from './demux.js'
import type {ContainerState, Engine, LogOptions} from './engine.js'

/**
 * The gateway's NGINX writes its JSON access log to stdout and its error log to stderr (nginx.conf),
 * as the official image and every orchestrator expect: the engine keeps both in the container's log,
 * capped by the logging driver (CONTAINER_LOGGING: 3 x 10 MB), and every reader (`logs --access`,
 * `top`, `verify`, the reload check of `scale`) asks the engine for them.
 */

/** What the gateway's log readers ask of the engine. */
export type LogEngine = Pick<Engine, 'containers' | 'containerLogs'>

export interface LogLine {
  stream: StreamName
  text: string
  /** The engine's RFC 3339 time stamp (nanoseconds, UTC) of the line. */
  time: string
}

/**
 * A time stamp that sorts as text: the engine trims trailing zeros of the fraction
 * (`...:05.1Z` is later than `...:05.09Z`), so pad it to nanoseconds.
 */
export function timeKey(time: string): string {
  const match = /^(.+?:\d{2})(?:\.(\d{1,9}))?Z$/.exec(time)
  if (!match) return time
  return `${match[1]}.${(match[2] ?? '').padEnd(9, '0')}Z`
}

/** `2026-12-05T11:30:52.123456789Z text` -> time and text (a line without a time stamp keeps it all). */
export function splitTimestamp(line: string): {time: string; text: string} {
  const space = line.indexOf(' ')
  if (space > 0 && /^\d{4}-\d{2}-\d{2}T/.test(line)) return {time: line.slice(0, space), text: line.slice(space + 1)}
  return {time: '', text: line}
}

/** A line of the JSON access log (log_format gateway_json): stdout also carries the image entrypoint's notes. */
export function isAccessLine(line: LogLine): boolean {
  return line.stream === 'stdout' && line.text.startsWith('{')
}

/** Whole seconds for the engine's `since`, at or before `time` (the caller drops what it has seen). */
export function sinceSeconds(time: string): number | undefined {
  const ms = Date.parse(time)
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000)
}

/**
 * The project's gateway container: the running one, else the newest (a stopped gateway's log is
 * still readable); undefined when there is none.
 */
export async function gatewayContainer(engine: LogEngine, project: string): Promise<ContainerState | undefined> {
  const gateways = (await engine.containers({[LABELS.project]: project})).filter(
    (container) => container.labels[LABELS.service] === 'gateway' && isNotOneOff(container),
  )
  return gateways.find((container) => container.running) ?? gateways.at(-1)
}

/** Every line of a container's log stream, demultiplexed, each with the engine's time stamp. */
export async function* containerLines(
  engine: LogEngine,
  id: string,
  options: Omit<LogOptions, 'timestamps'> = {},
  signal?: AbortSignal,
): AsyncGenerator<LogLine> {
  const stream = (await engine.containerLogs(id, {...options, timestamps: true})) as NodeJS.ReadableStream & {
    destroy?: () => void
  }
  // Ends a follow that is waiting for the next line (Ctrl-C, top quitting).
  const stop = () => stream.destroy?.()
  if (signal?.aborted) stop()
  signal?.addEventListener('abort', stop, {once: true})
  const demuxer = new Demuxer()
  const splitter = new LineSplitter()
  try {
    for await (const chunk of stream as AsyncIterable<Buffer | string>) {
      for (const frame of demuxer.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))) {
        for (const {stream: name, line} of splitter.push(frame)) yield {stream: name, ...splitTimestamp(line)}
      }
    }

    for (const {stream: name, line} of splitter.flush()) yield {stream: name, ...splitTimestamp(line)}
  } catch (error) {
    if (!signal?.aborted) throw error
  } finally {
    signal?.removeEventListener('abort', stop)
    // A consumer that stops early closes the connection.
    stop()
  }
}

/** The lines of a container's log (no follow), oldest first. */
export async function readLines(
  engine: LogEngine,
  id: string,
  options: Omit<LogOptions, 'timestamps' | 'follow'> = {},
): Promise<LogLine[]> {
  const lines: LogLine[] = []
  for await (const line of containerLines(engine, id, {...options, follow: false})) lines.push(line)
  return lines
}

/**
 * Where a reader stopped: the time stamp of the last line it has, and how many lines it has with
 * exactly that time stamp (the engine's `since` is whole seconds and includes its bound, so a new
 * read starts at or before the mark and drops what the reader saw already).
 */
export class LogMark {
  private key = ''
  private atKey = 0

  /** Remember a line as seen. */
  see(line: LogLine): void {
    const key = timeKey(line.time)
    if (key === this.key) this.atKey += 1
    else if (key > this.key) {
      this.key = key
      this.atKey = 1
    }
  }

  /** Whole seconds for `since`; undefined before the first line (read from the start). */
  get since(): number | undefined {
    return this.key === '' ? undefined : sinceSeconds(this.key)
  }

  /** A filter for a read that started at `since`: true for the lines not seen yet, in order. */
  unseen(): (line: LogLine) => boolean {
    let repeated = this.atKey
    const mark = this.key
    return (line) => {
      const key = timeKey(line.time)
      if (key < mark) return false
      if (key === mark && repeated > 0) {
        repeated -= 1
        return false
      }

      return true
    }
  }
}
