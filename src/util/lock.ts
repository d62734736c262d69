import {randomBytes} from 'node:crypto'
import {open, rm, stat} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join, resolve} from 'node:path'

import {OperationError} from '../errors.js'
import {readFileIfExists, statIfExists} from './files.js'
import {systemClock, type Clock} from './retry.js'

/**
 * One operation at a time on a project: a lock file created with O_EXCL (atomic on local file
 * systems), holding who took it. A lock whose process no longer runs on this machine is stale and
 * taken over, so a `scale` killed with Ctrl-C never blocks the next one.
 */

export const LOCK_FILE = '.create-gateway.lock'
/** Held only for the instant of breaking a stale lock, so two processes cannot both break it. */
const BREAK_FILE = `${LOCK_FILE}.break`
const BREAK_STALE_MS = 30_000
/** A lock file still empty after this long was left by a process that died while creating it. */
const EMPTY_STALE_MS = 10_000
const POLL_INTERVAL_MS = 250

export interface LockOwner {
  pid: number
  host: string
  /** What holds it, in the user's words: `scale web=3`. */
  command: string
  /** ISO time the lock was taken. */
  since: string
  token: string
}

export class ProjectBusyError extends OperationError {
  readonly owner?: LockOwner

  constructor(message: string, options: {hint?: string; owner?: LockOwner}) {
    super(message, {hint: options.hint})
    this.owner = options.owner
  }
}

export interface ProjectLock {
  readonly path: string
  readonly owner: LockOwner
  release(): Promise<void>
}

export interface LockOptions {
  /** What the lock is for, shown to whoever finds the project busy. */
  command: string
  /** How long to wait for a busy project before giving up; 0 fails at once. */
  waitMs?: number
  clock?: Clock
  /** Whether a process runs on this machine; injectable for tests. */
  isAlive?: (pid: number) => boolean
  /** Called once when the project is busy and the call starts waiting. */
  onWait?: (owner: LockOwner | undefined) => void
}

export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function createExclusive(path: string, content: string): Promise<boolean> {
  let handle
  try {
    handle = await open(path, 'wx', 0o644)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  }

  try {
    await handle.writeFile(content)
  } finally {
    await handle.close()
  }

  return true
}

async function readOwner(path: string): Promise<{owner?: LockOwner; text: string; ageMs: number} | undefined> {
  const [content, info] = await Promise.all([readFileIfExists(path), statIfExists(path)])
  if (content === undefined || info === undefined) return undefined
  const text = content.toString('utf8')
  let owner: LockOwner | undefined
  try {
    const parsed = JSON.parse(text) as Partial<LockOwner>
    if (typeof parsed.pid === 'number' && typeof parsed.token === 'string') owner = parsed as LockOwner
  } catch {}

  return {owner, text, ageMs: Date.now() - info.mtimeMs}
}

function isStale(found: {owner?: LockOwner; ageMs: number}, isAlive: (pid: number) => boolean): boolean {
  // Unparseable: a process died between creating the file and writing it (or it is being written now).
  if (!found.owner) return found.ageMs > EMPTY_STALE_MS
  // A process on another machine (a shared folder) cannot be checked: never call it stale.
  if (found.owner.host !== hostname()) return false
  return found.owner.pid !== process.pid && !isAlive(found.owner.pid)
}

/** Remove a stale lock, unless someone else broke it first and took the project meanwhile. */
async function breakStaleLock(
  dir: string,
  path: string,
  seen: string,
  isAlive: (pid: number) => boolean,
): Promise<void> {
  const breaker = join(dir, BREAK_FILE)
  if (!(await createExclusive(breaker, String(process.pid)))) {
    const info = await stat(breaker).catch(() => undefined)
    if (info && Date.now() - info.mtimeMs > BREAK_STALE_MS) await rm(breaker, {force: true})
    return
  }

  try {
    const again = await readOwner(path)
    if (again && again.text === seen && isStale(again, isAlive)) await rm(path, {force: true})
  } finally {
    await rm(breaker, {force: true})
  }
}

function describeOwner(owner: LockOwner | undefined): string {
  if (!owner) return 'another create-gateway command'
  const where = owner.host === hostname() ? '' : ` on ${owner.host}`
  return `\`${owner.command}\` by pid ${owner.pid}${where} since ${owner.since}`
}

/**
 * Take the project's lock, waiting up to `waitMs` while another command holds it. Fails with
 * "project is busy" naming the holder. Release it with `release()` in a `finally`.
 */
export async function acquireProjectLock(dir: string, options: LockOptions): Promise<ProjectLock> {
  const root = resolve(dir)
  const path = join(root, LOCK_FILE)
  const clock = options.clock ?? systemClock
  const isAlive = options.isAlive ?? processIsAlive
  const deadline = clock.now() + (options.waitMs ?? 0)
  const owner: LockOwner = {
    pid: process.pid,
    host: hostname(),
    command: options.command,
    since: new Date().toISOString(),
    token: randomBytes(8).toString('hex'),
  }
  let announced = false
  for (;;) {
    if (await createExclusive(path, `${JSON.stringify(owner)}\n`)) break
    const found = await readOwner(path)
    if (!found) continue
    if (isStale(found, isAlive)) {
      await breakStaleLock(root, path, found.text, isAlive)
      continue
    }

    if (clock.now() >= deadline) {
      const waited = options.waitMs ? ` (waited ${Math.round(options.waitMs / 1000)} s)` : ''
      throw new ProjectBusyError(`The project is busy: ${describeOwner(found.owner)}${waited}`, {
        owner: found.owner,
        hint: `Wait for it to finish and run this again${options.waitMs ? '' : ' (`scale` can queue behind it with --wait-lock SECONDS)'}. If no such command runs, delete ${path}.`,
      })
    }

    if (!announced) {
      options.onWait?.(found.owner)
      announced = true
    }

    await clock.sleep(Math.min(POLL_INTERVAL_MS, Math.max(0, deadline - clock.now())))
  }

  let released = false
  const release = async () => {
    if (released) return
    released = true
    // Only our own lock: if it was broken and retaken (we were presumed dead), leave it alone.
    const current = await readOwner(path)
    if (current?.owner?.token === owner.token) await rm(path, {force: true})
  }

  return {path, owner, release}
}

/** Run `work` holding the project lock, so `up`, `down` and `scale` never change one stack at once. */
export async function withProjectLock<T>(dir: string, options: LockOptions, work: () => Promise<T>): Promise<T> {
  const lock = await acquireProjectLock(dir, options)
  try {
    return await work()
  } finally {
    await lock.release()
  }
}
