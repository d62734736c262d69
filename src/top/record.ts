/**
 * One line of the gateway's JSON access log (log_format gateway_json in nginx.conf) reduced to what
 * `top` aggregates. Kept apart from reading so the aggregation is tested on fixed lines.
 */

/** One upstream attempt: NGINX lists every server it tried for a request (a retry adds one). */
export interface UpstreamAttempt {
  addr: string
  status?: number
  /** Seconds, as NGINX logs them (millisecond resolution). */
  time?: number
}

export interface TopRecord {
  /** Milliseconds since the epoch. */
  time: number
  /** The route's path from gateway.yaml; '' for a request no route matched (a 404, a redirect). */
  route: string
  service: string
  /** The request URI as the client sent it. */
  uri: string
  status: number
  /** Seconds. */
  requestTime: number
  upstreams: UpstreamAttempt[]
  client: string
  /** $upstream_cache_status (HIT, MISS, BYPASS, ...) when the log carries it. */
  cache?: string
}

type Entry = Record<string, unknown>

function text(entry: Entry, name: string): string {
  const value = entry[name]
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : ''
}

// $upstream_addr, $upstream_status and $upstream_response_time separate attempts with ", " and
// internal redirects (auth_request, error_page) with " : "; the lists line up position by position.
const ATTEMPTS = /\s*,\s*|\s+:\s+/

function numberOrUndefined(value: string | undefined): number | undefined {
  if (value === undefined || value === '' || value === '-') return undefined
  const parsed = Number(value)
  return Number.isFinite(parsed) ? parsed : undefined
}

/** Upstream fields -> attempts; an empty or "-" address (NGINX answered itself) is no attempt. */
export function parseUpstreams(addr: string, status: string, time: string): UpstreamAttempt[] {
  if (addr === '' || addr === '-') return []
  const statuses = status.split(ATTEMPTS)
  const times = time.split(ATTEMPTS)
  const attempts: UpstreamAttempt[] = []
  addr.split(ATTEMPTS).forEach((one, index) => {
    if (one === '' || one === '-') return
    const attempt: UpstreamAttempt = {addr: one}
    const code = numberOrUndefined(statuses[index])
    const seconds = numberOrUndefined(times[index])
    if (code !== undefined) attempt.status = code
    if (seconds !== undefined) attempt.time = seconds
    attempts.push(attempt)
  })
  return attempts
}

// Many lines share one second: parsing the same ISO string again is most of the cost of a line.
let lastTimeText = ''
let lastTimeValue = Number.NaN

function parseTime(value: string): number {
  if (value !== lastTimeText) {
    lastTimeText = value
    lastTimeValue = Date.parse(value)
  }

  return lastTimeValue
}

/** A line of the access log -> record; undefined for a line that is not one (cut, blank, foreign). */
export function parseAccessLine(line: string): TopRecord | undefined {
  if (line.length < 2 || line.charCodeAt(0) !== 123 /* { */) return undefined
  let entry: Entry
  try {
    const parsed: unknown = JSON.parse(line)
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined
    entry = parsed as Entry
  } catch {
    return undefined
  }

  const time = parseTime(text(entry, 'time'))
  const status = Number(entry.status)
  if (!Number.isFinite(time) || !Number.isInteger(status)) return undefined
  const record: TopRecord = {
    time,
    route: text(entry, 'route'),
    service: text(entry, 'service'),
    uri: text(entry, 'uri'),
    status,
    requestTime: Number(entry.request_time) || 0,
    upstreams: parseUpstreams(
      text(entry, 'upstream_addr'),
      text(entry, 'upstream_status'),
      text(entry, 'upstream_response_time'),
    ),
    client: text(entry, 'remote_addr'),
  }
  const cache = text(entry, 'cache') || text(entry, 'upstream_cache_status')
  if (cache !== '' && cache !== '-') record.cache = cache
  return record
}
