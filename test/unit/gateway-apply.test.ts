import {existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {describe, expect, it} from 'vitest'

import {changeGateway, GatewayChangeError, WrittenFiles, type GatewayFile} from '../../src/gateway/apply.js'
import {GatewayConfigError, GatewayReloadError, type GatewayRef} from '../../src/gateway/nginx.js'
import {rejectionOf} from '../helpers/errors.js'
import {fakeClock} from '../helpers/fake-engine.js'
import {runningStack, UPSTREAMS} from '../helpers/fake-nginx.js'

/**
 * The one transaction every gateway change goes through, against the fake NGINX: what reaches the
 * gateway and what is on disk after each way it can fail.
 */

const EXTRA = 'gateway/conf.d/zz-extra.conf'

async function gatewayFixture() {
  const stack = await runningStack(1, 'replicas')
  const gateway = (await stack.engine.containers({})).find((container) => container.name === 'demo-gateway-1')!
  const ref: GatewayRef = {id: gateway.id, name: gateway.name}
  const upstreamsBefore = readFileSync(join(stack.dir, UPSTREAMS))
  const files = (upstreams: string, extra?: string): GatewayFile[] => [
    {path: join(stack.dir, UPSTREAMS), content: upstreams},
    ...(extra === undefined ? [] : [{path: join(stack.dir, EXTRA), content: extra, mode: 0o640}]),
  ]
  const disk = () => ({
    upstreams: readFileSync(join(stack.dir, UPSTREAMS)),
    extra: existsSync(join(stack.dir, EXTRA)) ? readFileSync(join(stack.dir, EXTRA), 'utf8') : undefined,
  })
  return {...stack, ref, upstreamsBefore, files, disk, options: {clock: fakeClock(), reloadTimeoutMs: 2_000}}
}

const NEW_UPSTREAMS = 'upstream web_upstream { server demo-web-1:8000; server demo-web-2:8000; }\n'

describe('changeGateway', () => {
  it('writes the files, tests, reloads and confirms new workers', async () => {
    const {engine, ref, files, disk, dir, options} = await gatewayFixture()
    const progress: string[] = []
    const reload = await changeGateway(engine, ref, files(NEW_UPSTREAMS, 'map $x $y {}\n'), {
      ...options,
      onProgress: (line) => progress.push(line),
    })
    expect(engine.calls).toEqual(['exec nginx -t demo-gateway-1', 'exec nginx -s reload demo-gateway-1'])
    expect(engine.reloadedWith).toEqual([NEW_UPSTREAMS])
    expect(reload).toMatchObject({oldWorkers: [10, 11], newWorkers: [100, 101]})
    expect(disk()).toEqual({upstreams: Buffer.from(NEW_UPSTREAMS), extra: 'map $x $y {}\n'})
    expect(statSync(join(dir, EXTRA)).mode & 0o777).toBe(0o640)
    expect(progress).toEqual([
      'Testing the configuration: nginx -t in demo-gateway-1',
      'Reloading NGINX in demo-gateway-1',
    ])
  })

  it('nginx -t refuses: every file back byte for byte (a new one removed), no reload sent', async () => {
    const {engine, ref, files, disk, upstreamsBefore, options} = await gatewayFixture()
    engine.testFailure =
      '2030/01/01 10:00:00 [emerg] 7#7: unknown directive "mapp" in /etc/nginx/conf.d/zz-extra.conf:1'
    const error = await rejectionOf(
      changeGateway(engine, ref, files(NEW_UPSTREAMS, 'mapp $x $y {}\n'), options),
      GatewayChangeError,
    )
    expect(error.cause).toBeInstanceOf(GatewayConfigError)
    expect((error.cause as GatewayConfigError).output).toContain('unknown directive "mapp"')
    expect(error.rollback).toEqual({restored: true, reloaded: false})
    expect(disk()).toEqual({upstreams: upstreamsBefore, extra: undefined})
    expect(engine.calls).toEqual(['exec nginx -t demo-gateway-1'])
  })

  it('the master refuses the reload: files back, and NGINX reloaded onto them', async () => {
    const {engine, ref, files, disk, upstreamsBefore, options} = await gatewayFixture()
    engine.rejectReloads = 1
    const error = await rejectionOf(changeGateway(engine, ref, files(NEW_UPSTREAMS), options), GatewayChangeError)
    expect(error.cause).toBeInstanceOf(GatewayReloadError)
    expect(error.message).toContain('host not found in upstream "demo-web-9:8000"')
    expect(error.rollback).toMatchObject({restored: true, reloaded: true, reload: {newWorkers: [100, 101]}})
    expect(error.rollback.failure).toBeUndefined()
    expect(engine.reloadedWith).toEqual([NEW_UPSTREAMS, upstreamsBefore.toString('utf8')])
    expect(disk().upstreams.equals(upstreamsBefore)).toBe(true)
  })

  it('keepNewFiles: a file that did not exist stays for inspection, and nothing is reloaded back onto a half-restored disk', async () => {
    const {engine, ref, files, disk, upstreamsBefore, options} = await gatewayFixture()
    engine.rejectReloads = 1
    const error = await rejectionOf(
      changeGateway(engine, ref, files(NEW_UPSTREAMS, 'map $x $y {}\n'), {...options, keepNewFiles: true}),
      GatewayChangeError,
    )
    expect(error.rollback).toEqual({restored: false, reloaded: false})
    expect(disk()).toEqual({upstreams: upstreamsBefore, extra: 'map $x $y {}\n'})
    expect(engine.calls.filter((call) => call.includes('reload'))).toHaveLength(1)
  })

  it('a file that cannot be put back: the failure is reported and the gateway is not reloaded onto a mixed disk', async () => {
    const {engine, ref, files, dir, options} = await gatewayFixture()
    engine.testFailure = 'nginx: [emerg] unexpected "}"'
    // Between the write and the restore, the folder becomes a file: the restore's write fails.
    engine.beforeCommand = () => {
      rmSync(join(dir, 'gateway/conf.d'), {recursive: true})
      writeFileSync(join(dir, 'gateway/conf.d'), 'not a folder')
    }
    const error = await rejectionOf(changeGateway(engine, ref, files(NEW_UPSTREAMS), options), GatewayChangeError)
    expect(error.cause).toBeInstanceOf(GatewayConfigError)
    expect(error.rollback.restored).toBe(false)
    expect(error.rollback.reloaded).toBe(false)
    expect(error.rollback.failure).toMatch(/conf\.d/)
  })

  it('a write that fails half-way puts back the files already written and never asks NGINX', async () => {
    const {engine, dir, upstreamsBefore} = await gatewayFixture()
    mkdirSync(join(dir, 'blocked'))
    writeFileSync(join(dir, 'blocked/file'), 'a file where a folder is needed')
    await expect(
      WrittenFiles.write([
        {path: join(dir, UPSTREAMS), content: NEW_UPSTREAMS},
        {path: join(dir, 'blocked/file/inner.conf'), content: 'x'},
      ]),
    ).rejects.toThrow()
    expect(readFileSync(join(dir, UPSTREAMS)).equals(upstreamsBefore)).toBe(true)
    expect(engine.calls).toEqual([])
  })

  it("reload 'signal': `nginx -s reload` without the worker proof, and the same restore on failure", async () => {
    const {engine, ref, files, disk, upstreamsBefore, options} = await gatewayFixture()
    await expect(changeGateway(engine, ref, files(NEW_UPSTREAMS), {...options, reload: 'signal'})).resolves.toBe(
      undefined,
    )
    expect(engine.calls).toEqual(['exec nginx -t demo-gateway-1', 'exec nginx -s reload demo-gateway-1'])
    // No look at the processes after the reload (a look would have seen the old workers exit).
    expect(engine.exiting).toEqual([10, 11])

    engine.testFailure = 'nginx: [emerg] cannot load certificate'
    const error = await rejectionOf(
      changeGateway(engine, ref, files('upstream web_upstream { server demo-web-3:8000; }\n'), {
        ...options,
        reload: 'signal',
      }),
      GatewayChangeError,
    )
    expect(error.rollback).toEqual({restored: true, reloaded: false})
    expect(disk().upstreams.toString('utf8')).toBe(NEW_UPSTREAMS)
    expect(upstreamsBefore.toString('utf8')).not.toBe(NEW_UPSTREAMS)
  })

  it('WrittenFiles.none(): a reload of the files on disk, nothing to put back and no reload back', async () => {
    const {engine, ref, options} = await gatewayFixture()
    engine.rejectReloads = 1
    const {applyWrittenFiles} = await import('../../src/gateway/apply.js')
    const error = await rejectionOf(applyWrittenFiles(engine, ref, WrittenFiles.none(), options), GatewayChangeError)
    expect(error.rollback).toEqual({restored: true, reloaded: false})
    expect(engine.calls.filter((call) => call.includes('reload'))).toHaveLength(1)
  })
})
