import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {describe, expect, it} from 'vitest'
import {parse} from 'yaml'

import {inspectCertificate} from '../../src/certs/inspect.js'
import {upStack} from '../../src/docker/up.js'
import {OperationError} from '../../src/errors.js'
import {
  applyPendingReload,
  describeRerender,
  mergeEnv,
  RELOAD_PENDING_FILE,
  rerenderProject,
  upLoadedGatewayFiles,
} from '../../src/project/rerender.js'
import {resolveAnswers} from '../../src/manifest/answers.js'
import {loadManifest} from '../../src/manifest/load.js'
import {createProject} from '../../src/project/create-project.js'
import {renderUpstreams} from '../../src/render/gateway.js'
import {tempDir} from '../helpers/cli.js'
import {rejectionOf} from '../helpers/errors.js'
import {fakeClock, FakeEngine} from '../helpers/fake-engine.js'
import {FakeNginxEngine, IMAGES, UPSTREAMS} from '../helpers/fake-nginx.js'

/**
 * `render` on a project `init` wrote: what it rewrites from an edited gateway.yaml, what it keeps
 * (the user's files), and how it brings a running gateway onto the new files (the fake NGINX records
 * each reload).
 */

async function project(flags: Record<string, string | string[]> = {}) {
  const dir = join(tempDir('cg-render-'), 'demo')
  const answers = await resolveAnswers({
    dir,
    yes: true,
    flags: {
      name: 'demo',
      'python-image': IMAGES[0]!,
      'nginx-image': IMAGES[1]!,
      'http-port': '18080',
      'https-port': '18443',
      ...flags,
    },
  })
  await createProject({dir, answers})
  return dir
}

async function running(dir: string): Promise<FakeNginxEngine> {
  const engine = new FakeNginxEngine(IMAGES)
  engine.dir = dir
  await upStack(dir, await loadManifest(dir), {engine, clock: fakeClock(), env: {}})
  engine.calls.length = 0
  return engine
}

function edit(dir: string, change: (text: string) => string): void {
  const path = join(dir, 'gateway.yaml')
  const before = readFileSync(path, 'utf8')
  const after = change(before)
  expect(after).not.toBe(before)
  writeFileSync(path, after)
}

async function render(dir: string, engine: FakeEngine, extra: {dryRun?: boolean} = {}) {
  return rerenderProject(dir, await loadManifest(dir), {engine, clock: fakeClock(), ...extra})
}

function changedPaths(result: Awaited<ReturnType<typeof render>>): string[] {
  return result.files.filter((file) => file.status !== 'unchanged').map((file) => `${file.status} ${file.path}`)
}

describe('render: the project again from gateway.yaml', () => {
  it('on a project as init wrote it, changes nothing and reloads nothing', async () => {
    const dir = await project()
    const engine = await running(dir)
    const result = await render(dir, engine)
    expect(changedPaths(result)).toEqual([])
    expect(result.gateway).toBe('unchanged')
    expect(engine.calls).toEqual([])
    expect(describeRerender(result)).toBe('demo: every file already matches gateway.yaml.')
  })

  it('a rate limit and a new api-key route: the gateway files change, nginx -t, a confirmed reload', async () => {
    const dir = await project()
    const engine = await running(dir)
    edit(dir, (text) =>
      text
        .replace('rate: 10r/s', 'rate: 5r/s')
        .replace('images:', '  - path: /keys/\n    service: web\n    auth: api-key\nimages:'),
    )
    const result = await render(dir, engine)
    expect(changedPaths(result)).toEqual([
      'updated README.md',
      'updated gateway/conf.d/maps.conf',
      'updated gateway/conf.d/limits.conf',
      'updated gateway/conf.d/gateway.conf',
    ])
    expect(readFileSync(join(dir, 'gateway/conf.d/limits.conf'), 'utf8')).toContain('rate=5r/s')
    expect(readFileSync(join(dir, 'gateway/conf.d/gateway.conf'), 'utf8')).toContain('location /keys/')
    expect(engine.calls).toEqual(['exec nginx -t demo-gateway-1', 'exec nginx -s reload demo-gateway-1'])
    expect(result).toMatchObject({gateway: 'reloaded', reload: {oldWorkers: [10, 11], newWorkers: [100, 101]}})
    expect(describeRerender(result)).toContain('Gateway: nginx -t passed; reloaded (workers 10, 11 -> 100, 101, 0 ms).')
  })

  it("keeps what is the user's: gateway.yaml with its comments, the Django code, their .env lines, the secrets, scale's replica list", async () => {
    const dir = await project()
    const engine = await running(dir)
    const views = join(dir, 'services/web/config/views.py')
    writeFileSync(views, `${readFileSync(views, 'utf8')}\n# my own view code\n`)
    writeFileSync(join(dir, '.env'), `${readFileSync(join(dir, '.env'), 'utf8')}MY_OWN_VAR=42\n`)
    // What scale's reload path writes: the replicas by container name.
    writeFileSync(
      join(dir, UPSTREAMS),
      await renderUpstreams(await loadManifest(dir), {web: ['demo-web-1', 'demo-web-2']}),
    )
    edit(dir, (text) => `# my note about this gateway\n${text.replace('rate: 10r/s', 'rate: 7r/s')}`)
    const keep = [
      'gateway.yaml',
      'services/web/config/views.py',
      'secrets/basic-auth.txt',
      'secrets/htpasswd',
      'secrets/api-keys.txt',
      'secrets/jwt-secret.txt',
      'secrets/ca-key.pem',
      'certs/ca.pem',
      UPSTREAMS,
    ]
    const before = Object.fromEntries(keep.map((path) => [path, readFileSync(join(dir, path))]))
    const env = readFileSync(join(dir, '.env'), 'utf8')

    const result = await render(dir, engine)
    for (const path of keep) expect(readFileSync(join(dir, path)).equals(before[path]!), path).toBe(true)
    expect(readFileSync(join(dir, '.env'), 'utf8')).toBe(env)
    expect(changedPaths(result)).toEqual(['updated README.md', 'updated gateway/conf.d/limits.conf'])
  })

  it('a new Django service: its folder is scaffolded, the compose file changes, and `up` comes next (no reload yet)', async () => {
    const dir = await project()
    const engine = await running(dir)
    edit(dir, (text) =>
      text
        .replace('routes:', '  orders:\n    kind: django\n    replicas: 1\n    port: 8000\nroutes:')
        .replace('images:', '  - path: /orders/\n    service: orders\nimages:'),
    )
    const result = await render(dir, engine)
    const changed = changedPaths(result)
    expect(changed).toEqual(
      expect.arrayContaining([
        'updated docker-compose.yml',
        'updated .env',
        'updated gateway/conf.d/upstreams.conf',
        'created services/orders/Dockerfile',
        'created services/orders/config/views.py',
      ]),
    )
    expect(changed.filter((path) => path.includes('services/web/'))).toEqual([])
    expect(readFileSync(join(dir, '.env'), 'utf8')).toMatch(/^ORDERS_SECRET_KEY=\S{40,}$/m)
    expect(result.gateway).toBe('needs-up')
    expect(result.next).toContain('docker-compose.yml and .env changed: `create-gateway up` applies them')
    expect(result.next).toContain("loading the gateway's new configuration")
    expect(engine.calls).toEqual([])
    expect(existsSync(join(dir, RELOAD_PENDING_FILE))).toBe(true)
  })

  it('the reload render left to `up`: done after an up that loaded nothing, skipped after one that did, once', async () => {
    const dir = await project()
    const engine = await running(dir)
    edit(dir, (text) => text.replace('domain: api.localhost', 'domain: gw.localhost'))
    expect((await render(dir, engine)).gateway).toBe('needs-up')
    const manifest = await loadManifest(dir)

    // An up that rolled replicas reloaded the gateway on its way: the marker just goes.
    expect(await applyPendingReload(dir, manifest, true, {engine, clock: fakeClock()})).toEqual({reloaded: false})
    expect(engine.calls).toEqual([])
    expect(existsSync(join(dir, RELOAD_PENDING_FILE))).toBe(false)

    // An up that changed no container: nginx -t and a confirmed reload, then the marker goes.
    expect((await render(dir, engine)).gateway).toBe('unchanged')
    writeFileSync(join(dir, RELOAD_PENDING_FILE), 'pending\n')
    const pending = await applyPendingReload(dir, manifest, false, {engine, clock: fakeClock()})
    expect(pending).toMatchObject({reloaded: true, reload: {oldWorkers: [10, 11], newWorkers: [100, 101]}})
    expect(engine.calls).toEqual(['exec nginx -t demo-gateway-1', 'exec nginx -s reload demo-gateway-1'])
    expect(existsSync(join(dir, RELOAD_PENDING_FILE))).toBe(false)
    expect(await applyPendingReload(dir, manifest, false, {engine, clock: fakeClock()})).toEqual({reloaded: false})
  })

  it('the pending reload refused by nginx -t: exit 1 saying the stack is up and what to run, the marker kept for the next up', async () => {
    const dir = await project()
    const engine = await running(dir)
    writeFileSync(join(dir, RELOAD_PENDING_FILE), 'pending\n')
    engine.testFailure =
      'nginx: [emerg] host not found in upstream "orders:8000" in /etc/nginx/conf.d/upstreams.conf:12'
    const error = await rejectionOf(
      applyPendingReload(dir, await loadManifest(dir), false, {engine, clock: fakeClock()}),
      OperationError,
    )
    expect(error.message).toContain('The stack is up, but the gateway configuration `render` wrote does not load')
    expect(error.message).toContain('host not found in upstream "orders:8000"')
    expect(error.hint).toContain('run `create-gateway render`')
    expect(engine.calls).toEqual(['exec nginx -t demo-gateway-1'])
    expect(existsSync(join(dir, RELOAD_PENDING_FILE))).toBe(true)
  })

  it('init --metrics: the exporter in the compose file on loopback, the stub_status listener, and how to scrape in the README', async () => {
    const plain = await project()
    expect(readFileSync(join(plain, 'README.md'), 'utf8')).not.toContain('## Metrics')
    expect(readFileSync(join(plain, 'docker-compose.yml'), 'utf8')).not.toContain('nginx-exporter')
    const dir = await project({metrics: '19113'})
    const compose = parse(readFileSync(join(dir, 'docker-compose.yml'), 'utf8')) as {
      services: Record<string, Record<string, unknown>>
    }
    expect(compose.services['nginx-exporter']).toMatchObject({
      image: 'nginx/nginx-prometheus-exporter:1.5.3',
      command: ['--nginx.scrape-uri=http://gateway:8082/nginx_status', '--web.listen-address=:9113'],
      ports: ['127.0.0.1:19113:9113'],
      read_only: true,
      cap_drop: ['ALL'],
      security_opt: ['no-new-privileges:true'],
      networks: ['default'],
    })
    expect(compose.services['nginx-exporter']!.healthcheck).toBeUndefined()
    expect(compose.services.gateway!.ports).toEqual(['127.0.0.1:18080:80', '127.0.0.1:18443:443'])
    expect(readFileSync(join(dir, 'gateway/conf.d/gateway.conf'), 'utf8')).toMatch(/^\s*listen 8082;$/m)
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toContain('http://127.0.0.1:19113/metrics')
  })

  it('upLoadedGatewayFiles: replicas rolled, or any container created, recreated or started', () => {
    const base = {
      project: 'demo',
      changed: true,
      images: [],
      network: {name: 'demo_default', created: false},
      urls: [],
      curl: '',
      durationMs: 0,
    }
    const row = (action: 'keep' | 'create' | 'recreate' | 'start' | 'remove') => ({
      service: 'web',
      name: 'demo-web-1',
      number: 1,
      action,
    })
    expect(upLoadedGatewayFiles({...base, rolled: [], containers: [row('keep'), row('remove')]})).toBe(false)
    expect(upLoadedGatewayFiles({...base, rolled: ['web'], containers: [row('keep')]})).toBe(true)
    for (const action of ['create', 'recreate', 'start'] as const)
      expect(upLoadedGatewayFiles({...base, rolled: [], containers: [row(action)]})).toBe(true)
  })

  it('a new domain: a new certificate from the same CA, for that name', async () => {
    const dir = await project()
    const engine = await running(dir)
    const ca = readFileSync(join(dir, 'certs/ca.pem'))
    edit(dir, (text) => text.replace('domain: api.localhost', 'domain: gw.localhost'))
    const result = await render(dir, engine)
    expect(result.certificate).toContain('the certificate does not cover gw.localhost')
    const leaf = inspectCertificate(readFileSync(join(dir, 'certs/fullchain.pem')))
    expect(leaf.checkHost('gw.localhost')).toBe(true)
    expect(readFileSync(join(dir, 'certs/ca.pem')).equals(ca)).toBe(true)
    expect(changedPaths(result)).toEqual(
      expect.arrayContaining([
        'updated certs/fullchain.pem',
        'updated certs/privkey.pem',
        'updated docker-compose.yml',
      ]),
    )
    // The replicas' ALLOWED_HOSTS change with it: containers first.
    expect(result.gateway).toBe('needs-up')
  })

  it('nginx -t refusing the new configuration: every file is put back byte for byte, exit 1 with the output', async () => {
    const dir = await project()
    const engine = await running(dir)
    edit(dir, (text) => text.replace('rate: 10r/s', 'rate: 5r/s'))
    const limits = readFileSync(join(dir, 'gateway/conf.d/limits.conf'))
    engine.testFailure = 'nginx: [emerg] unknown directive "limit_rq" in /etc/nginx/conf.d/limits.conf:3'
    const error = await rejectionOf(render(dir, engine), OperationError)
    expect(error.message).toContain('unknown directive "limit_rq"')
    expect(error.message).toContain('Put back the 2 file(s) this run changed.')
    expect(error.message).toContain('The gateway keeps serving its previous configuration.')
    expect(readFileSync(join(dir, 'gateway/conf.d/limits.conf')).equals(limits)).toBe(true)
    expect(engine.calls).toEqual(['exec nginx -t demo-gateway-1'])
  })

  it('a reload NGINX refuses: files put back and NGINX reloaded onto them', async () => {
    const dir = await project()
    const engine = await running(dir)
    edit(dir, (text) => text.replace('rate: 10r/s', 'rate: 5r/s'))
    const limits = readFileSync(join(dir, 'gateway/conf.d/limits.conf'))
    engine.rejectReloads = 1
    const error = await rejectionOf(render(dir, engine), OperationError)
    expect(error.message).toContain('[emerg]')
    expect(error.message).toContain('Reloaded NGINX onto them.')
    expect(readFileSync(join(dir, 'gateway/conf.d/limits.conf')).equals(limits)).toBe(true)
    expect(engine.reloadedWith).toHaveLength(2)
  })

  it('--dry-run lists the changes and writes nothing; with the stack down, `up` is next', async () => {
    const dir = await project()
    const engine = new FakeNginxEngine(IMAGES)
    edit(dir, (text) => text.replace('rate: 10r/s', 'rate: 5r/s'))
    const limits = readFileSync(join(dir, 'gateway/conf.d/limits.conf'))
    const dry = await render(dir, engine, {dryRun: true})
    expect(changedPaths(dry)).toEqual(['updated README.md', 'updated gateway/conf.d/limits.conf'])
    expect(dry).toMatchObject({dryRun: true, gateway: 'not-checked'})
    expect(readFileSync(join(dir, 'gateway/conf.d/limits.conf')).equals(limits)).toBe(true)
    expect(describeRerender(dry)).toContain('demo: would write 2 file(s) (dry run, nothing written):')

    const real = await render(dir, engine)
    expect(real.gateway).toBe('not-running')
    expect(real.next).toBe('`create-gateway up` starts the stack on these files.')
    expect(readFileSync(join(dir, 'gateway/conf.d/limits.conf'), 'utf8')).toContain('rate=5r/s')
  })
})

describe('mergeEnv', () => {
  it('updates the variables create-gateway manages and keeps every other line', () => {
    const existing = '# mine\nCOMPOSE_PROJECT_NAME=old\nMY_VAR=1\nWEB_SECRET_KEY=kept\n'
    const rendered = '# Generated\nCOMPOSE_PROJECT_NAME=new\nWEB_SECRET_KEY=kept\nAPI_SECRET_KEY=fresh\n'
    expect(mergeEnv(existing, rendered)).toBe(
      '# mine\nCOMPOSE_PROJECT_NAME=new\nMY_VAR=1\nWEB_SECRET_KEY=kept\nAPI_SECRET_KEY=fresh\n',
    )
    expect(mergeEnv(undefined, rendered)).toBe(rendered)
  })
})
