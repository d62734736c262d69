import type {LogLine} from '../docker/gateway-log.js'
import {serviceOf, type VerifyEngine} from './engine.js'

/**
 * The gateway's logs as verify reads them: NGINX writes the JSON access log to the container's stdout
 * and the error log to its stderr, and the engine keeps both (capped, see CONTAINER_LOGGING).
 */
export const LOG_NAMES = {
  access: 'the access log (gateway stdout)',
  error: 'the error log (gateway stderr)',
} as const

export interface GatewayLogs {
  /** Access-log lines (JSON), oldest first, joined by newlines. */
  access: string
  /** Error-log lines, oldest first, joined by newlines. */
  error: string
}

/** The last `tail` lines of the gateway's log, split into access and error log; empty without a gateway. */
export async function readGatewayLogs(engine: VerifyEngine, tail: number): Promise<GatewayLogs> {
  const gateways = (await engine.containers()).filter((container) => serviceOf(container) === 'gateway')
  const gateway = gateways.find((container) => container.running) ?? gateways.at(-1)
  if (!gateway) return {access: '', error: ''}
  return splitGatewayLog(await engine.logs(gateway.id, tail))
}

/** stdout -> access log (the image's start-up notes are not JSON and count as such), stderr -> error log. */
export function splitGatewayLog(lines: readonly LogLine[]): GatewayLogs {
  const access: string[] = []
  const error: string[] = []
  for (const line of lines) (line.stream === 'stdout' ? access : error).push(line.text)
  return {access: access.join('\n'), error: error.join('\n')}
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
