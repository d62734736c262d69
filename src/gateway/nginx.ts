import type {Engine} from '../docker/engine.js'
import {execIn} from '../docker/exec.js'
import {LogMark, readLines, type LogEngine} from '../docker/gateway-log.js'
import {OperationError} from '../errors.js'
import {retryUntil, systemClock, WaitTimeoutError, type Clock} from '../util/retry.js'

/**
 * NGINX inside the gateway container, driven through exec: `nginx -t`, `nginx -s reload`, and the
 * proof that a reload took effect. The images have no `ps`, so processes come from /proc; the error
 * log is the container's stderr, read through the engine.
 */

/** Where the reload check reads NGINX's error log, for messages. */
export const ERROR_LOG = 'the error log (gateway stderr)'
export const DEFAULT_RELOAD_TIMEOUT_MS = 15_000
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000
const POLL_INTERVAL_MS = 200
const OUTPUT_LINES = 20

/** `nginx -t` refused the configuration. */
export class GatewayConfigError extends OperationError {
  constructor(
    message: string,
    /** What `nginx -t` printed. */
    readonly output: string,
  ) {
    super(message)
  }
}
/** `nginx -s reload` failed, or NGINX did not switch to the new configuration. */
export class GatewayReloadError extends OperationError {}

/** The gateway container: its ID for the engine, its name for messages. */
export interface GatewayRef {
  id: string
  name: string
}

export interface NginxProcess {
  pid: number
  ppid: number
  /** The process title: `nginx: master process ...`, `nginx: worker process`, `nginx: worker process is shutting down`. */
  title: string
}

export interface GatewaySnapshot {
  master?: number
  /** Workers of the master serving with the current configuration. */
  workers: number[]
  /** Workers of an older configuration finishing their requests. */
  exiting: number[]
  processes: NginxProcess[]
  /** [emerg] and [alert] lines of the error log written after the mark asked for. */
  errors: string[]
}

/** One exec: every process (stat + title). */
export function probeScript(): string {
  return `for d in /proc/[0-9]*; do s=$(cat "$d/stat" 2>/dev/null) || continue; c=$(tr '\\0\\n' '  ' < "$d/cmdline" 2>/dev/null); printf '%s\\t%s\\n' "$s" "$c"; done`
}

/** Parse what probeScript printed. */
export function parseProbe(output: string): GatewaySnapshot {
  const processes: NginxProcess[] = []
  for (const line of output.split('\n')) {
    const tab = line.indexOf('\t')
    if (tab === -1) continue
    const stat = line.slice(0, tab)
    // stat is `pid (comm) state ppid ...`; comm may hold spaces or parentheses, so split after the last ")".
    const close = stat.lastIndexOf(')')
    const pid = Number.parseInt(stat, 10)
    const ppid = Number.parseInt(stat.slice(close + 2).split(' ')[1] ?? '', 10)
    if (!Number.isFinite(pid) || !Number.isFinite(ppid) || close === -1) continue
    processes.push({pid, ppid, title: line.slice(tab + 1).trim()})
  }

  const master = processes.find((process) => process.title.startsWith('nginx: master process'))?.pid
  const children = processes.filter(
    (process) => master !== undefined && process.ppid === master && /^nginx: worker process/.test(process.title),
  )
  return {
    master,
    workers: children
      .filter((process) => !process.title.includes('shutting down'))
      .map((process) => process.pid)
      .sort((a, b) => a - b),
    exiting: children
      .filter((process) => process.title.includes('shutting down'))
      .map((process) => process.pid)
      .sort((a, b) => a - b),
    processes,
    errors: [],
  }
}

/** Where the gateway's log ends now: what a later `errorsSince` leaves out. */
export async function errorLogMark(engine: LogEngine, gateway: GatewayRef): Promise<LogMark> {
  const mark = new LogMark()
  for (const line of await readLines(engine, gateway.id, {tail: 1})) mark.see(line)
  return mark
}

/** [emerg] and [alert] lines NGINX wrote to its error log (the container's stderr) after `mark`. */
export async function errorsSince(engine: LogEngine, gateway: GatewayRef, mark: LogMark): Promise<string[]> {
  const unseen = mark.unseen()
  return (await readLines(engine, gateway.id, {since: mark.since}))
    .filter((line) => unseen(line) && line.stream === 'stderr' && /\[(emerg|alert)\]/.test(line.text))
    .map((line) => line.text)
    .slice(-OUTPUT_LINES)
}

export async function probeGateway(
  engine: Engine,
  gateway: GatewayRef,
  errorsAfter?: LogMark,
): Promise<GatewaySnapshot> {
  const result = await execIn(engine, gateway.id, ['sh', '-c', probeScript()])
  if (result.exitCode !== 0)
    throw new OperationError(
      `Could not list the processes of ${gateway.name}: ${(result.stderr || result.stdout).trim()}`,
    )
  const snapshot = parseProbe(result.stdout)
  if (errorsAfter) snapshot.errors = await errorsSince(engine, gateway, errorsAfter)
  return snapshot
}

function indent(text: string): string[] {
  return text
    .trim()
    .split('\n')
    .filter((line) => line.trim() !== '')
    .slice(-OUTPUT_LINES)
    .map((line) => `  | ${line}`)
}

/** `nginx -t` inside the gateway: the configuration on disk (conf.d is a bind mount) as NGINX would load it. */
export async function testConfig(engine: Engine, gateway: GatewayRef): Promise<string> {
  const result = await execIn(engine, gateway.id, ['nginx', '-t'])
  const output = `${result.stderr}\n${result.stdout}`.trim()
  if (result.exitCode !== 0) {
    throw new GatewayConfigError(
      [
        `\`nginx -t\` in ${gateway.name} rejected the configuration (exit code ${result.exitCode}):`,
        ...indent(output),
      ].join('\n'),
      output,
    )
  }

  return output
}

/**
 * `nginx -s reload` alone: the master is told, nothing proves it switched. reloadGateway adds the
 * proof; certs proves it over TLS instead (the served certificate).
 */
export async function signalReload(engine: Engine, gateway: GatewayRef): Promise<void> {
  const result = await execIn(engine, gateway.id, ['nginx', '-s', 'reload'])
  if (result.exitCode !== 0) {
    throw new GatewayReloadError(
      [
        `\`nginx -s reload\` in ${gateway.name} failed (exit code ${result.exitCode}):`,
        ...indent(`${result.stderr}\n${result.stdout}`),
      ].join('\n'),
    )
  }
}

export interface ReloadResult {
  master: number
  /** Every worker that ran before the reload (serving or already exiting): the ones to drain. */
  oldWorkers: number[]
  newWorkers: number[]
  ms: number
}

export interface ReloadOptions {
  timeoutMs?: number
  clock?: Clock
}

/**
 * `nginx -s reload`, then proof that it took effect: the master (same PID) runs a new set of workers
 * and none of the old ones still takes new requests, and the error log gained no [emerg] or [alert] line.
 * A configuration the master refuses at reload time (it keeps the old workers) fails here.
 */
export async function reloadGateway(
  engine: Engine,
  gateway: GatewayRef,
  options: ReloadOptions = {},
): Promise<ReloadResult> {
  const clock = options.clock ?? systemClock
  const timeoutMs = options.timeoutMs ?? DEFAULT_RELOAD_TIMEOUT_MS
  const started = clock.now()
  const before = await probeGateway(engine, gateway)
  if (before.master === undefined)
    throw new GatewayReloadError(`No NGINX master process runs in ${gateway.name}; is the gateway running?`)
  const offset = await errorLogMark(engine, gateway)
  await signalReload(engine, gateway)

  const oldWorkers = [...before.workers, ...before.exiting].sort((a, b) => a - b)
  let after: GatewaySnapshot
  try {
    after = await retryUntil(
      () => probeGateway(engine, gateway, offset),
      (snapshot) =>
        snapshot.errors.length > 0 ||
        snapshot.master !== before.master ||
        (snapshot.workers.length > 0 && snapshot.workers.every((pid) => !before.workers.includes(pid))),
      {
        timeoutMs,
        intervalMs: POLL_INTERVAL_MS,
        clock,
        describe: `NGINX in ${gateway.name} to start new workers after the reload`,
        explain: (snapshot) =>
          `workers ${snapshot.workers.join(', ') || 'none'}, before the reload ${before.workers.join(', ') || 'none'}`,
      },
    )
  } catch (error) {
    if (error instanceof WaitTimeoutError) {
      const last = (error.lastValue as GatewaySnapshot | undefined)?.errors ?? []
      throw new GatewayReloadError(
        [`${error.message}: NGINX kept its old configuration.`, ...last.map((line) => `  | ${line}`)].join('\n'),
        {cause: error},
      )
    }

    throw error
  }

  if (after.master !== before.master) {
    throw new GatewayReloadError(
      `The NGINX master in ${gateway.name} changed during the reload (PID ${before.master} -> ${after.master ?? 'none'}): the gateway restarted or stopped.`,
    )
  }

  if (after.errors.length > 0) {
    throw new GatewayReloadError(
      [
        `NGINX in ${gateway.name} logged errors after the reload (${ERROR_LOG}):`,
        ...after.errors.map((line) => `  | ${line}`),
      ].join('\n'),
    )
  }

  return {master: before.master, oldWorkers, newWorkers: after.workers, ms: clock.now() - started}
}

export interface DrainResult {
  drained: boolean
  ms: number
  /** Old workers still running when the wait ended. */
  remaining: number[]
}

/**
 * Wait until the workers of the previous configuration have exited: they finish the requests they
 * hold, and their keepalive connections to the replicas close with them. Bounded; running out of
 * time is reported, not thrown (the replica's own graceful shutdown still covers late requests).
 */
export async function drainWorkers(
  engine: Engine,
  gateway: GatewayRef,
  pids: number[],
  options: ReloadOptions = {},
): Promise<DrainResult> {
  const clock = options.clock ?? systemClock
  const started = clock.now()
  if (pids.length === 0) return {drained: true, ms: 0, remaining: []}
  const alive = (snapshot: GatewaySnapshot) =>
    snapshot.processes.filter((process) => pids.includes(process.pid)).map((process) => process.pid)
  try {
    await retryUntil(
      () => probeGateway(engine, gateway),
      (snapshot) => alive(snapshot).length === 0,
      {
        timeoutMs: options.timeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS,
        intervalMs: POLL_INTERVAL_MS,
        clock,
        describe: `the old NGINX workers of ${gateway.name} to finish their requests`,
      },
    )
    return {drained: true, ms: clock.now() - started, remaining: []}
  } catch (error) {
    if (!(error instanceof WaitTimeoutError)) throw error
    return {drained: false, ms: clock.now() - started, remaining: alive(error.lastValue as GatewaySnapshot)}
  }
}
