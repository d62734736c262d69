/** Reading NGINX's error log (the lines come from a GatewayLogSource, see log-source.ts). */

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
