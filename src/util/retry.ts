import {setTimeout as delay} from 'node:timers/promises'

import {OperationError} from '../errors.js'

/** Time, injectable so tests of waits run instantly: product code waits through it, never with a bare sleep. */
export interface Clock {
  now(): number
  sleep(ms: number): Promise<void>
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => delay(ms),
}

export interface RetryOptions<T> {
  timeoutMs: number
  intervalMs: number
  clock?: Clock
  /** What is awaited, in the user's words: `my-api-web-1 to be healthy`. The timeout error names it. */
  describe: string
  /** The last value seen, for the timeout error: `health: starting`. */
  explain?: (value: T) => string
  /** Stops the wait (between attempts and during the pause) by throwing the signal's reason. */
  signal?: AbortSignal
}

/** A wait that ran out of time. Carries the last value so the caller can say more (logs, state). */
export class WaitTimeoutError<T = unknown> extends OperationError {
  readonly timeoutMs: number
  readonly lastValue?: T

  constructor(describe: string, timeoutMs: number, lastValue?: T, detail?: string) {
    super(`Timed out after ${timeoutMs} ms waiting for ${describe}${detail ? ` (last: ${detail})` : ''}`)
    this.timeoutMs = timeoutMs
    this.lastValue = lastValue
  }
}

/**
 * The one waiting helper: call `fn` until `ok` accepts its value or `timeoutMs` passes. `fn` may throw
 * to stop waiting at once (a container that exited will not become healthy). The last attempt is made
 * at the deadline, so a short timeout still gets at least one try. An aborted `signal` ends the wait
 * with its reason; an attempt already running is not cancelled, only no longer waited for.
 */
export async function retryUntil<T>(
  fn: () => Promise<T>,
  ok: (value: T) => boolean,
  options: RetryOptions<T>,
): Promise<T> {
  const clock = options.clock ?? systemClock
  const deadline = clock.now() + options.timeoutMs
  let last: T | undefined
  let seen = false
  for (;;) {
    options.signal?.throwIfAborted()
    last = await fn()
    seen = true
    if (ok(last)) return last
    const remaining = deadline - clock.now()
    if (remaining <= 0) break
    const pause = clock.sleep(Math.min(options.intervalMs, remaining))
    await (options.signal ? untilAborted(pause, options.signal) : pause)
  }

  const detail = seen && options.explain ? options.explain(last as T) : undefined
  throw new WaitTimeoutError(options.describe, options.timeoutMs, last, detail)
}

/**
 * Bound one call that has no timeout of its own (a DNS lookup, a ping). The call is not cancelled,
 * only no longer awaited; the timer is cleared either way so it never keeps the process alive.
 */
export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, describe: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WaitTimeoutError(describe, timeoutMs)), timeoutMs)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Await `promise` until `signal` aborts, then reject at once with the signal's reason. Like
 * `withTimeout`, the work is not cancelled, only no longer awaited; the listener is removed either way.
 */
export async function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted()
  let onAbort: (() => void) | undefined
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, {once: true})
  })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort!)
  }
}
