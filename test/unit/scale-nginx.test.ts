import {describe, expect, it} from 'vitest'

import type {LogOptions} from '../../src/docker/engine.js'
import {errorLogMark, errorsSince, parseProbe, probeScript} from '../../src/gateway/nginx.js'
import {logStream, type FakeLogEntry} from '../helpers/fake-engine.js'
import {
  listsReplica,
  markUpstreamMembership,
  parseUpstreams,
  renderUpstreamsWith,
  upstreamHosts,
} from '../../src/gateway/upstreams.js'
import {describeStatus} from '../../src/docker/describe.js'
import type {StatusRow} from '../../src/docker/status.js'
import {parseManifest} from '../../src/manifest/load.js'
import {renderUpstreams} from '../../src/render/gateway.js'
import {writeFileSync, mkdirSync} from 'node:fs'
import {join} from 'node:path'
import {tempDir} from '../helpers/cli.js'

const stat = (pid: number, ppid: number) =>
  `${pid} (nginx) S ${ppid} 1 1 0 -1 4194624 382 0 0 0 6 5 0 0 20 0 1 0 135236`

describe('parseProbe', () => {
  it('finds the master, its serving workers and the ones shutting down', () => {
    const output = [
      `${stat(1, 0)}\tnginx: master process nginx -g daemon off;`,
      `${stat(30, 1)}\tnginx: worker process`,
      `${stat(31, 1)}\tnginx: worker process`,
      `${stat(8, 1)}\tnginx: worker process is shutting down`,
      `77 (sh) S 0 77 77 0 -1\tsh -c for d in /proc/[0-9]*; do ...`,
      // A comm with spaces and parentheses must not shift the fields.
      `90 (weird (name) x) S 1 1\tnginx: worker process`,
    ].join('\n')
    const snapshot = parseProbe(output)
    expect(snapshot.master).toBe(1)
    expect(snapshot.workers).toEqual([30, 31, 90])
    expect(snapshot.exiting).toEqual([8])
    expect(snapshot.errors).toEqual([])
    expect(snapshot.processes.map((process) => process.pid)).toEqual([1, 30, 31, 8, 77, 90])
  })

  it('has no master when NGINX does not run', () => {
    expect(parseProbe('1 (sh) S 0 1 1\tsh\n')).toMatchObject({master: undefined, workers: [], exiting: []})
    expect(probeScript()).toContain('/proc/[0-9]*')
  })
})

describe('the error log after a reload (the gateway container stderr, through the engine)', () => {
  const entries: FakeLogEntry[] = []
  const engine = {
    containers: async () => [],
    containerLogs: async (_id: string, options: LogOptions) => logStream(entries, options),
  }
  const gateway = {id: 'gw', name: 'demo-gateway-1'}
  const write = (stream: FakeLogEntry['stream'], time: string, text: string) => entries.push({stream, time, text})

  it('keeps only [emerg]/[alert] lines of stderr written after the mark, including ones in the same second', async () => {
    write('stderr', '2030-01-01T10:00:00.5Z', '2030/01/01 10:00:00 [emerg] 1#1: an old failure')
    write('stdout', '2030-01-01T10:00:01.1Z', '{"status":200}')
    const mark = await errorLogMark(engine, gateway)
    write('stderr', '2030-01-01T10:00:01.12Z', '2030/01/01 10:00:01 [notice] 1#1: signal process started')
    write(
      'stderr',
      '2030-01-01T10:00:01.2Z',
      '2030/01/01 10:00:01 [emerg] 1#1: host not found in upstream "x-web-4:8000"',
    )
    write('stdout', '2030-01-01T10:00:02Z', '{"status":200,"uri":"/[emerg]"}')
    write('stderr', '2030-01-01T10:00:03Z', '2030/01/01 10:00:03 [alert] 1#1: worker process exited')
    expect(await errorsSince(engine, gateway, mark)).toEqual([
      '2030/01/01 10:00:01 [emerg] 1#1: host not found in upstream "x-web-4:8000"',
      '2030/01/01 10:00:03 [alert] 1#1: worker process exited',
    ])
  })

  it('reads the whole log when it was empty at the mark', async () => {
    const mark = await errorLogMark({...engine, containerLogs: async (_id, options) => logStream([], options)}, gateway)
    expect(await errorsSince(engine, gateway, mark)).toHaveLength(3)
  })
})

const manifest = parseManifest({
  version: 1,
  name: 'demo',
  domain: 'api.localhost',
  services: {
    web: {kind: 'django', replicas: 2},
    api: {kind: 'django', replicas: 1, port: 8001},
    payment: {kind: 'external', url: 'https://payments.example.com'},
  },
  routes: [
    {path: '/', service: 'web'},
    {path: '/api/', service: 'api'},
    {path: '/payment/', service: 'payment'},
  ],
})

describe('upstreams.conf as data', () => {
  it('reads back what renderUpstreams writes: the service names init writes, or the replicas scale lists', async () => {
    const text = await renderUpstreams(manifest)
    expect(parseUpstreams(text)).toEqual({web_upstream: ['web'], api_upstream: ['api']})
    expect(upstreamHosts(manifest, text)).toEqual({web: ['web'], api: ['api']})
    const scaled = await renderUpstreams(manifest, {web: ['demo-web-1', 'demo-web-2']})
    expect(parseUpstreams(scaled)).toEqual({web_upstream: ['demo-web-1', 'demo-web-2'], api_upstream: ['api']})
    expect(upstreamHosts(manifest, scaled)).toEqual({web: ['demo-web-1', 'demo-web-2'], api: ['api']})
    expect(upstreamHosts(manifest, undefined)).toEqual({})
  })

  it('changes only the scaled service and keeps what the file lists for the others', async () => {
    const current = {web: ['demo-web-1', 'demo-web-2'], api: ['demo-api-1', 'demo-api-2']}
    const text = await renderUpstreamsWith(manifest, current, {web: ['demo-web-1', 'demo-web-2', 'demo-web-3']})
    expect(parseUpstreams(text)).toEqual({
      web_upstream: ['demo-web-1', 'demo-web-2', 'demo-web-3'],
      api_upstream: ['demo-api-1', 'demo-api-2'],
    })
    expect(text).toContain('server demo-web-3:8000 max_fails=3 fail_timeout=10s;')

    // A service that still has the service-name server keeps it; one missing from the file gets it.
    const fromInit = await renderUpstreamsWith(
      manifest,
      {web: ['web'], api: ['api']},
      {web: ['demo-web-1', 'demo-web-2', 'demo-web-3']},
    )
    expect(parseUpstreams(fromInit)).toEqual({
      web_upstream: ['demo-web-1', 'demo-web-2', 'demo-web-3'],
      api_upstream: ['api'],
    })
    expect(parseUpstreams(await renderUpstreamsWith(manifest, {}, {web: ['demo-web-1']}))).toEqual({
      web_upstream: ['demo-web-1'],
      api_upstream: ['api'],
    })
  })

  it('takes a server named after the service as every replica of it, and only of it', () => {
    expect(listsReplica(['web'], 'web', 'demo-web-1')).toBe(true)
    expect(listsReplica(['web'], 'web', 'demo-web-7')).toBe(true)
    // Compose v1 names its containers <project>_web_1: the service name still covers them.
    expect(listsReplica(['web'], 'web', 'demo_web_1')).toBe(true)
    expect(listsReplica(['api'], 'web', 'demo-web-1')).toBe(false)
    expect(listsReplica(['demo-web-1', 'demo-web-2'], 'web', 'demo-web-2')).toBe(true)
    expect(listsReplica(['demo-web-1', 'demo-web-2'], 'web', 'demo-web-3')).toBe(false)
    expect(listsReplica([], 'web', 'demo-web-1')).toBe(false)
    expect(listsReplica(undefined, 'web', 'demo-web-1')).toBe(false)
  })

  it('marks which replicas status rows are in the upstream, and shows an UPSTREAM column', async () => {
    const dir = tempDir('cg-upstream-')
    mkdirSync(join(dir, 'gateway/conf.d'), {recursive: true})
    writeFileSync(
      join(dir, 'gateway/conf.d/upstreams.conf'),
      await renderUpstreamsWith(manifest, {}, {web: ['demo-web-1']}),
    )
    const row = (service: string, name: string): StatusRow => ({
      service,
      name,
      number: 1,
      state: 'running',
      health: 'healthy',
      ports: [],
      image: 'x',
    })
    const rows = await markUpstreamMembership(dir, manifest, [
      row('web', 'demo-web-1'),
      row('web', 'demo-web-2'),
      row('api', 'demo-api-1'),
      row('gateway', 'demo-gateway-1'),
    ])
    expect(rows.map((item) => item.inUpstream)).toEqual([true, false, true, undefined])
    const table = describeStatus('demo', rows).split('\n')
    expect(table[0]).toMatch(/^SERVICE\s+NAME\s+STATE\s+HEALTH\s+UPSTREAM\s+PORTS\s+IMAGE$/)
    expect(table[2]).toMatch(/demo-web-2\s+running\s+healthy\s+no\s/)
    expect(table[4]).toMatch(/demo-gateway-1\s+running\s+healthy\s+-\s/)
    // No file: no column, nothing claimed.
    expect(
      (await markUpstreamMembership(tempDir('cg-upstream-'), manifest, [row('web', 'demo-web-1')]))[0]!.inUpstream,
    ).toBeUndefined()
  })

  it('marks every replica of a service as in the upstream when the file names the service, as init writes it', async () => {
    const dir = tempDir('cg-upstream-')
    mkdirSync(join(dir, 'gateway/conf.d'), {recursive: true})
    writeFileSync(join(dir, 'gateway/conf.d/upstreams.conf'), await renderUpstreams(manifest))
    const row = (service: string, name: string): StatusRow => ({
      service,
      name,
      number: 1,
      state: 'running',
      health: 'healthy',
      ports: [],
      image: 'x',
    })
    const rows = await markUpstreamMembership(dir, manifest, [
      row('web', 'demo-web-1'),
      row('web', 'demo-web-2'),
      row('web', 'demo-web-3'),
      row('api', 'demo-api-1'),
      row('gateway', 'demo-gateway-1'),
    ])
    expect(rows.map((item) => item.inUpstream)).toEqual([true, true, true, true, undefined])
    expect(describeStatus('demo', rows).split('\n')[3]).toMatch(/demo-web-3\s+running\s+healthy\s+yes\s/)

    // Once scale lists web's replicas by name, that list decides for web; api keeps its service name.
    writeFileSync(
      join(dir, 'gateway/conf.d/upstreams.conf'),
      await renderUpstreams(manifest, {web: ['demo-web-1', 'demo-web-2']}),
    )
    const scaled = await markUpstreamMembership(dir, manifest, [
      row('web', 'demo-web-1'),
      row('web', 'demo-web-3'),
      row('api', 'demo-api-2'),
    ])
    expect(scaled.map((item) => item.inUpstream)).toEqual([true, false, true])
  })
})
