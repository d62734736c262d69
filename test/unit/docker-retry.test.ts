import {describe, expect, it} from 'vitest'

import {OperationError} from '../../src/errors.js'
import {retryUntil, systemClock, WaitTimeoutError} from '../../src/util/retry.js'
import {fakeClock} from '../helpers/fake-engine.js'

describe('retryUntil', () => {
  it('returns the first value that passes', async () => {
    const clock = fakeClock()
    let calls = 0
    const value = await retryUntil(
      async () => ++calls,
      (n) => n === 3,
      {timeoutMs: 10_000, intervalMs: 100, clock, describe: 'three'},
    )
    expect(value).toBe(3)
    expect(clock.elapsed()).toBe(200)
  })

  it('names what it waited for and the timeout, with the last value', async () => {
    const clock = fakeClock()
    const error = await retryUntil(
      async () => 'starting',
      () => false,
      {
        timeoutMs: 1500,
        intervalMs: 500,
        clock,
        describe: 'x-web-1 (web) to be healthy',
        explain: (state) => `health ${state}`,
      },
    ).catch((error_: unknown) => error_)
    expect(error).toBeInstanceOf(WaitTimeoutError)
    expect(error).toBeInstanceOf(OperationError)
    expect((error as Error).message).toBe(
      'Timed out after 1500 ms waiting for x-web-1 (web) to be healthy (last: health starting)',
    )
    expect(clock.elapsed()).toBe(1500)
  })

  it('tries once more at the deadline and stops early when fn throws', async () => {
    const clock = fakeClock()
    let calls = 0
    await expect(
      retryUntil(
        async () => ++calls,
        () => false,
        {timeoutMs: 250, intervalMs: 100, clock, describe: 'x'},
      ),
    ).rejects.toThrow(/250 ms/)
    expect(calls).toBe(4) // 0, 100, 200, 250

    await expect(
      retryUntil(
        async () => {
          throw new OperationError('exited with code 3')
        },
        () => true,
        {timeoutMs: 10_000, intervalMs: 100, clock, describe: 'x'},
      ),
    ).rejects.toThrow('exited with code 3')
  })

  it("ends at once with the signal's reason when aborted, even in the middle of a pause", async () => {
    const controller = new AbortController()
    let calls = 0
    const started = Date.now()
    setTimeout(() => controller.abort('SIGINT'), 20)
    const wait = retryUntil(
      async () => ++calls,
      () => false,
      {timeoutMs: 60_000, intervalMs: 30_000, clock: systemClock, describe: 'x', signal: controller.signal},
    )
    await expect(wait).rejects.toBe('SIGINT')
    expect(Date.now() - started).toBeLessThan(1000)
    expect(calls).toBe(1)
    // Aborted before the first attempt: no attempt at all.
    await expect(
      retryUntil(
        async () => ++calls,
        () => true,
        {timeoutMs: 1000, intervalMs: 100, describe: 'x', signal: controller.signal},
      ),
    ).rejects.toBe('SIGINT')
    expect(calls).toBe(1)
  })
})
