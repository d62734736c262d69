import type {Manifest} from '../manifest/schema.js'
import type {ProjectSecrets} from '../render/secrets.js'
import type {Clock} from '../util/retry.js'
import type {VerifyEngine} from './engine.js'
import type {GatewayClient} from './http.js'

/** The checks in the order they run: cheap engine checks first, the load test last but one. */
export const CHECK_IDS = [
  'containers',
  'config',
  'redirect',
  'tls',
  'routes',
  'auth',
  'cache',
  'balance',
  'rate-limit',
  'logs',
] as const
export type CheckId = (typeof CHECK_IDS)[number]

/** What a check concludes. The runner adds id, title and the time it took. */
export interface CheckOutcome {
  ok: boolean
  /** Passed, but something needs attention soon (a certificate expiring within 21 days). */
  warn?: boolean
  /** Nothing to check in this project (tls.mode off, one replica, no protected route): ok, said so. */
  skipped?: boolean
  /** One line in the table; a failure may add lines (command output, log lines). */
  detail: string
  /** Machine-readable facts for --json (counts, ranges, hostnames). */
  data?: Record<string, unknown>
}

/** One row of the report: the same object feeds the table and the JSON document. */
export interface CheckResult extends CheckOutcome {
  id: CheckId
  title: string
  ms: number
}

export interface VerifyContext {
  dir: string
  manifest: Manifest
  secrets: ProjectSecrets
  /** Tags every request of this run: `X-Request-ID: verify-<runId>-<n>`. */
  runId: string
  startedAt: Date
  http: GatewayClient
  engine: VerifyEngine
  clock: Clock
  /** verify --ca-file: trust this CA instead of certs/ca.pem or the system store. */
  caFile?: string
}

export interface Check {
  id: CheckId
  title: string
  run(context: VerifyContext): Promise<CheckOutcome>
}

export interface VerifyReport {
  ok: boolean
  project: string
  runId: string
  durationMs: number
  checks: CheckResult[]
}

export function pass(detail: string, data?: Record<string, unknown>): CheckOutcome {
  return data ? {ok: true, detail, data} : {ok: true, detail}
}

export function skip(reason: string): CheckOutcome {
  return {ok: true, skipped: true, detail: `skipped: ${reason}`}
}

export function fail(detail: string, data?: Record<string, unknown>): CheckOutcome {
  return data ? {ok: false, detail, data} : {ok: false, detail}
}
