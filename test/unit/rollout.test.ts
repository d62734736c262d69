import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {describe, expect, it} from 'vitest'

import {describeUp} from '../../src/docker/describe.js'
import {LABELS} from '../../src/docker/spec.js'
import {upStack, type UpOptions} from '../../src/docker/up.js'
import {InterruptedError, OperationError} from '../../src/errors.js'
import {rollOutReplicas} from '../../src/gateway/rollout.js'
import {loadManifest, serializeManifest} from '../../src/manifest/load.js'
import type {Manifest} from '../../src/manifest/schema.js'
import {rejectionOf} from '../helpers/errors.js'
import {fakeClock} from '../helpers/fake-engine.js'
import {runningStack, UPSTREAMS, type FakeNginxEngine} from '../helpers/fake-nginx.js'

/**
 * `up` on a running stack whose replicas changed: the rolling update behind the gateway, on the fake
 * engine and its fake NGINX (reloads record the upstreams.conf they loaded).
 */

function servers(text: string): string[] {
  return [...text.matchAll(/server (\S+):8000/g)].map((match) => match[1]!)
}

/** A new setting for every web replica: their configuration hash changes, so `up` must replace them. */
function changeConfiguration(manifest: Manifest): void {
  const web = manifest.services.web
  if (web?.kind !== 'django') throw new Error('the test project has a django service web')
  web.limits = {...web.limits, memory: '768m'}
}

function webHashes(engine: FakeNginxEngine): Record<string, string | undefined> {
  return Object.fromEntries(
    [...engine.containersById.values()]
      .filter((container) => container.labels[LABELS.service] === 'web')
      .map((container) => [container.name, container.labels[LABELS.configHash]]),
  )
}

function up(engine: FakeNginxEngine, dir: string, manifest: Manifest, extra: Partial<UpOptions> = {}) {
  return upStack(dir, manifest, {
    engine,
    clock: fakeClock(),
    env: {},
    timeoutMs: 60_000,
    rollout: rollOutReplicas,
    ...extra,
  })
}

function gatewayId(engine: FakeNginxEngine): string {
  return [...engine.containersById.values()].find((container) => container.name === 'demo-gateway-1')!.id
}

describe('up behind a running gateway: the rolling update', () => {
  it('replaces each changed replica in turn, an extra one serving meanwhile; every reload keeps at least as many replicas as ran', async () => {
    const {engine, dir, manifest} = await runningStack(2, 'replicas')
    const gateway = gatewayId(engine)
    const before = webHashes(engine)
    changeConfiguration(manifest)
    const progress: string[] = []
    const result = await up(engine, dir, manifest, {onProgress: (line) => progress.push(line)})

    expect(engine.calls.filter((call) => !call.startsWith('exec nginx -t') && !call.startsWith('build'))).toEqual([
      'create demo-web-3',
      'start demo-web-3',
      'exec nginx -s reload demo-gateway-1',
      'stop demo-web-1',
      'remove demo-web-1',
      'create demo-web-1',
      'start demo-web-1',
      'exec nginx -s reload demo-gateway-1',
      'stop demo-web-2',
      'remove demo-web-2',
      'create demo-web-2',
      'start demo-web-2',
      'exec nginx -s reload demo-gateway-1',
      'stop demo-web-3',
      'remove demo-web-3',
    ])
    expect(engine.reloadedWith.map(servers)).toEqual([
      ['demo-web-2', 'demo-web-3'],
      ['demo-web-1', 'demo-web-3'],
      ['demo-web-1', 'demo-web-2'],
    ])
    // Each replica left the upstream (a reload) before it was stopped.
    expect(engine.calls.indexOf('stop demo-web-1')).toBeGreaterThan(
      engine.calls.indexOf('exec nginx -s reload demo-gateway-1'),
    )
    expect(servers(readFileSync(join(dir, UPSTREAMS), 'utf8'))).toEqual(['demo-web-1', 'demo-web-2'])
    const after = webHashes(engine)
    expect(Object.keys(after).sort()).toEqual(['demo-web-1', 'demo-web-2'])
    expect(after['demo-web-1']).not.toBe(before['demo-web-1'])
    expect(after['demo-web-2']).not.toBe(before['demo-web-2'])
    expect(gatewayId(engine)).toBe(gateway)
    expect(result.containers.filter((row) => row.service === 'web').map((row) => [row.name, row.action])).toEqual([
      ['demo-web-1', 'recreate'],
      ['demo-web-2', 'recreate'],
    ])
    expect(progress).toContain('Gateway: web -> demo-web-2, demo-web-3')
    expect(progress).toContain(
      'Rolling update of web behind the running gateway: replacing demo-web-1, demo-web-2 one at a time (demo-web-3 serves meanwhile)',
    )
    expect(result.rolled).toEqual(['web'])
    expect(describeUp(result)).toContain(
      'demo is up (0.0 s): 2 recreated, 1 unchanged.\nRolling update of web: one replica at a time behind the running gateway, which kept serving.',
    )

    // And it has converged: up again changes nothing.
    engine.calls.length = 0
    expect((await up(engine, dir, manifest)).changed).toBe(false)
    expect(engine.calls.filter((call) => !call.startsWith('build'))).toEqual([])
  })

  it('on the resolve form: each step moves the service name (new one in, then old one out, then SIGTERM), no nginx command', async () => {
    const {engine, dir, manifest} = await runningStack(2, 'dns')
    const before = readFileSync(join(dir, UPSTREAMS))
    changeConfiguration(manifest)
    const progress: string[] = []
    await up(engine, dir, manifest, {onProgress: (line) => progress.push(line)})
    expect(engine.calls.filter((call) => call.includes('nginx'))).toEqual([])
    expect(readFileSync(join(dir, UPSTREAMS)).equals(before)).toBe(true)
    const steps = progress
      .filter((line) => /^Gateway: (giving|taking)|^Stopping/.test(line))
      .map((line) => line.split(' (')[0])
    expect(steps).toEqual([
      'Gateway: giving demo-web-3 the name web',
      'Gateway: taking the name web from demo-web-1',
      'Stopping demo-web-1',
      'Gateway: giving demo-web-1 the name web',
      'Gateway: taking the name web from demo-web-2',
      'Stopping demo-web-2',
      'Gateway: giving demo-web-2 the name web',
      'Gateway: taking the name web from demo-web-3',
      'Stopping demo-web-3',
    ])
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1', 'demo-web-2'])
    for (const name of ['demo-web-1', 'demo-web-2'])
      expect(Object.values(engine.endpointsOf.get(engine.byName(name).id)!).map((e) => e.aliases)).toEqual([
        [name, 'web'],
      ])
  })

  it('starts from the service-name upstream init writes, and ends with the replicas by name', async () => {
    const {engine, dir, manifest} = await runningStack(1, 'service')
    expect(servers(readFileSync(join(dir, UPSTREAMS), 'utf8'))).toEqual(['web'])
    changeConfiguration(manifest)
    await up(engine, dir, manifest)
    // One replica: the extra one serves alone while it is replaced, so the service never stops.
    expect(engine.reloadedWith.map(servers)).toEqual([['demo-web-2'], ['demo-web-1']])
    expect(servers(readFileSync(join(dir, UPSTREAMS), 'utf8'))).toEqual(['demo-web-1'])
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1'])
  })

  it('a new configuration that never gets healthy fails on the extra replica, before any old one is touched', async () => {
    const {engine, dir, manifest} = await runningStack(2, 'replicas')
    const upstreams = readFileSync(join(dir, UPSTREAMS))
    const before = webHashes(engine)
    changeConfiguration(manifest)
    engine.behaviour.set('demo-web-3', {exitCode: 3, logs: ['ImproperlyConfigured: bad setting']})
    const error = await rejectionOf(up(engine, dir, manifest), OperationError)
    expect(error.message).toContain('The rolling update stopped: demo-web-3 (web) exited with code 3')
    expect(error.message).toContain('ImproperlyConfigured: bad setting')
    expect(error.message).toContain('web runs demo-web-1 (old configuration), demo-web-2 (old configuration).')
    expect(error.hint).toContain('run `create-gateway up` again')
    expect(engine.reloadedWith).toEqual([])
    expect(readFileSync(join(dir, UPSTREAMS)).equals(upstreams)).toBe(true)
    expect(webHashes(engine)).toEqual(before)
  })

  it('a replica that fails half-way leaves the gateway on the healthy ones, and up again carries on', async () => {
    const {engine, dir, manifest} = await runningStack(2, 'replicas')
    changeConfiguration(manifest)
    // The old demo-web-2 runs already; this applies to the new one only.
    engine.behaviour.set('demo-web-2', {exitCode: 1})
    const error = await rejectionOf(up(engine, dir, manifest), OperationError)
    expect(error.message).toContain('demo-web-2 (web) exited with code 1')
    expect(error.message).toContain('web runs demo-web-1 (new configuration), demo-web-3 (new configuration).')
    expect(error.message).toContain('The gateway serves web: demo-web-1, demo-web-3')
    expect(servers(readFileSync(join(dir, UPSTREAMS), 'utf8'))).toEqual(['demo-web-1', 'demo-web-3'])
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1', 'demo-web-3'])

    engine.behaviour.delete('demo-web-2')
    engine.reloadedWith.length = 0
    await up(engine, dir, manifest)
    // demo-web-3 is beyond the count now: it goes out with the first step, and demo-web-2 comes in.
    expect(engine.reloadedWith.map(servers)).toEqual([['demo-web-1', 'demo-web-2']])
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1', 'demo-web-2'])
  })

  it('a count changed in gateway.yaml: new replicas join after their healthcheck, extra ones leave before they stop', async () => {
    const {engine, dir, manifest} = await runningStack(2, 'replicas')
    const three = await saveReplicas(dir, manifest, 3)
    await up(engine, dir, three)
    expect(engine.reloadedWith.map(servers)).toEqual([['demo-web-1', 'demo-web-2', 'demo-web-3']])

    engine.calls.length = 0
    engine.reloadedWith.length = 0
    const one = await saveReplicas(dir, three, 1)
    await up(engine, dir, one)
    expect(engine.reloadedWith.map(servers)).toEqual([['demo-web-1']])
    const reload = engine.calls.indexOf('exec nginx -s reload demo-gateway-1')
    expect(engine.calls.indexOf('stop demo-web-2')).toBeGreaterThan(reload)
    expect(engine.calls.indexOf('stop demo-web-3')).toBeGreaterThan(reload)
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1'])
  })

  it('Ctrl-C between replicas stops with the gateway on healthy replicas and says how to carry on', async () => {
    const {engine, dir, manifest} = await runningStack(2, 'replicas')
    changeConfiguration(manifest)
    const controller = new AbortController()
    const error = await rejectionOf(
      up(engine, dir, manifest, {
        signal: controller.signal,
        onProgress: (line) => {
          if (line === 'Gateway: web -> demo-web-2, demo-web-3') controller.abort('SIGINT')
        },
      }),
      InterruptedError,
    )
    expect(error.message).toContain('Interrupted the rolling update.')
    expect(error.message).toContain('The gateway serves web: demo-web-2, demo-web-3')
    // demo-web-1 left the upstream and still runs, on the old configuration, until `up` carries on.
    expect(error.message).toContain(
      'web runs demo-web-1 (old configuration), demo-web-2 (old configuration), demo-web-3 (new configuration).',
    )
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1', 'demo-web-2', 'demo-web-3'])

    engine.reloadedWith.length = 0
    await up(engine, dir, manifest)
    expect(engine.reloadedWith.map(servers)).toEqual([
      ['demo-web-2', 'demo-web-4'],
      ['demo-web-1', 'demo-web-4'],
      ['demo-web-1', 'demo-web-2'],
    ])
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1', 'demo-web-2'])
  })
})

async function saveReplicas(dir: string, manifest: Manifest, replicas: number): Promise<Manifest> {
  const web = manifest.services.web!
  writeFileSync(
    join(dir, 'gateway.yaml'),
    serializeManifest({...manifest, services: {...manifest.services, web: {...web, replicas} as typeof web}}),
  )
  return loadManifest(dir)
}
