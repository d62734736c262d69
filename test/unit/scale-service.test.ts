import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {hostname} from 'node:os'
import {join} from 'node:path'

import {describe, expect, it} from 'vitest'

import {LABELS} from '../../src/docker/spec.js'
import {upStack} from '../../src/docker/up.js'
import {OperationError, UsageError} from '../../src/errors.js'
import {scaleServices, describeScale} from '../../src/gateway/scale.js'
import {loadManifest, serializeManifest} from '../../src/manifest/load.js'
import {LOCK_FILE} from '../../src/util/lock.js'
import {rejectionOf} from '../helpers/errors.js'
import {fakeClock} from '../helpers/fake-engine.js'
import {FakeNginxEngine, IMAGES, runningStack, UPSTREAMS} from '../helpers/fake-nginx.js'
import {testManifest, testProject} from '../helpers/stack-fixture.js'
import {renderCompose} from '../../src/render/compose.js'

function upstreamServers(text: string): string[] {
  return [...text.matchAll(/server (\S+):8000/g)].map((match) => match[1]!)
}

function snapshot(dir: string) {
  return {upstreams: readFileSync(join(dir, UPSTREAMS)), manifest: readFileSync(join(dir, 'gateway.yaml'))}
}

describe('scaleServices up', () => {
  it('creates the new replicas as `up` would, lists them, tests, reloads, confirms, and saves the count', async () => {
    const {engine, dir, manifest, options} = await runningStack(1, 'replicas')
    writeFileSync(join(dir, 'docker-compose.yml'), renderCompose(manifest).content)
    const progress: string[] = []
    const result = await scaleServices(dir, manifest, {web: 3}, options({onProgress: (line) => progress.push(line)}))
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1', 'demo-web-2', 'demo-web-3'])
    expect(engine.calls).toEqual([
      'create demo-web-2',
      'start demo-web-2',
      'create demo-web-3',
      'start demo-web-3',
      'exec nginx -t demo-gateway-1',
      'exec nginx -s reload demo-gateway-1',
    ])
    expect(upstreamServers(readFileSync(join(dir, UPSTREAMS), 'utf8'))).toEqual([
      'demo-web-1',
      'demo-web-2',
      'demo-web-3',
    ])
    expect(upstreamServers(engine.reloadedWith[0]!)).toEqual(['demo-web-1', 'demo-web-2', 'demo-web-3'])
    const yaml = readFileSync(join(dir, 'gateway.yaml'), 'utf8')
    expect(yaml).toContain('# my own comment, kept by scale')
    expect((await loadManifest(dir)).services.web).toMatchObject({replicas: 3})
    // docker-compose.yml says 3 too (what `render` writes), so `docker compose up -d` keeps web-3.
    expect(readFileSync(join(dir, 'docker-compose.yml'), 'utf8')).toBe(renderCompose(await loadManifest(dir)).content)
    expect(result).toMatchObject({
      project: 'demo',
      changed: true,
      reloaded: true,
      services: [
        {
          service: 'web',
          from: 1,
          to: 3,
          added: ['demo-web-2', 'demo-web-3'],
          removed: [],
          upstream: ['demo-web-1', 'demo-web-2', 'demo-web-3'],
        },
      ],
      reload: {oldWorkers: [10, 11], newWorkers: [100, 101]},
    })
    expect(progress).toContain('Reload confirmed: workers 10, 11 -> 100, 101 (0 ms)')
    expect(describeScale(result)).toContain('web: 1 -> 3 replica(s); added demo-web-2, demo-web-3')
    // The project lock is released: its file is gone.
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false)

    // Same labels as up, and `up` with the saved manifest keeps them: same configuration hash.
    const web3 = [...engine.containersById.values()].find((container) => container.name === 'demo-web-3')!
    const web1 = [...engine.containersById.values()].find((container) => container.name === 'demo-web-1')!
    expect(Object.keys(web3.labels).sort()).toEqual(Object.keys(web1.labels).sort())
    expect(web3.labels).toMatchObject({
      [LABELS.project]: 'demo',
      [LABELS.service]: 'web',
      [LABELS.number]: '3',
      [LABELS.oneoff]: 'False',
    })
    expect(web3.options.NetworkingConfig).toEqual({EndpointsConfig: {demo_internal: {Aliases: ['demo-web-3', 'web']}}})
    expect(web3.options.Env).toEqual(web1.options.Env)
    engine.calls.length = 0
    const again = await upStack(dir, await loadManifest(dir), {engine, clock: fakeClock(), env: {}})
    expect(again.changed).toBe(false)
  })

  it('does nothing when the service already runs that count and the upstream lists it', async () => {
    const {engine, dir, manifest, options} = await runningStack(2, 'replicas')
    const before = snapshot(dir)
    const result = await scaleServices(dir, manifest, {web: 2}, options())
    expect(result.changed).toBe(false)
    expect(engine.calls).toEqual([])
    expect(snapshot(dir).upstreams.equals(before.upstreams)).toBe(true)
    expect(describeScale(result)).toBe('demo: already at web=2; nothing changed (0.0 s).')
  })

  it("keeps init's service-name upstream (`server web:8000`, every replica) on a scale to the current count: no rewrite, no reload", async () => {
    const {engine, dir, manifest, options} = await runningStack(2, 'service')
    const before = snapshot(dir)
    expect(upstreamServers(before.upstreams.toString('utf8'))).toEqual(['web'])
    const result = await scaleServices(dir, manifest, {web: 2}, options())
    expect(engine.calls).toEqual([])
    expect(snapshot(dir).upstreams.equals(before.upstreams)).toBe(true)
    expect(result).toMatchObject({
      changed: false,
      reloaded: false,
      services: [{from: 2, to: 2, upstream: ['demo-web-1', 'demo-web-2']}],
    })
    expect(describeScale(result)).toBe('demo: already at web=2; nothing changed (0.0 s).')
  })

  it('rewrites the service-name upstream into replica names once the count changes', async () => {
    const {dir, manifest, options} = await runningStack(2, 'service')
    await scaleServices(dir, manifest, {web: 3}, options())
    expect(upstreamServers(readFileSync(join(dir, UPSTREAMS), 'utf8'))).toEqual([
      'demo-web-1',
      'demo-web-2',
      'demo-web-3',
    ])
  })

  it('recreates a replica the upstream lists but that was removed by hand, and reloads so NGINX resolves its new address', async () => {
    const {engine, dir, manifest, options} = await runningStack(2, 'replicas')
    const web2 = [...engine.containersById.values()].find((container) => container.name === 'demo-web-2')!
    await engine.removeContainer(web2.id)
    engine.calls.length = 0
    const before = snapshot(dir)
    const result = await scaleServices(dir, manifest, {web: 2}, options())
    expect(engine.calls).toEqual([
      'create demo-web-2',
      'start demo-web-2',
      'exec nginx -t demo-gateway-1',
      'exec nginx -s reload demo-gateway-1',
    ])
    expect(snapshot(dir).upstreams.equals(before.upstreams)).toBe(true)
    expect(result).toMatchObject({changed: true, reloaded: true, services: [{from: 1, to: 2, added: ['demo-web-2']}]})
  })

  it("from the service names init writes: lists the scaled service's replicas by name and leaves the other service's server as it is", async () => {
    const {engine, dir, manifest, options} = await runningStack(1, 'service', {replicas: 1})
    const webBlock = (text: string) => /upstream web_upstream \{[^}]*\}/.exec(text)![0]
    const apiBlock = (text: string) => /upstream api_upstream \{[^}]*\}/.exec(text)![0]
    const initial = readFileSync(join(dir, UPSTREAMS), 'utf8')
    expect(webBlock(initial)).toContain('server web:8000 max_fails=3 fail_timeout=10s;')
    expect(apiBlock(initial)).toContain('server api:8001 max_fails=3 fail_timeout=10s;')

    // Scaling api: web keeps `server web:8000` (every replica), byte for byte.
    const apiResult = await scaleServices(dir, manifest, {api: 2}, options())
    const afterApi = readFileSync(join(dir, UPSTREAMS), 'utf8')
    expect(webBlock(afterApi)).toBe(webBlock(initial))
    expect([...apiBlock(afterApi).matchAll(/server (\S+) /g)].map((match) => match[1])).toEqual([
      'demo-api-1:8001',
      'demo-api-2:8001',
    ])
    expect(engine.reloadedWith[0]).toBe(afterApi)
    expect(apiResult.services).toMatchObject([
      {service: 'api', from: 1, to: 2, added: ['demo-api-2'], upstream: ['demo-api-1', 'demo-api-2']},
    ])

    // Scaling web: its three replicas by container name, and api's list as the last scale left it.
    engine.calls.length = 0
    const webResult = await scaleServices(dir, await loadManifest(dir), {web: 3}, options())
    expect(engine.calls).toEqual([
      'create demo-web-2',
      'start demo-web-2',
      'create demo-web-3',
      'start demo-web-3',
      'exec nginx -t demo-gateway-1',
      'exec nginx -s reload demo-gateway-1',
    ])
    const afterWeb = readFileSync(join(dir, UPSTREAMS), 'utf8')
    expect(upstreamServers(afterWeb)).toEqual(['demo-web-1', 'demo-web-2', 'demo-web-3'])
    expect(afterWeb).not.toContain('server web:')
    expect(apiBlock(afterWeb)).toBe(apiBlock(afterApi))
    expect(engine.reloadedWith[1]).toBe(afterWeb)
    expect(webResult.services).toMatchObject([
      {
        service: 'web',
        from: 1,
        to: 3,
        added: ['demo-web-2', 'demo-web-3'],
        upstream: ['demo-web-1', 'demo-web-2', 'demo-web-3'],
      },
    ])
    expect((await loadManifest(dir)).services).toMatchObject({web: {replicas: 3}, api: {replicas: 2}})
  })
})

describe('scaleServices down', () => {
  it('takes the replicas out of the upstream and reloads before stopping them, highest number first', async () => {
    // From the file init writes: `server web:8000` stands for all three replicas until this rewrite.
    const {engine, dir, manifest, options} = await runningStack(3, 'service')
    expect(upstreamServers(readFileSync(join(dir, UPSTREAMS), 'utf8'))).toEqual(['web'])
    const result = await scaleServices(dir, manifest, {web: 1}, options())
    expect(engine.calls).toEqual([
      'exec nginx -t demo-gateway-1',
      'exec nginx -s reload demo-gateway-1',
      'stop demo-web-3',
      'remove demo-web-3',
      'stop demo-web-2',
      'remove demo-web-2',
    ])
    expect(upstreamServers(engine.reloadedWith[0]!)).toEqual(['demo-web-1'])
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1'])
    expect((await loadManifest(dir)).services.web).toMatchObject({replicas: 1})
    expect(result.drain).toMatchObject({drained: true, remaining: []})
    expect(result.services[0]).toMatchObject({
      from: 3,
      to: 1,
      removed: ['demo-web-3', 'demo-web-2'],
      upstream: ['demo-web-1'],
    })
  })
})

describe('scaleServices down, old workers slow to finish', () => {
  it('waits for them no longer than drainTimeoutMs, warns, and stops the leaving replicas anyway', async () => {
    const {engine, dir, manifest, options} = await runningStack(2, 'replicas')
    engine.keepExiting = true
    const result = await scaleServices(dir, manifest, {web: 1}, options({drainTimeoutMs: 1_000}))
    expect(result.drain).toMatchObject({drained: false, remaining: [10, 11]})
    expect(result.drain!.ms).toBeGreaterThanOrEqual(1_000)
    expect(result.warnings).toEqual([
      expect.stringMatching(
        /^old NGINX workers 10, 11 were still finishing requests after \d+ ms; stopping the replicas anyway/,
      ),
    ])
    expect(engine.calls).toEqual([
      'exec nginx -t demo-gateway-1',
      'exec nginx -s reload demo-gateway-1',
      'stop demo-web-2',
      'remove demo-web-2',
    ])
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1'])
    expect(describeScale(result)).toContain('old workers still finishing')
    expect(describeScale(result)).toContain('Warning: old NGINX workers 10, 11 were still finishing requests')
  })
})

describe('scaleServices failures', () => {
  it('nginx -t fails: upstreams.conf byte-identical, new replicas removed, gateway.yaml unchanged, exit 1 with the output', async () => {
    const {engine, dir, manifest, options} = await runningStack(1, 'replicas')
    const before = snapshot(dir)
    engine.testFailure =
      '2030/01/01 10:00:00 [emerg] 7#7: unexpected end of file, expecting "}" in /etc/nginx/conf.d/zz-broken.conf:2'
    const error = await rejectionOf(scaleServices(dir, manifest, {web: 2}, options()), OperationError)
    expect(error).toBeInstanceOf(OperationError)
    expect(error.exitCode).toBe(1)
    expect(error.message).toContain('`nginx -t` in demo-gateway-1 rejected the configuration (exit code 1):')
    expect(error.message).toContain('unexpected end of file, expecting "}" in /etc/nginx/conf.d/zz-broken.conf:2')
    expect(error.message).toContain('Restored the previous gateway/conf.d/upstreams.conf.')
    expect(error.message).toContain('Removed the replica(s) this run created: demo-web-2.')
    expect(error.message).toContain('The gateway keeps serving web: demo-web-1.')
    expect(error.hint).toContain('create-gateway scale web=2')
    expect(snapshot(dir).upstreams.equals(before.upstreams)).toBe(true)
    expect(snapshot(dir).manifest.equals(before.manifest)).toBe(true)
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1'])
    expect(engine.calls.filter((call) => call.includes('reload'))).toEqual([])
  })

  it('a new replica never gets healthy: its last log lines, nothing in the gateway touched', async () => {
    const {engine, dir, manifest, options} = await runningStack(1, 'service')
    const before = snapshot(dir)
    engine.behaviour.set('demo-web-3', {
      health: 'unhealthy',
      logs: ['ImproperlyConfigured: SECRET_KEY must not be empty'],
    })
    const error = await rejectionOf(scaleServices(dir, manifest, {web: 3}, options()), OperationError)
    expect(error.message).toContain('demo-web-3 (web) is unhealthy')
    expect(error.message).toContain('| ImproperlyConfigured: SECRET_KEY must not be empty')
    expect(error.message).toContain('Removed the replica(s) this run created: demo-web-3, demo-web-2.')
    expect(error.hint).toContain('create-gateway scale web=3')
    expect(engine.calls.some((call) => call.startsWith('exec'))).toBe(false)
    expect(snapshot(dir)).toEqual(before)
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1'])
  })

  it('the master refuses the reload: restores the file, reloads it again, removes the new replicas', async () => {
    const {engine, dir, manifest, options} = await runningStack(1, 'replicas')
    const before = snapshot(dir)
    engine.rejectReloads = 1
    const error = await rejectionOf(
      scaleServices(dir, manifest, {web: 2}, options({reloadTimeoutMs: 2_000})),
      OperationError,
    )
    expect(error.message).toContain('host not found in upstream "demo-web-9:8000"')
    expect(error.message).toContain('Restored the previous gateway/conf.d/upstreams.conf.')
    expect(error.message).toContain('Reloaded NGINX with it.')
    expect(engine.calls.filter((call) => call.includes('reload'))).toHaveLength(2)
    expect(upstreamServers(engine.reloadedWith[1]!)).toEqual(['demo-web-1'])
    expect(engine.reloadedWith[1]).toBe(before.upstreams.toString('utf8'))
    expect(snapshot(dir)).toEqual(before)
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1'])
  })

  it('the stack is not running: exit 1 saying so, nothing written', async () => {
    const engine = new FakeNginxEngine(IMAGES)
    const manifest = testManifest({services: {web: {kind: 'django', replicas: 1}}})
    const dir = testProject(manifest)
    writeFileSync(join(dir, 'gateway.yaml'), serializeManifest(manifest))
    const error = await rejectionOf(scaleServices(dir, manifest, {web: 2}, {engine, env: {}}), OperationError)
    expect(error.message).toBe('The stack of demo is not running: no running gateway container (demo-gateway-1)')
    expect(error.hint).toContain('--manifest-only web=2')
    expect(readFileSync(join(dir, 'gateway.yaml'), 'utf8')).toBe(serializeManifest(manifest))
  })

  it('--manifest-only saves the count and the upstream for the next up, and refuses a running stack', async () => {
    const engine = new FakeNginxEngine(IMAGES)
    const manifest = testManifest({services: {web: {kind: 'django', replicas: 1}}})
    const dir = testProject(manifest)
    writeFileSync(join(dir, 'gateway.yaml'), serializeManifest(manifest))
    const result = await scaleServices(dir, manifest, {web: 3}, {engine, env: {}, manifestOnly: true})
    expect(result).toMatchObject({manifestOnly: true, changed: true, services: [{service: 'web', from: 1, to: 3}]})
    expect((await loadManifest(dir)).services.web).toMatchObject({replicas: 3})
    expect(upstreamServers(readFileSync(join(dir, UPSTREAMS), 'utf8'))).toEqual([
      'demo-web-1',
      'demo-web-2',
      'demo-web-3',
    ])
    expect(engine.calls).toEqual([])

    const running = await runningStack(1, 'service')
    await expect(
      scaleServices(running.dir, running.manifest, {web: 2}, running.options({manifestOnly: true})),
    ).rejects.toThrow(UsageError)
  })

  it('another scale holds the project: busy, exit 1, nothing touched', async () => {
    const {engine, dir, manifest, options} = await runningStack(1, 'service')
    writeFileSync(
      join(dir, LOCK_FILE),
      JSON.stringify({
        pid: 424242,
        host: hostname(),
        command: 'scale web=3',
        since: '2030-01-01T10:00:00.000Z',
        token: 't',
      }),
    )
    const before = snapshot(dir)
    await expect(scaleServices(dir, manifest, {web: 2}, options())).rejects.toThrow(
      'The project is busy: `scale web=3` by pid 424242 since 2030-01-01T10:00:00.000Z',
    )
    expect(engine.calls).toEqual([])
    expect(snapshot(dir)).toEqual(before)
  })

  it('.env lacks a variable: a usage error before anything is locked or created', async () => {
    const {engine, manifest, options} = await runningStack(1, 'service')
    const dir = testProject(manifest, 'OTHER=1\n')
    await expect(scaleServices(dir, manifest, {web: 2}, options())).rejects.toThrow(UsageError)
    expect(engine.calls).toEqual([])
  })
})
