import type {Engine} from '../docker/engine.js'
import {execIn} from '../docker/exec.js'
import {OperationError} from '../errors.js'
import {GATEWAY_PATHS} from '../manifest/stack.js'
import {retryUntil, systemClock, WaitTimeoutError, type Clock} from '../util/retry.js'

/**
 * NGINX inside the gateway container, driven through exec: `nginx -t`, `nginx -s reload`, and the
 * proof that a reload took effect. The images have no `ps`, so processes come from /proc.
 */

export const ERROR_LOG = `${GATEWAY_PATHS.logs}/error.log`
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
  /** Bytes in error.log now (0 when there is none). */
  errorLogSize: number
  /** [emerg] and [alert] lines written to error.log after the offset asked for. */
  errors: string[]
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`
}

/** One exec: every process (stat + title), then the size of error.log and its new [emerg]/[alert] lines. */
export function probeScript(errorLogOffset?: number): string {
  const log = shellQuote(ERROR_LOG)
  const lines = [
    `for d in /proc/[0-9]*; do s=$(cat "$d/stat" 2>/dev/null) || continue; c=$(tr '\\0\\n' '  ' < "$d/cmdline" 2>/dev/null); printf '%s\\t%s\\n' "$s" "$c"; done`,
    `if [ -f ${log} ]; then echo "@@size $(wc -c < ${log})";`,
    errorLogOffset === undefined
      ? ''
      : ` tail -c +${errorLogOffset + 1} ${log} | grep -E '\\[(emerg|alert)\\]' | tail -n ${OUTPUT_LINES} | sed 's/^/@@log /';`,
    ' fi',
  ]
  return lines.join('\n')
}

/** Parse what probeScript printed. */
export function parseProbe(output: string): GatewaySnapshot {
  const processes: NginxProcess[] = []
  let errorLogSize = 0
  const errors: string[] = []
  for (const line of output.split('\n')) {
    if (line.startsWith('@@size ')) {
      errorLogSize = Number(line.slice(7).trim()) || 0
      continue
    }

    if (line.startsWith('@@log ')) {
      errors.push(line.slice(6))
      continue
    }

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
    errorLogSize,
    errors,
  }
}

export async function probeGateway(
  engine: Engine,
  gateway: GatewayRef,
  errorLogOffset?: number,
): Promise<GatewaySnapshot> {
  const result = await execIn(engine, gateway.id, ['sh', '-c', probeScript(errorLogOffset)])
  if (result.exitCode !== 0)
    throw new OperationError(
      `Could not list the processes of ${gateway.name}: ${(result.stderr || result.stdout).trim()}`,
    )
  const snapshot = parseProbe(result.stdout)
  // error.log rotated or truncated since the offset: everything in it is new.
  if (errorLogOffset !== undefined && snapshot.errorLogSize < errorLogOffset) return probeGateway(engine, gateway, 0)
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
 * and none of the old ones still takes new requests, and error.log gained no [emerg] or [alert] line.
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
  const offset = before.errorLogSize
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
