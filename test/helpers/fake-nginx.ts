import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import type {ExecResult} from '../../src/docker/engine.js'
import {upStack} from '../../src/docker/up.js'
import type {ScaleOptions} from '../../src/gateway/scale.js'
import {serializeManifest} from '../../src/manifest/load.js'
import {replicaNames} from '../../src/manifest/stack.js'
import {renderUpstreams} from '../../src/render/gateway.js'
import {fakeClock, FakeEngine} from './fake-engine.js'
import {testManifest, testProject} from './stack-fixture.js'

export const IMAGES = ['create-gateway-offline/python:forky', 'create-gateway-offline/nginx:forky']
export const UPSTREAMS = 'gateway/conf.d/upstreams.conf'

/**
 * The fake engine plus an NGINX that answers the commands scale runs in the gateway: `nginx -t`,
 * `nginx -s reload` (new worker PIDs; the old ones exit on a later look) and the /proc probe.
 */
export class FakeNginxEngine extends FakeEngine {
  dir = ''
  master = 1
  workers = [10, 11]
  exiting: number[] = []
  nextPid = 100
  /** `nginx -t` fails with this output. */
  testFailure?: string
  /** The master refuses the next reloads: old workers stay and the error log (stderr) gets an [emerg]. */
  rejectReloads = 0
  /** upstreams.conf as it was at each reload. */
  reloadedWith: string[] = []
  /** Old workers keep finishing long requests: they stay on every look instead of exiting (a drain that times out). */
  keepExiting = false
  /** Called before each `nginx ...` command runs: a test changes the world in between. */
  beforeCommand?: (cmd: string[]) => void

  override async exec(id?: string, cmd: string[] = []): Promise<ExecResult> {
    const name = (await this.container(id!))!.name
    if (cmd[0] === 'sh') return {exitCode: 0, stdout: this.probe(), stderr: ''}
    // Docker's DNS as the gateway asks it: the addresses of the endpoints holding the name.
    if (cmd[0] === 'getent') {
      this.calls.push(`exec ${cmd.join(' ')} ${name}`)
      const addresses = [...this.endpointsOf.values()].flatMap((endpoints) =>
        Object.values(endpoints)
          .filter((endpoint) => endpoint.aliases.includes(cmd[2]!))
          .map((endpoint) => endpoint.ipv4),
      )
      if (addresses.length === 0) return {exitCode: 2, stdout: '', stderr: ''}
      return {
        exitCode: 0,
        stdout: addresses.map((address) => `${address}      STREAM ${cmd[2]}\n`).join(''),
        stderr: '',
      }
    }
    this.calls.push(`exec ${cmd.join(' ')} ${name}`)
    this.beforeCommand?.(cmd)
    if (cmd.join(' ') === 'nginx -t') {
      if (this.testFailure)
        return {
          exitCode: 1,
          stdout: '',
          stderr: `${this.testFailure}\nnginx: configuration file /etc/nginx/nginx.conf test failed\n`,
        }
      return {exitCode: 0, stdout: '', stderr: 'nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n'}
    }

    if (cmd.join(' ') === 'nginx -s reload') {
      this.reloadedWith.push(readFileSync(join(this.dir, UPSTREAMS), 'utf8'))
      if (this.rejectReloads > 0) {
        this.rejectReloads -= 1
        this.writeLog(
          id!,
          'stderr',
          '2030/01/01 10:00:00 [emerg] 1#1: host not found in upstream "demo-web-9:8000" in /etc/nginx/conf.d/upstreams.conf:9',
        )
        return {exitCode: 0, stdout: '', stderr: ''}
      }

      this.writeLog(id!, 'stderr', '2030/01/01 10:00:00 [notice] 1#1: signal process started')
      this.exiting.push(...this.workers)
      this.workers = [this.nextPid++, this.nextPid++]
      return {exitCode: 0, stdout: '', stderr: ''}
    }

    return {exitCode: 127, stdout: '', stderr: `${cmd[0]}: not found`}
  }

  private probe(): string {
    const lines = [`1 (nginx) S 0 1 1\tnginx: master process nginx -g daemon off;`]
    for (const pid of this.workers) lines.push(`${pid} (nginx) S 1 1 1\tnginx: worker process`)
    for (const pid of this.exiting) lines.push(`${pid} (nginx) S 1 1 1\tnginx: worker process is shutting down`)
    // Old workers finish their requests by the next look (unless they hold long ones).
    if (!this.keepExiting) this.exiting = []
    return `${lines.join('\n')}\n`
  }
}

/**
 * A running stack of `replicas` web replicas. `upstreams` is the upstreams.conf it starts from:
 * `replicas` lists each web replica by container name (as `scale` writes it), `service` names the
 * service (`server web:8000`, as `init` writes it for NGINX before 1.27.3): both take the reload path.
 * `dns` is the resolve form `init` writes for a current NGINX. `api` adds a second Django service.
 */
export async function runningStack(
  replicas: number,
  upstreams: 'replicas' | 'service' | 'dns',
  api?: {replicas: number},
) {
  const engine = new FakeNginxEngine(IMAGES)
  const manifest = testManifest({
    services: {
      web: {kind: 'django', replicas},
      ...(api ? {api: {kind: 'django', replicas: api.replicas, port: 8001}} : {}),
      payment: {kind: 'external', url: 'https://payments.example.com'},
    },
    routes: [{path: '/', service: 'web'}, ...(api ? [{path: '/api/', service: 'api'}] : [])],
  })
  const dir = testProject(manifest, api ? 'WEB_SECRET_KEY=s3cret\nAPI_SECRET_KEY=s3cret\n' : undefined)
  engine.dir = dir
  writeFileSync(join(dir, 'gateway.yaml'), `# my own comment, kept by scale\n${serializeManifest(manifest)}`)
  mkdirSync(join(dir, 'gateway/conf.d'), {recursive: true})
  writeFileSync(
    join(dir, UPSTREAMS),
    upstreams === 'replicas'
      ? await renderUpstreams(manifest, {web: replicaNames(manifest, 'web', replicas)})
      : await renderUpstreams(manifest, {}, upstreams === 'dns' ? 'resolve' : 'reload'),
  )
  await upStack(dir, manifest, {engine, clock: fakeClock(), env: {}})
  engine.calls.length = 0
  const options = (extra: Partial<ScaleOptions> = {}): ScaleOptions => ({
    engine,
    clock: fakeClock(),
    env: {},
    isAlive: () => true,
    ...extra,
  })
  return {engine, dir, manifest, options}
}
