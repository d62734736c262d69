import {readFileSync, existsSync, utimesSync, writeFileSync} from 'node:fs'
import {hostname} from 'node:os'
import {join} from 'node:path'

import {describe, expect, it} from 'vitest'

import {acquireProjectLock, LOCK_FILE, ProjectBusyError, withProjectLock, type LockOwner} from '../../src/util/lock.js'
import {rejectionOf} from '../helpers/errors.js'
import {tempDir} from '../helpers/cli.js'
import {fakeClock} from '../helpers/fake-engine.js'

const OTHER_PID = 999_999

function foreignLock(dir: string, extra: Partial<LockOwner> = {}): void {
  const owner: LockOwner = {
    pid: OTHER_PID,
    host: hostname(),
    command: 'scale web=3',
    since: '2030-01-01T10:00:00.000Z',
    token: 'abc',
    ...extra,
  }
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify(owner))
}

describe('acquireProjectLock', () => {
  it('creates the lock file with pid, command and time, and removes it on release', async () => {
    const dir = tempDir('cg-lock-')
    const lock = await acquireProjectLock(dir, {command: 'scale web=2'})
    const content = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')) as LockOwner
    expect(content).toMatchObject({pid: process.pid, host: hostname(), command: 'scale web=2'})
    expect(Date.parse(content.since)).not.toBeNaN()
    await lock.release()
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false)
    await lock.release()
  })

  it('says the project is busy, naming the holder, when its process runs', async () => {
    const dir = tempDir('cg-lock-')
    foreignLock(dir)
    const error = await rejectionOf(
      acquireProjectLock(dir, {command: 'scale web=1', isAlive: () => true}),
      ProjectBusyError,
    )
    expect(error).toBeInstanceOf(ProjectBusyError)
    expect(error.exitCode).toBe(1)
    expect(error.message).toBe(
      `The project is busy: \`scale web=3\` by pid ${OTHER_PID} since 2030-01-01T10:00:00.000Z`,
    )
    expect(error.hint).toContain('--wait-lock SECONDS')
    // The holder's lock is untouched.
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({pid: OTHER_PID})
  })

  it('takes over a lock whose process is gone', async () => {
    const dir = tempDir('cg-lock-')
    foreignLock(dir)
    const lock = await acquireProjectLock(dir, {command: 'scale web=1', isAlive: () => false})
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({pid: process.pid})
    await lock.release()
  })

  it('never breaks a lock held on another machine', async () => {
    const dir = tempDir('cg-lock-')
    foreignLock(dir, {host: 'some-other-host'})
    await expect(acquireProjectLock(dir, {command: 'scale web=1', isAlive: () => false})).rejects.toThrow(
      /by pid 999999 on some-other-host/,
    )
  })

  it('treats an empty lock file as busy while fresh and stale once old', async () => {
    const dir = tempDir('cg-lock-')
    writeFileSync(join(dir, LOCK_FILE), '')
    await expect(acquireProjectLock(dir, {command: 'scale web=1'})).rejects.toThrow(
      'The project is busy: another create-gateway command',
    )
    const old = new Date(Date.now() - 60_000)
    utimesSync(join(dir, LOCK_FILE), old, old)
    const lock = await acquireProjectLock(dir, {command: 'scale web=1'})
    await lock.release()
  })

  it('waits, bounded, for the holder and takes the lock once it is released', async () => {
    const dir = tempDir('cg-lock-')
    const first = await acquireProjectLock(dir, {command: 'scale web=3'})
    const clock = fakeClock()
    let sleeps = 0
    const releasing = {
      ...clock,
      sleep: async (ms: number) => {
        sleeps += 1
        if (sleeps === 3) await first.release()
        await clock.sleep(ms)
      },
    }
    const waited: Array<LockOwner | undefined> = []
    const second = await acquireProjectLock(dir, {
      command: 'scale web=1',
      waitMs: 60_000,
      clock: releasing,
      onWait: (owner) => waited.push(owner),
    })
    expect(waited.map((owner) => owner?.command)).toEqual(['scale web=3'])
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({command: 'scale web=1'})
    await second.release()
  })

  it('gives up after the wait, saying how long it waited', async () => {
    const dir = tempDir('cg-lock-')
    const first = await acquireProjectLock(dir, {command: 'scale web=3'})
    const clock = fakeClock()
    await expect(acquireProjectLock(dir, {command: 'scale web=1', waitMs: 5_000, clock})).rejects.toThrow(
      /busy: `scale web=3` by pid \d+ since .* \(waited 5 s\)/,
    )
    expect(clock.elapsed()).toBe(5_000)
    await first.release()
  })

  it('does not remove a lock that another process took over after presuming it dead', async () => {
    const dir = tempDir('cg-lock-')
    const lock = await acquireProjectLock(dir, {command: 'scale web=3'})
    foreignLock(dir)
    await lock.release()
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({pid: OTHER_PID})
  })
})

describe('withProjectLock', () => {
  it('holds the lock while the work runs, releases it after, and makes a second holder wait or fail', async () => {
    const dir = tempDir('cg-lock-')
    let inside: unknown
    const result = await withProjectLock(dir, {command: 'up'}, async () => {
      inside = await rejectionOf(acquireProjectLock(dir, {command: 'down'}), ProjectBusyError)
      return 42
    })
    expect(result).toBe(42)
    expect((inside as ProjectBusyError).message).toMatch(/busy: `up`/)
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false)
    await expect(
      withProjectLock(dir, {command: 'down'}, async () => {
        throw new Error('boom')
      }),
    ).rejects.toThrow('boom')
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false)
  })
})
