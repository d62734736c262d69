import {describe, expect, it} from 'vitest'

import {UsageError} from '../../src/errors.js'
import {parseCheckList, selectChecks} from '../../src/verify/run.js'
import {CHECK_IDS} from '../../src/verify/types.js'

function usageError(fn: () => unknown): UsageError {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError)
    return error as UsageError
  }

  throw new Error('expected a UsageError')
}

describe('--only / --skip', () => {
  it('runs every check in the canonical order by default', () => {
    expect(selectChecks()).toEqual([...CHECK_IDS])
    expect(selectChecks([], [])).toEqual([...CHECK_IDS])
  })

  it('keeps the canonical order whatever order --only names them in', () => {
    expect(selectChecks(['logs,containers', 'tls'])).toEqual(['containers', 'tls', 'logs'])
  })

  it('accepts spaces and repeated flags', () => {
    expect(parseCheckList([' auth , routes', 'balance'], '--only')).toEqual(['auth', 'routes', 'balance'])
  })

  it('skips what --skip names, also after --only', () => {
    expect(selectChecks(undefined, ['rate-limit'])).toEqual(CHECK_IDS.filter((id) => id !== 'rate-limit'))
    expect(selectChecks(['tls', 'auth'], ['auth'])).toEqual(['tls'])
  })

  it('refuses unknown ids with exit code 2 and lists the known ones', () => {
    const error = usageError(() => selectChecks(['tls', 'speed', 'ratelimit']))
    expect(error.exitCode).toBe(2)
    expect(error.message).toBe('--only: unknown check "speed", "ratelimit"')
    expect(error.hint).toContain('containers, config, redirect, tls, routes, auth, cache, balance, rate-limit, logs')
    expect(usageError(() => selectChecks(undefined, ['nope'])).message).toMatch(/^--skip: unknown check "nope"/)
  })

  it('refuses a selection that leaves nothing to run', () => {
    expect(usageError(() => selectChecks(['tls'], ['tls'])).message).toMatch(/leave no check/)
    expect(usageError(() => parseCheckList([' , '], '--only')).message).toMatch(/name at least one check/)
  })
})
