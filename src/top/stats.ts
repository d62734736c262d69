/** Small arithmetic of the panels: percentiles, status classes, the window. */

/**
 * Nearest-rank percentile of values sorted ascending: the smallest value with at least p% of the
 * values at or below it. Always a value that occurred (a latency NGINX logged), never interpolated.
 */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(rank, sorted.length) - 1]!
}

export interface Latency {
  p50: number | null
  p95: number | null
  p99: number | null
}

/** Seconds as NGINX logs them -> milliseconds percentiles (rounded to the log's resolution). */
export function latencyMs(seconds: number[]): Latency {
  const sorted = seconds.map((value) => Math.round(value * 1000)).sort((a, b) => a - b)
  return {p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99)}
}

export interface StatusCounts {
  '2xx': number
  '3xx': number
  '4xx': number
  '5xx': number
  /** Answers with the manifest's rateLimit.status (503 by default): also counted in their class. */
  rateLimited: number
}

export function emptyStatus(): StatusCounts {
  return {'2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0, rateLimited: 0}
}

export function countStatus(counts: StatusCounts, status: number, rateLimitStatus: number): void {
  const key = `${Math.floor(status / 100)}xx`
  if (key === '2xx' || key === '3xx' || key === '4xx' || key === '5xx') counts[key] += 1
  if (status === rateLimitStatus) counts.rateLimited += 1
}

/** `60s`, `5m`, `1h`, or a bare number of seconds -> milliseconds; undefined when it is none of those. */
export function parseWindow(value: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim())
  if (!match) return undefined
  const amount = Number(match[1])
  const unit = match[2] ?? 's'
  const ms = amount * {ms: 1, s: 1000, m: 60_000, h: 3_600_000}[unit as 'ms' | 's' | 'm' | 'h']
  return ms > 0 ? ms : undefined
}
