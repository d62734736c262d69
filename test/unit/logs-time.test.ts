import {describe, expect, it} from 'vitest'

import {parseLogTime} from '../../src/docker/logs.js'
import {UsageError} from '../../src/errors.js'

describe('logs --since / --until times', () => {
  const now = new Date('2026-12-05T09:00:00Z')
  const nowSeconds = now.getTime() / 1000

  it('reads durations back from now, date-times and Unix seconds as docker compose logs does', () => {
    expect(parseLogTime('10m', 'since', now)).toBe(nowSeconds - 600)
    expect(parseLogTime('1h30m', 'since', now)).toBe(nowSeconds - 5400)
    expect(parseLogTime('2d', 'since', now)).toBe(nowSeconds - 172_800)
    expect(parseLogTime('2026-12-05T08:00:00Z', 'since', now)).toBe(nowSeconds - 3600)
    expect(parseLogTime('2026-12-05T10:00:00+02:00', 'until', now)).toBe(nowSeconds - 3600)
    expect(parseLogTime('1764921600', 'since', now)).toBe(1_764_921_600)
  })

  it.each(['yesterday', '10 minutes', '-5m', '2026-13-45x'])('refuses %j naming the flag (exit 2)', (text) => {
    expect(() => parseLogTime(text, 'until', now)).toThrow(UsageError)
    expect(() => parseLogTime(text, 'until', now)).toThrow(/^--until: must be a duration such as 10m/)
  })
})
