import {createServer} from 'node:net'
import {join} from 'node:path'

import {describe, expect, it} from 'vitest'

import {resolveAnswers} from '../../src/manifest/answers.js'
import {createProject} from '../../src/project/create-project.js'
import {runVerify} from '../../src/verify/run.js'
import {LOG_NAMES} from '../../src/verify/log-source.js'
import {CHECK_IDS} from '../../src/verify/types.js'
import {tempDir} from '../helpers/cli.js'

async function project(ports: {http: number; https: number} = {http: 18080, https: 18443}): Promise<string> {
  const dir = join(tempDir('cg-verify-run-'), 'demo')
  await createProject({
    dir,
    answers: await resolveAnswers({
      dir,
      yes: true,
      flags: {name: 'demo', 'http-port': String(ports.http), 'https-port': String(ports.https)},
    }),
  })
  return dir
}

/** A listener on 127.0.0.1 that counts the connections made to it: where the gateway would be. */
async function countingListener(): Promise<{port: number; connections: () => number; close: () => Promise<void>}> {
  let count = 0
  const server = createServer((socket) => {
    count += 1
    socket.destroy()
  })
  await new Promise<void>((resolve) => server.listen({host: '127.0.0.1', port: 0}, resolve))
  const address = server.address()
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    connections: () => count,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

describe('runVerify on a stack that is not running', () => {
  it('fails every selected check at once, saying the stack is down, without sending a request', async () => {
    // Something else listens on the project's ports: not one connection, so no load test either.
    const [https, http] = [await countingListener(), await countingListener()]
    const dir = await project({http: http.port, https: https.port})
    const seen: string[] = []
    const report = await runVerify({
      dir,
      engine: {
        containers: async () => [],
        exec: async () => ({exitCode: 0, stdout: '', stderr: ''}),
        gatewayLog: {names: LOG_NAMES, read: async () => ({access: '', error: ''})},
      },
      onResult: (result) => seen.push(result.id),
    })
    expect(report.ok).toBe(false)
    expect(report.checks.map((check) => check.id)).toEqual([...CHECK_IDS])
    expect(seen).toEqual([...CHECK_IDS])
    expect(report.checks[0]).toMatchObject({
      id: 'containers',
      ok: false,
      detail: 'the stack of demo is not running (no containers); start it with `create-gateway up`',
    })
    expect(
      report.checks.slice(1).every((check) => !check.ok && check.detail === 'not run: the stack is not running'),
    ).toBe(true)
    expect([https.connections(), http.connections()]).toEqual([0, 0])
    await Promise.all([https.close(), http.close()])
  })

  it('when the engine cannot be asked, runs the checks and lets each say why', async () => {
    const dir = await project()
    const report = await runVerify({
      dir,
      checks: ['containers'],
      engine: {
        containers: async () => Promise.reject(new Error('connect ENOENT /var/run/docker.sock')),
        exec: async () => ({exitCode: 1, stdout: '', stderr: ''}),
        gatewayLog: {names: LOG_NAMES, read: async () => ({access: '', error: ''})},
      },
    })
    expect(report.checks).toHaveLength(1)
    expect(report.checks[0]!.detail).toContain('connect ENOENT /var/run/docker.sock')
  })
})
