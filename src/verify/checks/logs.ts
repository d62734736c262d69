import {retryUntil, WaitTimeoutError} from '../../util/retry.js'
import {GatewayUnreachableError} from '../http.js'
import {parseErrorLog, type ErrorLogLine} from '../logfiles.js'
import {fail, pass, type Check} from '../types.js'

/** Levels that mean NGINX could not (re)load or lost a worker. */
export const SEVERE_LEVELS = new Set(['emerg', 'alert', 'crit'])
/** NGINX writes its log unbuffered by default, the engine a moment later: wait a little for the last lines. */
const ACCESS_LOG_WAIT_MS = 5000
/** The newest lines of the gateway's log (both streams) that are searched: this run's and some before. */
const TAIL_LINES = 20_000

export interface AccessRecord {
  time?: string
  request_id?: string
  method?: string
  uri?: string
  status?: number
  upstream_addr?: string
  [field: string]: unknown
}

/** One JSON object per line; anything else is counted, not thrown (a cut line, a hand-written note). */
export function parseAccessLog(text: string): {records: AccessRecord[]; malformed: number} {
  const records: AccessRecord[] = []
  let malformed = 0
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    try {
      const value: unknown = JSON.parse(line)
      if (value && typeof value === 'object' && !Array.isArray(value)) records.push(value as AccessRecord)
      else malformed += 1
    } catch {
      malformed += 1
    }
  }

  return {records, malformed}
}

/** Severe error-log lines at or after `since` (whole seconds: the log has no finer time). */
export function severeSince(lines: ErrorLogLine[], since: Date): ErrorLogLine[] {
  const from = Math.floor(since.getTime() / 1000) * 1000
  return lines.filter((line) => SEVERE_LEVELS.has(line.level) && line.time.getTime() >= from)
}

function shorten(text: string, max = 100): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`
}

function describeRecord(record: AccessRecord): string {
  return `${record.status ?? '?'} ${record.method ?? ''} ${record.uri ?? ''} ${record.request_id ?? ''}`
    .replace(/\s+/g, ' ')
    .trim()
}

export const logsCheck: Check = {
  id: 'logs',
  title: 'Access and error logs',
  async run({manifest, http, engine, clock, startedAt}) {
    const {access: accessLog, error: errorLog} = engine.gatewayLog.names
    // A request of our own, so the check proves something even when it runs alone (--only logs).
    const route = manifest.routes.find((candidate) => candidate.auth === 'none') ?? manifest.routes[0]!
    try {
      await http.send({scheme: manifest.tls.mode === 'off' ? 'http' : 'https', path: route.path, auth: route.auth})
    } catch (error) {
      if (!(error instanceof GatewayUnreachableError)) throw error
    }

    const expected = [...http.answered]
    const load = new Set(http.loadTestIds)
    const needLoad = http.loadTestAnswered
    const runPrefix = `verify-${http.runId}-`
    let errorText = ''
    const scan = async () => {
      const logs = await engine.gatewayLog.read(TAIL_LINES)
      errorText = logs.error
      const {records, malformed} = parseAccessLog(logs.access)
      const ours = records.filter(
        (record) => typeof record.request_id === 'string' && record.request_id.startsWith(runPrefix),
      )
      const ids = new Set(ours.map((record) => record.request_id!))
      const missing = expected.filter((id) => !ids.has(id))
      const loadFound = [...load].filter((id) => ids.has(id)).length
      return {records, ours, malformed, missing, loadFound}
    }

    let found: Awaited<ReturnType<typeof scan>>
    try {
      found = await retryUntil(scan, (value) => value.missing.length === 0 && value.loadFound >= needLoad, {
        timeoutMs: ACCESS_LOG_WAIT_MS,
        intervalMs: 250,
        clock,
        describe: `this run's request ids in ${accessLog}`,
      })
    } catch (error) {
      if (!(error instanceof WaitTimeoutError) || !error.lastValue) throw error
      found = error.lastValue as Awaited<ReturnType<typeof scan>>
    }

    const errorLines = parseErrorLog(errorText)
    const severe = severeSince(errorLines, startedAt)
    const lastAccess = found.records.slice(-5).map(describeRecord)
    const lastError = errorLines.slice(-5).map((line) => line.line)
    const data = {
      accessLog,
      errorLog,
      expectedIds: expected.length,
      missingIds: found.missing,
      loadTestIds: {sent: load.size, answered: needLoad, found: found.loadFound},
      malformedLines: found.malformed,
      severe: severe.map((line) => line.line),
      lastAccessLines: lastAccess,
      lastErrorLines: lastError,
    }

    const problems: string[] = []
    if (expected.length === 0 && needLoad === 0)
      problems.push('no request of this run got an answer from the gateway, so none can be in the log')
    else if (found.records.length === 0) problems.push(`${accessLog} is empty`)
    else if (found.missing.length > 0) {
      problems.push(
        `${found.missing.length} of ${expected.length} request ids not in ${accessLog} (first: ${found.missing.slice(0, 3).join(', ')})`,
      )
    }

    if (found.loadFound < needLoad)
      problems.push(`${found.loadFound} of ${needLoad} load-test request ids in ${accessLog}`)
    if (severe.length > 0) {
      problems.push(
        `${severe.length} emerg/alert/crit lines in ${errorLog} since the run began:\n${severe
          .slice(-5)
          .map((line) => `  | ${line.line}`)
          .join('\n')}`,
      )
    }

    if (problems.length > 0) {
      const tail = problems.some((problem) => problem.includes(accessLog))
        ? lastAccess.map((line) => `  | ${line}`)
        : []
      return fail([problems.join('; '), ...tail].join('\n'), data)
    }

    const total = expected.length + found.loadFound
    const lastAccessLine = lastAccess.at(-1)
    const lastErrorLine = errorLines.at(-1)
    return pass(
      `${total} request ids of this run in ${accessLog}${lastAccessLine ? ` (last: ${lastAccessLine})` : ''}; ` +
        `no emerg/alert/crit in ${errorLog} since the run began${lastErrorLine ? ` (last: ${shorten(`[${lastErrorLine.level}] ${lastErrorLine.message}`, 80)})` : ''}`,
      data,
    )
  },
}
