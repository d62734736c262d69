import {createHash} from 'node:crypto'
import {rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {describe, expect, it} from 'vitest'

import {unavailableError} from '../../src/docker/engine.js'
import {describeDown, describeStatus, describeUp} from '../../src/docker/describe.js'
import {LABELS} from '../../src/docker/spec.js'
import {downStack} from '../../src/docker/down.js'
import {stackStatus} from '../../src/docker/status.js'
import {upStack, type UpOptions} from '../../src/docker/up.js'
import {EngineUnavailableError, InterruptedError, OperationError, UsageError} from '../../src/errors.js'
import {rejectionOf} from '../helpers/errors.js'
import {fakeClock, FakeEngine} from '../helpers/fake-engine.js'
import {testManifest, testProject} from '../helpers/stack-fixture.js'

const IMAGES = ['create-gateway-offline/python:forky', 'create-gateway-offline/nginx:forky']

function setup(manifest = testManifest()) {
  const engine = new FakeEngine(IMAGES)
  const dir = testProject(manifest)
  const options = (extra: Partial<UpOptions> = {}): UpOptions => ({
    engine,
    clock: fakeClock(),
    env: {},
    timeoutMs: 60_000,
    ...extra,
  })
  return {engine, dir, manifest, options}
}

describe('upStack against a fake engine', () => {
  it('builds, creates the network, starts the replicas before the gateway, and reports the URLs', async () => {
    const {engine, dir, manifest, options} = setup()
    const progress: string[] = []
    const result = await upStack(dir, manifest, options({onProgress: (line) => progress.push(line)}))
    expect([...engine.calls].sort()).toEqual([
      'build demo-web:latest',
      'create demo-gateway-1',
      'create demo-web-1',
      'create demo-web-2',
      expect.stringMatching(/^network connect demo_internal /),
      'network create demo_default',
      'network create demo_internal',
      'start demo-gateway-1',
      'start demo-web-1',
      'start demo-web-2',
    ])
    // Build, network, every container created, then the replicas started, then the gateway once they run.
    expect(engine.calls.slice(0, 3)).toEqual([
      'build demo-web:latest',
      'network create demo_internal',
      'network create demo_default',
    ])
    expect(engine.calls.slice(3, 6).sort()).toEqual(['create demo-gateway-1', 'create demo-web-1', 'create demo-web-2'])
    // The gateway joins the internal network too, before it starts.
    expect(engine.calls[6]).toMatch(/^network connect demo_internal /)
    expect(engine.calls.slice(7, 9).sort()).toEqual(['start demo-web-1', 'start demo-web-2'])
    expect(engine.calls.at(-1)).toBe('start demo-gateway-1')
    expect(result.changed).toBe(true)
    expect(result.urls[0]).toBe('https://api.localhost:18443/')
    expect(result.curl).toMatch(
      /^curl --cacert certs\/ca\.pem (--resolve api\.localhost:18443:127\.0\.0\.1 )?https:\/\/api\.localhost:18443\/$/,
    )
    expect(progress).toContain('web: Step 1/2 : FROM base')
    const [internal, network] = [...engine.networksById.values()]
    // As Compose v2.40 labels it, hash included: sha256 of `{"name":"demo_default","ipam":{}}`.
    expect(internal?.options).toMatchObject({Internal: true})
    expect(network!.labels).toEqual({
      'com.docker.compose.project': 'demo',
      'com.docker.compose.network': 'default',
      'com.docker.compose.version': '2.40.3',
      'com.docker.compose.config-hash': createHash('sha256').update('{"name":"demo_default","ipam":{}}').digest('hex'),
    })
    expect(describeUp(result)).toContain('demo is up')
  })

  it('changes nothing on a second run: no build, same containers, "up to date"', async () => {
    const {engine, dir, manifest, options} = setup()
    await upStack(dir, manifest, options())
    const before = engine.names().map((name) => engine.containersById.size + name)
    const ids = [...engine.containersById.keys()]
    engine.calls.length = 0
    const result = await upStack(dir, manifest, options())
    expect(engine.calls).toEqual([])
    expect([...engine.containersById.keys()]).toEqual(ids)
    expect(engine.names().map((name) => engine.containersById.size + name)).toEqual(before)
    expect(result.changed).toBe(false)
    expect(describeUp(result)).toContain('demo is up to date: nothing changed')
  })

  it('rebuilds and recreates only the changed service, then reloads the kept gateway', async () => {
    const {engine, dir, manifest, options} = setup()
    await upStack(dir, manifest, options())
    writeFileSync(join(dir, 'services/web/app.py'), 'print("changed")\n')
    engine.calls.length = 0
    await upStack(dir, manifest, options())
    expect(engine.calls[0]).toBe('build demo-web:latest')
    for (const name of ['demo-web-1', 'demo-web-2']) {
      const steps = engine.calls.filter((call) => call.endsWith(` ${name}`))
      expect(steps).toEqual([`stop ${name}`, `remove ${name}`, `create ${name}`, `start ${name}`])
    }

    // The kept gateway reloads only after the new replicas run and are healthy.
    expect(engine.calls.at(-1)).toBe('signal HUP demo-gateway-1')
    expect(engine.calls.filter((call) => call.includes('gateway'))).toEqual(['signal HUP demo-gateway-1'])
  })

  it('removes replicas beyond the manifest count and creates missing ones', async () => {
    const {engine, dir, options} = setup()
    await upStack(dir, testManifest(), options())
    await upStack(dir, testManifest({services: {web: {kind: 'django', replicas: 1}}}), options())
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1'])
    await upStack(dir, testManifest({services: {web: {kind: 'django', replicas: 3}}}), options())
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1', 'demo-web-2', 'demo-web-3'])
  })

  it('maps "address already in use" to the port and the manifest field, and removes what it created', async () => {
    const {engine, dir, manifest, options} = setup()
    engine.behaviour.set('demo-gateway-1', {
      startError:
        'driver failed programming external connectivity on endpoint demo-gateway-1 (abc): Error starting userland proxy: listen tcp4 127.0.0.1:18443: bind: address already in use',
    })
    const error = await rejectionOf(upStack(dir, manifest, options()), OperationError)
    expect(error).toBeInstanceOf(OperationError)
    expect(error.message).toContain('Port 127.0.0.1:18443 (ports.https in gateway.yaml) is already in use')
    expect(error.message).toContain(
      'Removed what this run created: 3 container(s) and network(s) demo_internal, demo_default.',
    )
    expect(engine.names()).toEqual([])
    expect(engine.networksById.size).toBe(0)
  })

  it('maps "port is already allocated" (another container) to ports.http', async () => {
    const {engine, dir, manifest, options} = setup()
    engine.behaviour.set('demo-gateway-1', {startError: 'Bind for 127.0.0.1:18080 failed: port is already allocated'})
    await expect(upStack(dir, manifest, options())).rejects.toThrow(
      'Port 127.0.0.1:18080 (ports.http in gateway.yaml) is already in use',
    )
  })

  it('fails fast on a container that exits, with its last log lines, and leaves nothing behind', async () => {
    const {engine, dir, manifest, options} = setup()
    const logs = Array.from({length: 80}, (_, index) => `log line ${index}`)
    engine.behaviour.set('demo-web-2', {exitCode: 3, logs})
    const clock = fakeClock()
    const error = await rejectionOf(upStack(dir, manifest, options({clock})), OperationError)
    expect(error.message).toContain('demo-web-2 (web) exited with code 3 before becoming healthy')
    expect(error.message).toContain('Last 50 log lines of demo-web-2:')
    expect(error.message).toContain('  | log line 79')
    expect(error.message).not.toContain('log line 29\n')
    expect(error.hint).toContain('create-gateway logs web')
    expect(clock.elapsed()).toBeLessThan(1000)
    expect(engine.names()).toEqual([])
  })

  it('blames a crashed replica, not the gateway that failed because of it', async () => {
    const {engine, dir, manifest, options} = setup()
    engine.behaviour.set('demo-web-1', {
      exitAfterInspections: 1,
      exitCode: 3,
      logs: ['Traceback: ImportError: no module named foo'],
    })
    engine.behaviour.set('demo-gateway-1', {
      health: 'unhealthy',
      logs: ['host not found in upstream "demo-web-1:8000"'],
    })
    const error = await rejectionOf(upStack(dir, manifest, options()), OperationError)
    expect(error.message.split('\n')[0]).toBe(
      'demo-web-1 (web) exited with code 3 before becoming healthy (and then: demo-gateway-1 (gateway) is unhealthy: its healthcheck keeps failing)',
    )
    expect(error.message).toContain('| Traceback: ImportError: no module named foo')
    expect(engine.names()).toEqual([])
  })

  it('rolls back the containers created beside one that could not be', async () => {
    const {engine, dir, manifest, options} = setup()
    engine.addForeignContainer('demo-web-2')
    const error = await rejectionOf(upStack(dir, manifest, options()), OperationError)
    expect(error.message).toContain('A container named demo-web-2 already exists and does not belong to project demo')
    expect(error.message).toContain(
      'Removed what this run created: 2 container(s) and network(s) demo_internal, demo_default.',
    )
    expect(engine.names()).toEqual(['demo-web-2'])
  })

  it('names the timeout when a container stays "starting"', async () => {
    const {engine, dir, manifest, options} = setup()
    engine.behaviour.set('demo-gateway-1', {health: 'starting', logs: ['nginx: [emerg] host not found in upstream']})
    const error = await rejectionOf(upStack(dir, manifest, options({timeoutMs: 5000})), OperationError)
    expect(error.message).toContain(
      'Timed out after 5000 ms waiting for demo-gateway-1 (gateway) to be healthy (last: state running, health starting)',
    )
    expect(error.message).toContain('| nginx: [emerg] host not found in upstream')
    expect(engine.names()).toEqual([])
  })

  it('keeps what an earlier run made when a later run fails', async () => {
    const {engine, dir, manifest, options} = setup()
    await upStack(dir, manifest, options())
    await upStack(dir, testManifest({services: {web: {kind: 'django', replicas: 3}}}), options()).catch(() => {})
    engine.behaviour.set('demo-web-4', {health: 'unhealthy'})
    await expect(
      upStack(dir, testManifest({services: {web: {kind: 'django', replicas: 4}}}), options()),
    ).rejects.toThrow('demo-web-4 (web) is unhealthy')
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1', 'demo-web-2', 'demo-web-3'])
    // The public and the internal network.
    expect(engine.networksById.size).toBe(2)
  })

  it('fails before touching the engine when a SECRET_KEY file is missing', async () => {
    const {engine, manifest, options} = setup()
    const dir = testProject(manifest)
    rmSync(join(dir, 'secrets/web-secret-key'))
    const error = await rejectionOf(upStack(dir, manifest, options()), UsageError)
    expect(error.message).toBe('secrets/web-secret-key is missing: the container that reads it cannot start')
    expect(engine.calls).toEqual([])
  })

  it('says clearly that a missing image cannot be pulled, before building anything', async () => {
    const engine = new FakeEngine(['create-gateway-offline/python:forky'])
    const manifest = testManifest()
    const dir = testProject(manifest)
    const error = await rejectionOf(upStack(dir, manifest, {engine, clock: fakeClock(), env: {}}), OperationError)
    expect(error.message).toMatch(
      /^Image create-gateway-offline\/nginx:forky \(gateway\) not found locally and the registry is unreachable/,
    )
    expect(error.hint).toContain('--nginx-image')
    expect(engine.calls).toEqual(['pull create-gateway-offline/nginx:forky'])
  })

  it('shows the build error and creates nothing when the build fails', async () => {
    const {engine, dir, manifest, options} = setup()
    engine.buildEvents = () => [
      {stream: 'Step 1/1 : RUN pip install -r requirements.txt\n'},
      {stream: 'ERROR: No matching distribution found for nope==1.0\n'},
      {errorDetail: {message: 'returned a non-zero code: 1'}, error: 'x'},
    ]
    await expect(upStack(dir, manifest, options())).rejects.toThrow(
      /failed at Step 1\/1 : RUN pip install[\s\S]*No matching distribution found for nope==1\.0/,
    )
    expect(engine.names()).toEqual([])
    expect(engine.networksById.size).toBe(0)
  })
})

describe('upStack interrupted (Ctrl-C)', () => {
  it('stops waiting for a container that stays "starting", removes everything it created, and says so', async () => {
    const {engine, dir, manifest, options} = setup()
    engine.behaviour.set('demo-gateway-1', {health: 'starting'})
    const controller = new AbortController()
    // Ctrl-C 3 s into the health wait (the only thing that sleeps), with the timeout at 60 s.
    const clock = fakeClock()
    const sleep = clock.sleep
    clock.sleep = async (ms) => {
      await sleep(ms)
      if (clock.now() >= 3000) controller.abort('SIGINT')
    }

    const error = await rejectionOf(
      upStack(dir, manifest, options({clock, signal: controller.signal})),
      InterruptedError,
    )
    expect(error.message).toBe('Interrupted: removed 3 container(s) and network demo_default this run created')
    expect(engine.names()).toEqual([])
    expect(engine.networksById.size).toBe(0)
    expect(engine.calls.filter((call) => call.startsWith('start')).sort()).toEqual([
      'start demo-gateway-1',
      'start demo-web-1',
      'start demo-web-2',
    ])
    // Promptly: at most one more poll interval after the abort.
    expect(clock.elapsed()).toBeLessThanOrEqual(3500)
  })

  it('keeps what an earlier run made and stops before creating anything when interrupted during the build', async () => {
    const {engine, dir, manifest, options} = setup()
    await upStack(dir, manifest, options())
    writeFileSync(join(dir, 'services/web/app.py'), 'print("changed")\n')
    const controller = new AbortController()
    engine.calls.length = 0
    const onProgress = (line: string) => {
      if (line.startsWith('web: building')) controller.abort('SIGTERM')
    }

    const error = await rejectionOf(
      upStack(dir, manifest, options({onProgress, signal: controller.signal})),
      InterruptedError,
    )
    expect(error.message).toBe('Interrupted: removed 0 container(s) this run created')
    // The build that had begun finishes; nothing is stopped, created or removed after it.
    expect(engine.calls).toEqual(['build demo-web:latest'])
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1', 'demo-web-2'])
  })
})

describe('downStack and stackStatus', () => {
  it('lists every container with state and health, then removes them by label, gateway first', async () => {
    const {engine, dir, manifest, options} = setup()
    await upStack(dir, manifest, options())
    const rows = await stackStatus(manifest, {engine})
    expect(rows.map((row) => [row.service, row.name, row.state, row.health])).toEqual([
      ['web', 'demo-web-1', 'running', 'healthy'],
      ['web', 'demo-web-2', 'running', 'healthy'],
      ['gateway', 'demo-gateway-1', 'running', 'healthy'],
    ])
    expect(rows[2]!.ports).toEqual(['127.0.0.1:18080->80/tcp', '127.0.0.1:18443->443/tcp'])
    expect(describeStatus('demo', rows).split('\n')[0]).toMatch(/^SERVICE\s+NAME\s+STATE\s+HEALTH\s+PORTS\s+IMAGE$/)

    engine.volumesByName.set('demo_data', {[LABELS.project]: 'demo'})
    engine.calls.length = 0
    const result = await downStack(manifest, {engine, volumes: true})
    expect(engine.calls[0]).toBe('stop demo-gateway-1')
    expect(engine.calls.at(-1)).toBe('network remove demo_default')
    expect(result).toEqual({
      project: 'demo',
      containers: expect.arrayContaining(['demo-web-1', 'demo-web-2', 'demo-gateway-1']),
      networks: ['demo_internal', 'demo_default'],
      volumes: ['demo_data'],
    })
    expect(engine.names()).toEqual([])
    expect(await stackStatus(manifest, {engine})).toEqual([])
  })

  it('--dry-run lists what down would remove and touches nothing; --timeout replaces every grace period', async () => {
    const {engine, dir, manifest, options} = setup()
    await upStack(dir, manifest, options())
    const before = engine.names()
    engine.calls.length = 0
    const planned = await downStack(manifest, {engine, dryRun: true})
    expect(planned).toEqual({
      project: 'demo',
      containers: expect.arrayContaining(['demo-web-1', 'demo-web-2', 'demo-gateway-1']),
      networks: ['demo_internal', 'demo_default'],
      volumes: [],
      dryRun: true,
    })
    expect(engine.calls).toEqual([])
    expect(engine.names()).toEqual(before)
    expect(describeDown(planned)).toMatch(/^Dry run: down would remove 3 container\(s\), 2 network\(s\) of demo:/)

    await downStack(manifest, {engine, timeoutSeconds: 3})
    expect([...engine.stopTimeouts.values()]).toEqual([3, 3, 3])
    expect(engine.names()).toEqual([])
  })
})

describe('engine unavailable', () => {
  it.each([
    ['ENOENT', /no socket at unix:\/\/\/var\/run\/docker\.sock.*Start it/],
    ['EACCES', /permission denied.*docker group/],
    ['ECONNREFUSED', /refused the connection\. Start dockerd/],
    ['ENOTFOUND', /does not resolve/],
  ])('%s becomes one line saying what to do', (code, pattern) => {
    const error = unavailableError(Object.assign(new Error('x'), {code}), 'unix:///var/run/docker.sock')
    expect(error).toBeInstanceOf(EngineUnavailableError)
    expect(error!.exitCode).toBe(1)
    expect(error!.message).toMatch(pattern)
    expect(error!.message).not.toContain('\n')
  })
})
