import {existsSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {join} from 'node:path'

import {DockerodeEngine} from '../../src/docker/engine.js'
import {gatewayAnswer, setServiceAlias} from '../../src/gateway/dns-upstream.js'
import {probeGateway} from '../../src/gateway/nginx.js'
import {loadManifest} from '../../src/manifest/load.js'
import {renderUpstreams} from '../../src/render/gateway.js'
import {acquireProjectLock, LOCK_FILE} from '../../src/util/lock.js'
import {retryUntil} from '../../src/util/retry.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {tempDir} from '../helpers/cli.js'
import {
  cleanupRun,
  docker,
  httpsGet,
  newRunId,
  OFFLINE_IMAGES,
  projectContainers,
  projectContainersChecked,
  runCliAsync,
  waitForEngineAndImages,
} from '../helpers/e2e.js'
import {describeLoad, startLoad as startNonRetryingLoad, type LoadReport} from '../helpers/load.js'

/**
 * `scale` against the real engine, driven through the CLI: 1 -> 3 -> 1 under a continuous load with
 * zero failed requests, a broken gateway config rolled back, bad input refused, two scales at once.
 * The project publishes only 127.0.0.1 ports in 28000-28999, carries the run id, and afterAll removes
 * everything with its label whatever happened.
 */

const RUN_ID = newRunId()
const ENV = {CREATE_GATEWAY_RUN_ID: RUN_ID}
const DOMAIN = 'api.localhost'
const NAME = `cgscale-${RUN_ID}`
const root = tempDir('cg-scale-')
const DIR = join(root, NAME)
const UPSTREAMS = join(DIR, 'gateway/conf.d/upstreams.conf')
const LOCK = join(DIR, LOCK_FILE)
let HTTPS = 0

/** Whether 127.0.0.1:port can be bound right now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({host: '127.0.0.1', port, exclusive: true}, () => server.close(() => resolve(true)))
  })
}

/** Two free neighbouring ports in the range this suite may use (other suites share the engine). */
async function pickPorts(): Promise<[number, number]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const http = 28_000 + 2 * Math.floor(Math.random() * 499)
    if ((await portFree(http)) && (await portFree(http + 1))) return [http, http + 1]
  }

  throw new Error('no two free ports in 28000-28999 on 127.0.0.1')
}

function cli(args: string[], timeoutMs = 240_000) {
  return runCliAsync([...args, '--dir', DIR], {env: ENV, timeoutMs})
}

async function webContainers() {
  return (await projectContainers(NAME)).filter((container) => container.Labels['com.docker.compose.service'] === 'web')
}

async function containerIds(): Promise<string[]> {
  return (await projectContainers(NAME)).map((container) => container.Id).sort()
}

function upstreamServers(): string[] {
  return [...readFileSync(UPSTREAMS, 'utf8').matchAll(/^\s*server (\S+):8000 /gm)].map((match) => match[1]!)
}

function savedReplicas(): number {
  return Number(/^ {4}replicas: (\d+)$/m.exec(readFileSync(join(DIR, 'gateway.yaml'), 'utf8'))?.[1])
}

async function hostnameOf(id: string): Promise<string> {
  return (await docker.getContainer(id).inspect()).Config.Hostname
}

/** Every replica runs and is healthy, gateway.yaml says how many, and the upstream lists exactly them. */
async function expectConsistent(): Promise<number> {
  const web = (await projectContainersChecked(NAME)).filter(
    (container) => container.Labels['com.docker.compose.service'] === 'web',
  )
  const names = web.map((container) => container.Names[0]!.slice(1)).sort()
  expect(
    web.every((container) => container.State === 'running' && container.Status.includes('(healthy)')),
    JSON.stringify(web.map((c) => c.Status)),
  ).toBe(true)
  expect(names).toEqual(Array.from({length: names.length}, (_, index) => `${NAME}-web-${index + 1}`))
  if (resolveForm()) {
    // The resolve form: one `server web:8000 resolve`; the gateway's DNS answer holds exactly the replicas.
    expect(upstreamServers()).toEqual(['web'])
    expect(await gatewayAnswer(ENGINE, await gatewayRef(), 'web')).toEqual(
      web.map((container) => Object.values(container.NetworkSettings.Networks)[0]!.IPAddress).sort(),
    )
  } else {
    expect(upstreamServers()).toEqual(names)
  }

  expect(savedReplicas()).toBe(names.length)
  expect(existsSync(join(DIR, '.create-gateway.lock'))).toBe(false)
  return names.length
}

// ---- the DNS (resolve) path and the reload path: helpers -------------------------------------------

const ENGINE = new DockerodeEngine(docker)

function resolveForm(): boolean {
  return /^\s*server web:8000 resolve /m.test(readFileSync(UPSTREAMS, 'utf8'))
}

async function gatewayRef(): Promise<{id: string; name: string}> {
  const gateway = (await projectContainers(NAME)).find(
    (container) => container.Labels['com.docker.compose.service'] === 'gateway',
  )!
  return {id: gateway.Id, name: gateway.Names[0]!.slice(1)}
}

/** NGINX's master and worker PIDs: a reload gives new workers. */
async function nginxProcesses(): Promise<{master?: number; workers: number[]}> {
  const snapshot = await probeGateway(ENGINE, await gatewayRef())
  return {master: snapshot.master, workers: snapshot.workers}
}

/** upstreams.conf in the given form (classic: by container name, no resolve), loaded by a reload. */
async function useUpstreamsForm(form: 'classic' | 'resolve'): Promise<void> {
  const manifest = await loadManifest(DIR)
  const web = (await webContainers()).map((container) => container.Names[0]!.slice(1)).sort()
  writeFileSync(
    UPSTREAMS,
    form === 'classic'
      ? await renderUpstreams(manifest, {web}, 'reload')
      : await renderUpstreams(manifest, {}, 'resolve'),
  )
  const reload = await ENGINE.exec((await gatewayRef()).id, ['nginx', '-s', 'reload'])
  expect(reload.exitCode, reload.stderr).toBe(0)
  await sleep(1_000)
}

interface Load {
  /** Hostnames of the replicas that answered while `phase` had this value. */
  hostnames: Map<string, Set<string>>
  /** The `release` field of the bodies (`none` when absent) per phase: which code answered. */
  releases: Map<string, Set<string>>
  setPhase(phase: string): void
  stop(): Promise<LoadReport>
}

/**
 * A continuous load on /api/, GETs and every 4th a POST (NGINX never retries a POST it has sent
 * upstream), on 8 keep-alive connections that are never retried (test/helpers/load.js: a reset or a
 * close with a request pending counts as a failure, as wrk counts it). Paced to 300 requests/s, below
 * the route's 1000r/s, at most 10 minutes. Only to 127.0.0.1, with SNI and Host = the domain.
 */
function startLoad(): Load {
  const hostnames = new Map<string, Set<string>>()
  const releases = new Map<string, Set<string>>()
  const load = startNonRetryingLoad({
    port: HTTPS,
    tls: {ca: readFileSync(join(DIR, 'certs/ca.pem')), servername: DOMAIN},
    lanes: 8,
    rate: 300,
    postRatio: 0.25,
    path: '/api/',
    maxRequests: 300 * 600,
    durationMs: 600_000,
    timeoutMs: 10_000,
    onAnswer: ({body, phase}) => {
      const hostname = /"hostname": ?"([^"]+)"/.exec(body)?.[1]
      if (hostname) {
        if (!hostnames.has(phase)) hostnames.set(phase, new Set())
        hostnames.get(phase)!.add(hostname)
      }

      if (!releases.has(phase)) releases.set(phase, new Set())
      releases.get(phase)!.add(/"release": ?"([^"]+)"/.exec(body)?.[1] ?? 'none')
    },
  })
  return {hostnames, releases, setPhase: load.setPhase, stop: load.stop}
}

/** Zero failures of any kind, every request answered, and at least `minimum` 2xx answers. */
function expectNoFailure(report: LoadReport, minimum: number) {
  expect(report.failures).toEqual([])
  expect(report.errors).toEqual({reset: 0, closed: 0, timeout: 0, connect: 0, other: 0})
  expect(report.non2xx).toBe(0)
  expect(report.answered).toBe(report.sent)
  expect(report.byClass['2xx']).toBeGreaterThan(minimum)
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

beforeAll(async () => {
  await waitForEngineAndImages(240_000)
  const [http, https] = await pickPorts()
  HTTPS = https
  const init = await runCliAsync(
    [
      'init',
      DIR,
      '--yes',
      '--name',
      NAME,
      '--domain',
      DOMAIN,
      '--http-port',
      String(http),
      '--https-port',
      String(https),
      '--replicas',
      '1',
      '--rate',
      '1000r/s',
      '--burst',
      '1000',
      '--external',
      'payment=https://payments.example.com',
      '--python-image',
      OFFLINE_IMAGES.python,
      '--nginx-image',
      OFFLINE_IMAGES.nginx,
    ],
    {env: ENV, timeoutMs: 60_000},
  )
  expect(init.status, init.stderr).toBe(0)
  const up = await cli(['up', '--timeout', '180'], 300_000)
  expect(up.status, `${up.stdout}\n${up.stderr}`).toBe(0)
}, 400_000)

afterAll(async () => {
  await cleanupRun(RUN_ID, [NAME])
  rmSync(root, {recursive: true, force: true})
}, 180_000)

describe('scale on a running stack', () => {
  it('1 -> 3 -> 1 under continuous load: zero non-2xx, zero connection errors, all 3 replicas serve at 3', async () => {
    // It starts from the file init writes, the service name (Docker's DNS resolves it to the replica);
    // scale lists the replicas by container name from then on (expectConsistent).
    expect(upstreamServers()).toEqual(['web'])
    const load = startLoad()
    let result: LoadReport | undefined
    try {
      await sleep(3_000)
      load.setPhase('scaling up')
      const up = await cli(['scale', 'web=3'])
      expect(up.status, `${up.stdout}\n${up.stderr}`).toBe(0)
      console.log(`[e2e] scale web=3 took ${up.ms} ms`)
      load.setPhase('at 3')
      const status = await cli(['status', '--json'], 60_000)
      const rows = (
        JSON.parse(status.stdout) as {containers: Array<{name: string; service: string; inUpstream?: boolean}>}
      ).containers
      expect(rows.filter((row) => row.service === 'web').map((row) => [row.name, row.inUpstream])).toEqual(
        [1, 2, 3].map((n) => [`${NAME}-web-${n}`, true]),
      )
      expect(rows.find((row) => row.service === 'gateway')?.inUpstream).toBeUndefined()
      await sleep(4_000)
      const at3 = await Promise.all((await webContainers()).map((container) => hostnameOf(container.Id)))
      load.setPhase('scaling down')
      const down = await cli(['scale', 'web=1'])
      expect(down.status, `${down.stdout}\n${down.stderr}`).toBe(0)
      console.log(`[e2e] scale web=1 took ${down.ms} ms`)
      load.setPhase('at 1')
      await sleep(3_000)
      result = await load.stop()
      console.log(
        `[e2e] load: ${describeLoad(result)}; per phase ${JSON.stringify(result.phases)}; hostnames ${JSON.stringify(Object.fromEntries([...load.hostnames].map(([phase, set]) => [phase, set.size])))}`,
      )
      expectNoFailure(result, 1_000)
      expect([...(load.hostnames.get('at 3') ?? [])].sort()).toEqual([...at3].sort())
      expect(at3).toHaveLength(3)
      expect(load.hostnames.get('at 1')?.size).toBe(1)
    } finally {
      if (!result) await load.stop()
    }

    expect(await expectConsistent()).toBe(1)
  }, 600_000)

  it('verify after scale: the checklist sees every replica (init -> up -> scale -> verify, as a user runs it)', async () => {
    const up = await cli(['scale', 'web=3'])
    expect(up.status, up.stderr).toBe(0)
    await projectContainersChecked(NAME)
    // Not routes or rate-limit: this project's external points at a name that must not be reached.
    const run = await cli(['verify', '--only', 'containers,config,balance', '--json'], 120_000)
    const report = JSON.parse(run.stdout) as {ok: boolean; checks: Array<{id: string; ok: boolean; detail: string}>}
    expect(run.status, run.stdout).toBe(0)
    expect(report.checks.map((check) => [check.id, check.ok])).toEqual([
      ['containers', true],
      ['config', true],
      ['balance', true],
    ])
    expect(report.checks.find((check) => check.id === 'containers')?.detail).toContain('4/4 running and healthy')
    expect(report.checks.find((check) => check.id === 'balance')?.detail).toMatch(/web: 3\/3 replicas/)
    expect((await cli(['scale', 'web=1'])).status).toBe(0)
    expect(await expectConsistent()).toBe(1)
  }, 300_000)

  it('up after a code change, under continuous load: replicas replaced one at a time behind the gateway, zero failed requests', async () => {
    expect((await cli(['scale', 'web=2'])).status).toBe(0)
    await projectContainersChecked(NAME)
    const views = join(DIR, 'services/web/config/views.py')
    const original = readFileSync(views, 'utf8')
    expect(original).toContain("'hostname': socket.gethostname(),")
    const load = startLoad()
    let result: LoadReport | undefined
    try {
      await sleep(2_000)
      load.setPhase('rolling')
      writeFileSync(
        views,
        original.replace(
          "'hostname': socket.gethostname(),",
          "'hostname': socket.gethostname(),\n        'release': 'v2',",
        ),
      )
      const up = await cli(['up', '--timeout', '120'], 300_000)
      expect(up.status, `${up.stdout}\n${up.stderr}`).toBe(0)
      console.log(`[e2e] up (rolling, 2 replicas) took ${up.ms} ms`)
      expect(up.stderr).toContain(`Gateway: web -> ${NAME}-web-2, ${NAME}-web-3`)
      expect(up.stdout).toMatch(/2 recreated/)
      load.setPhase('after')
      await sleep(3_000)
      result = await load.stop()
      console.log(
        `[e2e] load during up: ${describeLoad(result)}; per phase ${JSON.stringify(result.phases)}; releases ${JSON.stringify(Object.fromEntries([...load.releases].map(([phase, set]) => [phase, [...set]])))}`,
      )
      expectNoFailure(result, 1_000)
      expect([...(load.releases.get('start') ?? [])]).toEqual(['none'])
      expect([...(load.releases.get('after') ?? [])]).toEqual(['v2'])
      expect(load.hostnames.get('after')?.size).toBe(2)
    } finally {
      if (!result) await load.stop()
      writeFileSync(views, original)
    }

    expect(await expectConsistent()).toBe(2)
    const back = await cli(['up', '--timeout', '120'], 300_000)
    expect(back.status, back.stderr).toBe(0)
    expect((await cli(['scale', 'web=1'])).status).toBe(0)
    expect(await expectConsistent()).toBe(1)
  }, 600_000)

  it('the reload path, with upstreams.conf in the classic form (container names, no resolve): a broken gateway config gives exit 1 with the nginx -t output, upstream byte-identical, gateway still answers, no container left; a good one reloads', async () => {
    // What a bench (or NGINX before 1.27.3) runs: scale and up pick the reload path from the file.
    await useUpstreamsForm('classic')
    const before = {
      upstreams: readFileSync(UPSTREAMS),
      manifest: readFileSync(join(DIR, 'gateway.yaml')),
      ids: await containerIds(),
    }
    const broken = join(DIR, 'gateway/conf.d/zz-broken.conf')
    writeFileSync(broken, 'upstream broken {\n')
    try {
      const result = await cli(['scale', 'web=2'])
      expect(result.status, result.stderr).toBe(1)
      expect(result.stderr).toContain('`nginx -t` in')
      expect(result.stderr).toContain('zz-broken.conf')
      expect(result.stderr).toContain('Restored the previous gateway/conf.d/upstreams.conf.')
      expect(result.stderr).toContain(`Removed the replica(s) this run created: ${NAME}-web-2.`)
      expect(readFileSync(UPSTREAMS).equals(before.upstreams)).toBe(true)
      expect(readFileSync(join(DIR, 'gateway.yaml')).equals(before.manifest)).toBe(true)
      expect(await containerIds()).toEqual(before.ids)
      const ca = readFileSync(join(DIR, 'certs/ca.pem'), 'utf8')
      expect((await httpsGet({port: HTTPS, domain: DOMAIN, ca, path: '/api/'})).status).toBe(200)
    } finally {
      rmSync(broken, {force: true})
    }

    expect(await expectConsistent()).toBe(1)
    try {
      const workers = (await nginxProcesses()).workers
      const scaled = await cli(['scale', 'web=2'])
      expect(scaled.status, scaled.stderr).toBe(0)
      expect(scaled.stdout).toContain('NGINX reloaded')
      expect((await nginxProcesses()).workers.some((pid) => workers.includes(pid))).toBe(false)
      expect(await expectConsistent()).toBe(2)
      expect((await cli(['scale', 'web=1'])).status).toBe(0)
      expect(await expectConsistent()).toBe(1)
    } finally {
      await useUpstreamsForm('resolve')
    }

    expect(await expectConsistent()).toBe(1)
  }, 300_000)

  it('the resolve form: scale 1 -> 2 -> 1 never reloads NGINX (same master and worker PIDs), upstreams.conf untouched, the DNS answer follows', async () => {
    expect(resolveForm()).toBe(true)
    const before = {nginx: await nginxProcesses(), upstreams: readFileSync(UPSTREAMS)}
    expect(before.nginx.workers.length).toBeGreaterThan(0)
    const up = await cli(['scale', 'web=2', '--json'])
    expect(up.status, up.stderr).toBe(0)
    expect(JSON.parse(up.stdout)).toMatchObject({reloaded: false, services: [{service: 'web', from: 1, to: 2}]})
    expect(up.stderr).toContain(`Giving ${NAME}-web-2 the name web`)
    expect(await expectConsistent()).toBe(2)
    // The aliases Compose v2 gives a replica ([container, service, short ID]), after the rejoin too.
    for (const container of await webContainers()) {
      const networks = (await docker.getContainer(container.Id).inspect()).NetworkSettings.Networks
      expect(Object.values(networks).map((endpoint) => endpoint.Aliases)).toEqual([
        [container.Names[0]!.slice(1), 'web', container.Id.slice(0, 12)],
      ])
    }
    const down = await cli(['scale', 'web=1'])
    expect(down.status, down.stderr).toBe(0)
    expect(down.stderr).toContain(`Taking the name web from ${NAME}-web-2`)
    // The name goes before SIGTERM does.
    expect(down.stderr.indexOf('Taking the name web')).toBeLessThan(down.stderr.indexOf(`Stopping ${NAME}-web-2`))
    expect(await expectConsistent()).toBe(1)
    expect(await nginxProcesses()).toEqual(before.nginx)
    expect(readFileSync(UPSTREAMS).equals(before.upstreams)).toBe(true)
  }, 300_000)

  it('taking the service name away and giving it back keeps an open keep-alive connection to the replica working', async () => {
    // A client on the project network holds one HTTP/1.1 connection to web-1 across the rejoin: the
    // replica keeps its address and MAC, so TCP carries on (what NGINX's upstream connections rely on).
    const [web1] = await webContainers()
    const network = Object.keys(web1!.NetworkSettings.Networks)[0]!
    const script = [
      'import http.client, os, time',
      `c = http.client.HTTPConnection('${NAME}-web-1', 8000, timeout=10)`,
      "c.request('GET', '/healthz'); r = c.getresponse(); r.read()",
      'first = (r.status, c.sock.getsockname())',
      "while not os.path.exists('/tmp/go'): time.sleep(0.05)",
      "c.request('GET', '/healthz'); r = c.getresponse(); r.read()",
      "print('RESULT', first[0], r.status, first[1] == c.sock.getsockname(), flush=True)",
    ].join('\n')
    const client = await docker.createContainer({
      Image: OFFLINE_IMAGES.python,
      Entrypoint: ['python3', '-c', script],
      Labels: {'dev.create-gateway.run-id': RUN_ID},
      HostConfig: {NetworkMode: network},
    })
    try {
      await client.start()
      await sleep(1_000)
      const replica = {id: web1!.Id, name: `${NAME}-web-1`}
      const off = await setServiceAlias(ENGINE, replica, 'web', false)
      expect(off.networks).toEqual([network])
      expect(off.moved).toBeUndefined()
      const on = await setServiceAlias(ENGINE, replica, 'web', true)
      expect(on.moved).toBeUndefined()
      const exec = await ENGINE.exec(client.id, ['touch', '/tmp/go'])
      expect(exec.exitCode).toBe(0)
      await client.wait()
      const logs = (await client.logs({stdout: true, stderr: true})).toString('utf8')
      expect(logs).toContain('RESULT 200 200 True')
    } finally {
      await client.remove({force: true})
    }

    expect(await expectConsistent()).toBe(1)
  }, 120_000)

  it.each(
    [
      ['web=abc'],
      ['web=0'],
      ['web=-1'],
      ['web=1.5'],
      ['web=11'],
      ['nosuch=2'],
      ['payment=2'],
      ['web'],
      ['web=2', 'web=3'],
    ].map((args) => [args.join(' '), args] as const),
  )(
    'bad input `scale %s`: exit 2, no container created, upstreams.conf unchanged',
    async (_label, args) => {
      const before = {upstreams: readFileSync(UPSTREAMS), ids: await containerIds()}
      const result = await cli(['scale', ...args], 60_000)
      expect(result.status, result.stderr).toBe(2)
      expect(result.stderr).toMatch(/^Error: /)
      expect(result.stderr).toContain('Nothing was changed.')
      expect(readFileSync(UPSTREAMS).equals(before.upstreams)).toBe(true)
      expect(await containerIds()).toEqual(before.ids)
    },
    60_000,
  )

  it('two scales at once: the second says the project is busy; with --wait both run in turn; the end state is consistent', async () => {
    // The second starts once the first holds the lock (its lock file names it), so they always meet:
    // started together, the second could in principle lose the race to a fast first.
    const firstRun = cli(['scale', 'web=2'])
    await retryUntil(
      async () => (existsSync(LOCK) ? readFileSync(LOCK, 'utf8') : ''),
      (text) => text.includes('scale web=2'),
      {timeoutMs: 60_000, intervalMs: 50, describe: 'the first scale to take the project lock'},
    )
    const second = await cli(['scale', 'web=3'])
    const first = await firstRun
    expect(first.status, first.stderr).toBe(0)
    expect(second.status, second.stderr).toBe(1)
    expect(second.stderr).toMatch(/Error: The project is busy: `scale web=2` by pid \d+ since \S+/)
    expect(await expectConsistent()).toBe(2)

    // The queued half is made deterministic by holding the lock here: two CLI runs racing for it
    // could otherwise never meet (a no-op scale can finish before the other process has started).
    const held = await acquireProjectLock(DIR, {command: 'the test holding the lock'})
    const waiting = new Set<number>()
    const queuedRuns = [1, 2].map((count) =>
      runCliAsync(['scale', `web=${count}`, '--wait-lock', '200', '--dir', DIR], {
        env: ENV,
        timeoutMs: 240_000,
        onStderr: (stderr) => stderr.includes('to finish with the project') && waiting.add(count),
      }),
    )
    try {
      await retryUntil(
        async () => waiting.size,
        (size) => size === 2,
        {timeoutMs: 60_000, intervalMs: 200, describe: 'both queued scales to say they are waiting'},
      )
    } finally {
      await held.release()
    }

    const queued = await Promise.all(queuedRuns)
    for (const result of queued) expect(result.status, result.stderr).toBe(0)
    for (const result of queued) expect(result.stderr).toContain('to finish with the project')
    expect([1, 2]).toContain(await expectConsistent())
  }, 600_000)

  it('the saved count survives down and up', async () => {
    const scaled = await cli(['scale', 'web=2'])
    expect(scaled.status, scaled.stderr).toBe(0)
    expect((await cli(['down'], 120_000)).status).toBe(0)
    const up = await cli(['up', '--timeout', '180'], 300_000)
    expect(up.status, up.stderr).toBe(0)
    expect(await expectConsistent()).toBe(2)
  }, 600_000)
})
