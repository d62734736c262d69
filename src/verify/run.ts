import {randomBytes} from 'node:crypto'
import {resolve} from 'node:path'

import {GatewayError, UsageError} from '../errors.js'
import {loadManifest} from '../manifest/load.js'
import {loadSecrets} from '../render/secrets.js'
import {systemClock, type Clock} from '../util/retry.js'
import {authCheck} from './checks/auth.js'
import {balanceCheck} from './checks/balance.js'
import {cacheCheck} from './checks/cache.js'
import {configCheck} from './checks/config.js'
import {containersCheck} from './checks/containers.js'
import {logsCheck} from './checks/logs.js'
import {rateLimitCheck} from './checks/rate-limit.js'
import {redirectCheck} from './checks/redirect.js'
import {routesCheck} from './checks/routes.js'
import {projectTrust} from './checks/tls.js'
import {tlsCheck} from './checks/tls.js'
import {projectEngine, type VerifyEngine} from './engine.js'
import {GatewayClient} from './http.js'
import {CHECK_IDS, type Check, type CheckId, type CheckResult, type VerifyContext, type VerifyReport} from './types.js'

/** Every check, in CHECK_IDS order. */
export const CHECKS: readonly Check[] = [
  containersCheck,
  configCheck,
  redirectCheck,
  tlsCheck,
  routesCheck,
  authCheck,
  cacheCheck,
  balanceCheck,
  rateLimitCheck,
  logsCheck,
]

/** `--only a,b --only c` -> ['a', 'b', 'c'], each checked against the known ids. */
export function parseCheckList(values: readonly string[] | undefined, flag: string): CheckId[] | undefined {
  if (values === undefined || values.length === 0) return undefined
  const ids = values
    .flatMap((value) => value.split(','))
    .map((value) => value.trim())
    .filter((value) => value !== '')
  const unknown = ids.filter((id) => !(CHECK_IDS as readonly string[]).includes(id))
  if (unknown.length > 0) {
    throw new UsageError(`${flag}: unknown check ${unknown.map((id) => `"${id}"`).join(', ')}`, {
      hint: `Checks: ${CHECK_IDS.join(', ')}.`,
    })
  }

  if (ids.length === 0)
    throw new UsageError(`${flag}: name at least one check`, {hint: `Checks: ${CHECK_IDS.join(', ')}.`})
  return ids as CheckId[]
}

/** The checks to run, always in the canonical order (so `--only logs,containers` runs containers first). */
export function selectChecks(only?: readonly string[], skip?: readonly string[]): CheckId[] {
  const included = parseCheckList(only, '--only')
  const excluded = new Set(parseCheckList(skip, '--skip') ?? [])
  const selected = CHECK_IDS.filter((id) => (included === undefined || included.includes(id)) && !excluded.has(id))
  if (selected.length === 0)
    throw new UsageError('--only and --skip leave no check to run', {hint: `Checks: ${CHECK_IDS.join(', ')}.`})
  return selected
}

/** A short id for this run's request ids: `verify-<runId>-<n>` must match the gateway's id pattern. */
export function newRunId(): string {
  return randomBytes(4).toString('hex')
}

/** Run checks in order; a check that throws fails with its message, and the rest still run. */
export async function runChecks(
  checks: readonly Check[],
  context: VerifyContext,
  onResult?: (result: CheckResult) => void,
  onStart?: (check: Check) => void,
): Promise<CheckResult[]> {
  const results: CheckResult[] = []
  for (const check of checks) {
    onStart?.(check)
    const started = performance.now()
    let result: CheckResult
    try {
      const outcome = await check.run(context)
      result = {id: check.id, title: check.title, ...outcome, ms: Math.round(performance.now() - started)}
    } catch (error) {
      const message =
        error instanceof GatewayError && error.hint
          ? `${error.message} (${error.hint})`
          : error instanceof Error
            ? error.message
            : String(error)
      result = {
        id: check.id,
        title: check.title,
        ok: false,
        detail: message,
        ms: Math.round(performance.now() - started),
      }
    }

    results.push(result)
    onResult?.(result)
  }

  return results
}

export interface VerifyOptions {
  dir: string
  /** Ids to run (default: all), e.g. from selectChecks. */
  checks?: readonly CheckId[]
  engine?: VerifyEngine
  clock?: Clock
  runId?: string
  onStart?: (check: Check) => void
  onResult?: (result: CheckResult) => void
  /** Trust this CA file (PEM) instead of certs/ca.pem or the system store. */
  caFile?: string
}

/** `create-gateway verify`: load the project, run the selected checks against its running stack, report. */
export async function runVerify(options: VerifyOptions): Promise<VerifyReport> {
  const started = performance.now()
  const startedAt = new Date()
  const dir = resolve(options.dir)
  const manifest = await loadManifest(dir)
  const secrets = await loadSecrets(dir, manifest)
  const clock = options.clock ?? systemClock
  const runId = options.runId ?? newRunId()
  let ca: string | undefined
  try {
    ca = (await projectTrust(dir, manifest, options.caFile)).ca
  } catch {
    // No project CA on disk: requests still go out; the tls check reports the missing file.
  }

  const http = new GatewayClient({manifest, secrets, runId, ca, clock})
  const context: VerifyContext = {
    dir,
    manifest,
    secrets,
    runId,
    startedAt,
    http,
    engine: options.engine ?? projectEngine(manifest),
    clock,
    caFile: options.caFile,
  }
  const ids = new Set(options.checks ?? CHECK_IDS)
  const selected = CHECKS.filter((check) => ids.has(check.id))
  // A stack that is not running at all fails every check the same way: say so at once, instead of
  // a load test against a closed port and eight failures that all mean the same thing.
  const running = await context.engine.containers().then(
    (containers) => containers.length > 0,
    () => true, // the engine could not be asked: the checks say why, each in its own words
  )
  if (!running) {
    const why = `the stack of ${manifest.name} is not running (no containers); start it with \`create-gateway up\``
    const checks = selected.map((check) => ({
      id: check.id,
      title: check.title,
      ok: false,
      detail: check.id === 'containers' ? why : 'not run: the stack is not running',
      ms: 0,
    }))
    for (const result of checks) options.onResult?.(result)
    return {ok: false, project: manifest.name, runId, durationMs: Math.round(performance.now() - started), checks}
  }

  const checks = await runChecks(selected, context, options.onResult, options.onStart)
  return {
    ok: checks.every((check) => check.ok),
    project: manifest.name,
    runId,
    durationMs: Math.round(performance.now() - started),
    checks,
  }
}
