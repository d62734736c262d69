/** Types of load.js: a load generator that never re-sends a request (see the comment at its top). */

export type ErrorKind = 'reset' | 'closed' | 'timeout' | 'connect' | 'other'
export const ERROR_KINDS: readonly ErrorKind[]

export interface LoadOptions {
  /** 127.0.0.1 (default), ::1 or localhost: anything else is refused. */
  host?: string
  port: number
  /** HTTPS with this CA and SNI; plain HTTP when absent. */
  tls?: {ca: string | Buffer; servername?: string}
  /** Default: `<servername>:<port>` with tls, else `<host>:<port>`. */
  hostHeader?: string
  /** Keep-alive connections, each sending one request at a time (default 8). */
  lanes?: number
  /** Bounds: the load ends at whichever comes first (or stop()). */
  maxRequests: number
  durationMs: number
  /** Requests per second in all, paced per lane; back to back when absent. */
  rate?: number
  /** Share of POSTs, spread evenly (default 0.25). */
  postRatio?: number
  /** Path of the GETs (default `/`) and of the POSTs (default: the same). */
  path?: string
  postPath?: string
  postBody?: string
  postContentType?: string
  /** Per request, until its answer is complete (default 10 s). */
  timeoutMs?: number
  headers?: Record<string, string>
  /** Label of the first phase (default `start`). */
  phase?: string
  /** Each full answer, 2xx or not. */
  onAnswer?: (answer: {status: number; method: 'GET' | 'POST'; phase: string; lane: number; body: string}) => void
}

export interface LoadFailure {
  /** When the request was sent, ms after the load started. */
  atMs: number
  phase: string
  lane: number
  method: 'GET' | 'POST'
  /** `status`: a full answer that was not 2xx. */
  kind: ErrorKind | 'status'
  detail?: string
  /** Sent on a connection that had carried a request before. */
  reused: boolean
  /** The status, when an answer had started. */
  status?: number
}

export interface LoadReport {
  /** Requests sent; each is then answered or counted once in `errors`. */
  sent: number
  /** Full answers, any status. */
  answered: number
  /** Full answers by status class: `2xx`, `4xx`, ... */
  byClass: Record<string, number>
  non2xx: number
  errors: Record<ErrorKind, number>
  errorsOnReused: number
  /** non2xx + all errors. */
  failed: number
  /** Connections opened, and of those the ones a lane opened after its first. */
  connections: number
  reconnects: number
  phases: Record<string, {sent: number; answered2xx: number; failed: number; reconnects: number}>
  /** The failures in detail (the first 500). */
  failures: LoadFailure[]
  durationMs: number
  endedBy: 'stop' | 'requests' | 'time'
}

export interface RunningLoad {
  done: Promise<LoadReport>
  /** Live counts while the load runs. */
  report: LoadReport
  setPhase(phase: string): void
  /** Send no more requests; resolves once the ones in flight have ended. */
  stop(): Promise<LoadReport>
}

export function isPost(n: number, ratio: number): boolean
export function startLoad(options: LoadOptions): RunningLoad
export function runLoad(options: LoadOptions): Promise<LoadReport>
export function describeLoad(report: LoadReport): string
