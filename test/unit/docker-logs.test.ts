import {describe, expect, it} from 'vitest'

import {showLogs} from '../../src/docker/logs.js'
import {OperationError, UsageError} from '../../src/errors.js'
import {rejectionOf} from '../helpers/errors.js'
import {FakeEngine} from '../helpers/fake-engine.js'
import {testManifest} from '../helpers/stack-fixture.js'

describe('logs for a service without containers', () => {
  const engine = new FakeEngine(['create-gateway-offline/python:forky', 'create-gateway-offline/nginx:forky'])
  const manifest = testManifest()

  it('a service of the project while the stack is down: an operation error (exit 1) saying to start it', async () => {
    const error = await rejectionOf(
      showLogs(engine, manifest, {service: 'web', follow: false, write: () => {}}),
      OperationError,
    )
    expect(error).not.toBeInstanceOf(UsageError)
    expect(error.message).toBe('no container of service web exists in project demo')
    expect(error.hint).toBe('Start the stack with `create-gateway up`.')
  })

  it('a name that is no service and no container: bad input (exit 2) listing the services', async () => {
    const error = await rejectionOf(
      showLogs(engine, manifest, {service: 'wbe', follow: false, write: () => {}}),
      UsageError,
    )
    expect(error.message).toBe('wbe is neither a service of demo nor one of its containers')
    expect(error.hint).toBe('Services: web, gateway.')
  })
})
