import {open} from 'node:fs/promises'
import {join} from 'node:path'

import {PROJECT_PATHS} from '../manifest/stack.js'

/** The gateway's logs as the project sees them (logs/ is mounted at /var/log/nginx). */
export const LOG_FILES = {
  access: `${PROJECT_PATHS.logs}/access.log`,
  error: `${PROJECT_PATHS.logs}/error.log`,
} as const

/** The gateway's access or error log, from wherever this stack keeps it (see VerifyEngine.logTail). */
export async function gatewayLogTail(
  context: {dir: string; engine?: {logTail?(log: 'access' | 'error', maxBytes: number): Promise<string>}},
  log: 'access' | 'error',
  maxBytes: number,
): Promise<string> {
  return context.engine?.logTail
    ? context.engine.logTail(log, maxBytes)
    : readTail(context.dir, LOG_FILES[log], maxBytes)
}

/** The name of that log in a report: the project file, or what the engine calls it. */
export function gatewayLogName(
  context: {engine?: {logName?(log: 'access' | 'error'): string}},
  log: 'access' | 'error',
): string {
  return context.engine?.logName?.(log) ?? LOG_FILES[log]
}

/** Last `maxBytes` of a file, cut at a line start; '' when the file does not exist. */
export async function readTail(dir: string, file: string, maxBytes = 1 << 20): Promise<string> {
  let handle
  try {
    handle = await open(join(dir, file), 'r')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return ''
    throw error
  }

  try {
    const {size} = await handle.stat()
    const start = Math.max(0, size - maxBytes)
    const buffer = Buffer.alloc(size - start)
    await handle.read(buffer, 0, buffer.length, start)
    const text = buffer.toString('utf8')
    // A cut in the middle of a line would make its first part look like a broken record.
    return start === 0 ? text : text.slice(text.indexOf('\n') + 1)
  } finally {
    await handle.close()
  }
}

export interface ErrorLogLine {
  /** NGINX writes local time of the container; our images run in UTC. */
  time: Date
  level: string
  message: string
  line: string
}

const ERROR_LINE = /^(\d{4})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2}):(\d{2}) \[(\w+)\] (?:\d+#\d+: )?(?:\*\d+ )?(.*)$/

/** `2025/01/31 10:00:00 [emerg] 1#1: unknown directive "x" in ...` -> time, level, message. */
export function parseErrorLog(text: string): ErrorLogLine[] {
  const lines: ErrorLogLine[] = []
  for (const line of text.split('\n')) {
    const match = ERROR_LINE.exec(line)
    if (!match) continue
    const [, year, month, day, hour, minute, second, level = '', message = ''] = match
    lines.push({time: new Date(Date.UTC(+year!, +month! - 1, +day!, +hour!, +minute!, +second!)), level, message, line})
  }

  return lines
}

/**
 * Why NGINX could not reach an upstream for `path`, from the newest error-log line about that request:
 * `connect() failed (111: Connection refused) while connecting to upstream, upstream: "http://..."`.
 */
export function upstreamErrorReason(errorLog: string, path: string): string | undefined {
  const needle = `request: "GET ${path} `
  const line = parseErrorLog(errorLog)
    .reverse()
    .find((entry) => entry.message.includes(needle))
  if (!line) return undefined
  const reason = line.message.split(', client: ')[0] ?? line.message
  const upstream = /upstream: "([^"]+)"/.exec(line.message)?.[1]
  return upstream ? `${reason} (${upstream})` : reason
}
