import {inspect} from 'node:util'

import {expect} from 'vitest'

/**
 * Await `promise` and return what it rejected with, typed as `type` for assertions on its fields
 * (message, hint, exitCode). Fails the test if the promise resolves or rejects with anything else.
 */
export async function rejectionOf<E extends Error>(
  promise: Promise<unknown>,
  type: new (...args: never[]) => E,
): Promise<E> {
  const error = await promise.then(
    (value: unknown) => {
      throw new Error(
        `Expected a rejection with ${type.name}, but the promise resolved with ${inspect(value, {depth: 1})}`,
      )
    },
    (error_: unknown) => error_,
  )
  expect(error).toBeInstanceOf(type)
  return error as E
}
