import {describe, expect, it} from 'vitest'

import {parseScaleTargets} from '../../src/gateway/targets.js'
import {UsageError} from '../../src/errors.js'
import {parseManifest} from '../../src/manifest/load.js'
import {MAX_REPLICAS} from '../../src/manifest/schema.js'

const manifest = parseManifest({
  version: 1,
  name: 'demo',
  domain: 'api.localhost',
  services: {
    web: {kind: 'django', replicas: 1},
    'student-api': {kind: 'django', replicas: 2, port: 8001},
    payment: {kind: 'external', url: 'https://payments.example.com'},
  },
  routes: [
    {path: '/', service: 'web'},
    {path: '/student-api/', service: 'student-api'},
    {path: '/payment/', service: 'payment'},
  ],
})

function usageError(args: string[]): UsageError {
  try {
    parseScaleTargets(args, manifest)
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError)
    expect((error as UsageError).exitCode).toBe(2)
    return error as UsageError
  }

  throw new Error(`expected ${args.join(' ')} to be refused`)
}

describe('parseScaleTargets', () => {
  it('accepts SERVICE=COUNT for Django services, in the order given', () => {
    expect(parseScaleTargets(['web=3', 'student-api=1'], manifest)).toEqual({web: 3, 'student-api': 1})
    expect(parseScaleTargets([`web=${MAX_REPLICAS}`], manifest)).toEqual({web: MAX_REPLICAS})
    expect(parseScaleTargets(['web=03'], manifest)).toEqual({web: 3})
  })

  it.each([
    [['web=abc'], /"web=abc": the count must be a whole number from 1 to 10, not "abc"/],
    [['web=0'], /"web=0": the count must be at least 1/],
    [['web=-1'], /"web=-1": the count must be a whole number/],
    [['web=1.5'], /"web=1.5": the count must be a whole number/],
    [['web='], /"web=": the count must be a whole number/],
    [['web=1e1'], /must be a whole number/],
    [[`web=${MAX_REPLICAS + 1}`], /at most 10 replicas per service/],
    [['nosuch=2'], /gateway.yaml has no service "nosuch" \(services you can scale: web, student-api\)/],
    [['constructor=2'], /has no service "constructor"/],
    [['payment=2'], /payment is an external service \(https:\/\/payments.example.com\/?\); it has no replicas/],
    [['web'], /"web": expected SERVICE=COUNT, such as web=3/],
    [['3'], /"3": expected SERVICE=COUNT/],
    [['=3'], /the service name is missing/],
    [['web=2', 'web=3'], /"web=3": web is given more than once/],
    [[], /nothing to scale/],
  ])('refuses %j with exit code 2', (args, message) => {
    const error = usageError(args)
    expect(error.message).toMatch(message)
    expect(error.hint).toMatch(/^Nothing was changed/)
  })

  it('reports every bad argument at once', () => {
    const error = usageError(['web=abc', 'nosuch=1', 'student-api=2', 'payment=1'])
    expect(error.message).toMatch(/^3 problems with the arguments:/)
    expect(error.message).toContain('"web=abc"')
    expect(error.message).toContain('"nosuch=1"')
    expect(error.message).toContain('"payment=1"')
    expect(error.message).not.toContain('"student-api=2"')
  })
})
