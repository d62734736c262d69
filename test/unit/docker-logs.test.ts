import {describe, expect, it} from 'vitest'

import type {LogOptions} from '../../src/docker/engine.js'
import {showAccessLog, showLogs} from '../../src/docker/logs.js'
import {LABELS} from '../../src/docker/spec.js'
import {OperationError, UsageError} from '../../src/errors.js'
import {rejectionOf} from '../helpers/errors.js'
import {FakeEngine, logStream, runningContainer, type FakeLogEntry} from '../helpers/fake-engine.js'
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

describe("logs gateway --access: the gateway's stdout through the engine", () => {
  const gateway = runningContainer({
    name: 'demo-gateway-1',
    id: 'gw',
    labels: {[LABELS.project]: 'demo', [LABELS.service]: 'gateway'},
  })
  const entries: FakeLogEntry[] = [
    {stream: 'stdout', time: '2030-01-01T10:00:00.1Z', text: '/docker-entrypoint.sh: Configuration complete'},
    {
      stream: 'stdout',
      time: '2030-01-01T10:00:01.1Z',
      text: '{"time":"t1","status":200,"method":"GET","uri":"/a","upstream_addr":"10.0.0.2:8000","request_time":0.004,"request_id":"r1"}',
    },
    {
      stream: 'stderr',
      time: '2030-01-01T10:00:01.2Z',
      text: '2030/01/01 10:00:01 [error] 30#30: *1 upstream timed out',
    },
    {stream: 'stdout', time: '2030-01-01T10:00:02.1Z', text: '{"time":"t2","status":503,"uri":"/b","request_id":"r2"}'},
  ]
  const engine = {
    containers: async () => [gateway],
    containerLogs: async (_id: string, options: LogOptions) => logStream(entries, options),
  }

  it('prints only access-log lines, readably, and --tail counts those', async () => {
    const lines: string[] = []
    await showAccessLog(engine, testManifest(), {write: (line) => lines.push(line)})
    expect(lines).toEqual(['t1 200 GET /a -> 10.0.0.2:8000 0.004s r1', 't2 503 - /b -> - - r2'])
    const last: string[] = []
    await showAccessLog(engine, testManifest(), {tail: 1, write: (line) => last.push(line)})
    expect(last).toEqual(['t2 503 - /b -> - - r2'])
  })

  it('says to start the stack when there is no gateway (exit 1)', async () => {
    const error = await rejectionOf(
      showAccessLog({...engine, containers: async () => []}, testManifest(), {write: () => {}}),
      OperationError,
    )
    expect(error.message).toBe('no gateway container exists in project demo')
  })
})
