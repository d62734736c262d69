/**
 * The generated Django service, run for real by the Python of the stand-in image
 * (create-gateway-offline/python:forky: Django 5.2, Gunicorn 26, the versions users get from PyPI), not
 * the host's. One container holds the image's file system with the project mounted at its own path;
 * each Python process enters its file system with nsenter (no `docker exec` round trip) and keeps the
 * host's network, so Gunicorn listens on the host's 127.0.0.1 and the requests below reach it directly.
 */
import {execFileSync, spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {request} from 'node:http'
import {connect, createServer, type Socket} from 'node:net'
import {dirname, join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {parseManifest} from '../../src/manifest/load.js'
import {djangoServices} from '../../src/manifest/model.js'
import {buildStackSpec} from '../../src/manifest/stack.js'
import {renderDjangoService} from '../../src/render/django.js'
import {writePlan} from '../../src/util/files.js'
import {tempDir} from '../helpers/cli.js'

/** The stand-in image (fixtures/images/build.sh python) and Debian's interpreter in it. */
const PYTHON_IMAGE = process.env.CG_TEST_PYTHON_IMAGE ?? 'create-gateway-offline/python:forky'
const PYTHON = '/usr/bin/python3'
const DOMAIN = 'api.localhost'
const START_TIMEOUT_MS = 20_000
const STOP_TIMEOUT_MS = 10_000

const manifest = parseManifest({
  version: 1,
  name: 'my-api',
  domain: DOMAIN,
  services: {web: {kind: 'django', replicas: 2, port: 8000}},
  routes: [
    {path: '/', service: 'web'},
    {path: '/secure/', service: 'web', auth: 'basic'},
    {path: '/student-api/', service: 'web'},
  ],
})
const service = djangoServices(manifest)[0]!

/** A key like the ones init generates: 50 characters from a CSPRNG. */
const secretKey = randomBytes(48).toString('base64url').slice(0, 50)

/** The key's file, as Compose mounts the project's secret at /run/secrets/ (0640, the service's group). */
const secretKeyPath = join(mkdtempSync(join(tmpdir(), 'cg-django-key-')), 'web-secret-key')
writeFileSync(secretKeyPath, `${secretKey}\n`, {mode: 0o640})

/** The environment docker-compose.yml gives the service, with the secret file where this test keeps it. */
function stackEnvironment(): Record<string, string> {
  const spec = buildStackSpec(manifest).services.find((s) => s.service === service.name)!
  expect(spec.environment.DJANGO_SECRET_KEY_FILE).toBe('/run/secrets/web-secret-key')
  expect(Object.keys(spec.environment)).not.toContain('DJANGO_SECRET_KEY')
  return {...spec.environment, DJANGO_SECRET_KEY_FILE: secretKeyPath}
}

/** Only what the service needs: nothing from this shell (pyenv, PYTHONPATH) leaks into Debian's Python. */
function pythonEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {PATH: '/usr/bin:/bin', LANG: 'C.UTF-8'}
  for (const [name, value] of Object.entries(extra)) if (value !== undefined) env[name] = value
  return env
}

let serviceDir = ''
let projectDir = ''
/** The container holding the image's file system, and its main process (what nsenter enters). */
let container = ''
let containerPid = 0

/** `python3 args...` in the image's file system, in the service's folder, on the host's network. */
function python(args: string[]): [string, string[]] {
  // nsenter's own --wd=DIR opens DIR before it changes root, so Python's cwd would lie outside its root:
  // cd once inside instead (exec keeps the pid, so a signal reaches Python itself).
  const enter = ['-t', String(containerPid), '--mount', '--root', '--wd']
  return ['nsenter', [...enter, 'sh', '-c', 'cd "$0" && exec "$@"', serviceDir, PYTHON, ...args]]
}

function managePy(args: string[], env: NodeJS.ProcessEnv) {
  const result = spawnSync(...python(['manage.py', ...args]), {env, encoding: 'utf8', timeout: 60_000})
  return {status: result.status, output: `${result.stdout}${result.stderr}`}
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
}

interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** One plain-HTTP request on a fresh connection; no redirect following, so a 301 shows as a 301. */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({host: '127.0.0.1', port, path, method: 'GET', headers, agent: false, timeout: 5000}, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => resolve({status: res.statusCode ?? 0, headers: res.headers, body}))
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer within 5000 ms`)))
    req.on('error', reject)
    req.end()
  })
}

const json = (reply: Reply) => JSON.parse(reply.body) as Record<string, unknown>

/** A raw keep-alive connection, as NGINX holds one to a replica: one request at a time, its raw answer. */
class KeepAlive {
  private buffer = ''
  private waiting?: () => void

  /** Resolves when the server closes the connection. */
  readonly ended: Promise<void>

  private constructor(private readonly socket: Socket) {
    this.ended = new Promise((resolve) => socket.once('end', () => resolve()))
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      this.buffer += chunk
      this.waiting?.()
    })
  }

  static open(port: number): Promise<KeepAlive> {
    return new Promise((resolve, reject) => {
      const socket = connect({host: '127.0.0.1', port}, () => resolve(new KeepAlive(socket)))
      socket.once('error', reject)
    })
  }

  /** GET path; the whole answer (head and JSON body) once its body has arrived. */
  async get(path: string): Promise<string> {
    this.begin(path)
    return this.finish()
  }

  /** The first bytes of a request: from now on it is in flight on this connection. */
  begin(path: string): void {
    this.buffer = ''
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: ${DOMAIN}\r\nX-Forwarded-Proto: https\r\n`)
  }

  /** The rest of the request begun, and its answer. */
  async finish(path = 'the request'): Promise<string> {
    this.socket.write('Connection: keep-alive\r\n\r\n')
    const deadline = Date.now() + 5000
    while (!this.complete()) {
      if (Date.now() > deadline)
        throw new Error(`${path} on the open connection: no answer, got ${JSON.stringify(this.buffer)}`)
      await new Promise<void>((resolve) => {
        this.waiting = resolve
        setTimeout(resolve, 100)
      })
    }

    return this.buffer
  }

  /** Has the whole answer arrived (by Content-Length, or the last chunk)? */
  private complete(): boolean {
    const end = this.buffer.indexOf('\r\n\r\n')
    if (end === -1) return false
    const length = /\r\ncontent-length: *(\d+)/i.exec(this.buffer.slice(0, end))?.[1]
    if (length !== undefined) return Buffer.byteLength(this.buffer.slice(end + 4)) >= Number(length)
    return this.buffer.endsWith('\r\n0\r\n\r\n')
  }

  close(): void {
    this.socket.destroy()
  }
}

/** How a new TCP connection to the port ends: `connected` or the error code (ECONNREFUSED). */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({host: '127.0.0.1', port}, () => {
      socket.destroy()
      resolve('connected')
    })
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
  })
}

class Gunicorn {
  private output = ''
  private exited: Promise<number | null>
  private exitCode: number | null | undefined

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()))
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()))
    this.exited = new Promise((resolve) =>
      child.once('exit', (code) => {
        this.exitCode = code
        resolve(code)
      }),
    )
  }

  /** Start gunicorn from the rendered gunicorn.conf.py and wait until /healthz answers 200. */
  static async start(env: Record<string, string>): Promise<Gunicorn> {
    const port = await freePort()
    const child = spawn(...python(['-m', 'gunicorn', '-c', 'gunicorn.conf.py', 'config.wsgi:application']), {
      env: pythonEnv({...env, GUNICORN_BIND: `127.0.0.1:${port}`, GUNICORN_WORKERS: '1'}),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const gunicorn = new Gunicorn(child, port)
    const deadline = Date.now() + START_TIMEOUT_MS
    while (Date.now() < deadline) {
      if (gunicorn.exitCode !== undefined)
        throw new Error(`gunicorn exited with ${gunicorn.exitCode} before serving:\n${gunicorn.output}`)
      try {
        if ((await get(port, '/healthz')).status === 200) return gunicorn
      } catch {
        // not listening yet
      }

      await new Promise((resolve) => setTimeout(resolve, 100))
    }

    await gunicorn.stop()
    throw new Error(
      `gunicorn: http://127.0.0.1:${port}/healthz not reachable after ${START_TIMEOUT_MS} ms:\n${gunicorn.output}`,
    )
  }

  get log(): string {
    return this.output
  }

  /** SIGTERM to the master, as `docker stop` sends it; resolves with the exit code. */
  terminate(): Promise<number | null> {
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_TIMEOUT_MS)
    return this.exited.finally(() => clearTimeout(timer))
  }

  /** SIGTERM (gunicorn's graceful stop), then SIGKILL if it is still there after STOP_TIMEOUT_MS. */
  async stop(): Promise<void> {
    if (this.exitCode !== undefined) return
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_TIMEOUT_MS)
    await this.exited
    clearTimeout(timer)
  }
}

describe('generated Django service on the stand-in image (Django 5.2, Gunicorn 26)', () => {
  let gunicorn: Gunicorn | undefined
  let versions = ''

  beforeAll(async () => {
    projectDir = tempDir('cg-django-')
    await writePlan(projectDir, await renderDjangoService(manifest, service))
    serviceDir = join(projectDir, service.path)

    const docker = (args: string[]) => execFileSync('docker', args, {encoding: 'utf8', timeout: 60_000}).trim()
    container = docker([
      'run',
      '--detach',
      '--label',
      'create-gateway.test=django-service',
      '--network',
      'none',
      '--volume',
      `${projectDir}:${projectDir}`,
      // The secret key's file, at the same path inside (as Compose mounts it at /run/secrets/).
      '--volume',
      `${dirname(secretKeyPath)}:${dirname(secretKeyPath)}:ro`,
      '--entrypoint',
      'sleep',
      PYTHON_IMAGE,
      'infinity',
    ])
    containerPid = Number(docker(['inspect', '--format', '{{.State.Pid}}', container]))
    const probe = spawnSync(
      ...python(['-c', 'import django, gunicorn; print(django.get_version(), gunicorn.__version__)']),
      {env: pythonEnv({}), encoding: 'utf8', timeout: 30_000},
    )
    if (probe.status !== 0) {
      throw new Error(
        `${PYTHON_IMAGE}: ${PYTHON} cannot import django and gunicorn (${(probe.stderr || String(probe.error)).trim()}). ` +
          'Build the image: bash fixtures/images/build.sh python (.ci/run does this).',
      )
    }

    versions = probe.stdout.trim()
  })

  afterAll(async () => {
    await gunicorn?.stop()
    if (container) execFileSync('docker', ['rm', '--force', container], {stdio: 'ignore', timeout: 60_000})
    if (projectDir) rmSync(projectDir, {recursive: true, force: true})
    rmSync(dirname(secretKeyPath), {recursive: true, force: true})
  })

  it('runs on the Django and Gunicorn users get: Django 5.2, Gunicorn 23 or later', () => {
    const [django, gunicornVersion] = versions.split(' ')
    expect(django).toMatch(/^5\.2(\.\d+)?$/)
    expect(Number(gunicornVersion!.split('.')[0])).toBeGreaterThanOrEqual(23)
  })

  it('passes `manage.py check --deploy` with no warning, with the environment the stack sets', () => {
    const result = managePy(['check', '--deploy', '--fail-level', 'WARNING'], pythonEnv(stackEnvironment()))
    expect(result.output).toContain('System check identified no issues')
    expect(result.status, result.output).toBe(0)
  })

  it('keeps DEBUG off when DJANGO_DEBUG is not set (check --deploy would flag it)', () => {
    const result = managePy(
      ['check', '--deploy', '--fail-level', 'WARNING'],
      pythonEnv({...stackEnvironment(), DJANGO_DEBUG: undefined}),
    )
    expect(result.status, result.output).toBe(0)
  })

  it('refuses to start without DJANGO_SECRET_KEY and says which variable to set', async () => {
    const env = {...stackEnvironment(), DJANGO_SECRET_KEY_FILE: undefined}
    const check = managePy(['check'], pythonEnv(env))
    expect(check.status).not.toBe(0)
    expect(check.output).toContain('DJANGO_SECRET_KEY is not set')
    expect(check.output).toContain('WEB_SECRET_KEY')

    const port = await freePort()
    const server = spawnSync(...python(['-m', 'gunicorn', '-c', 'gunicorn.conf.py', 'config.wsgi:application']), {
      env: pythonEnv({...env, GUNICORN_BIND: `127.0.0.1:${port}`, GUNICORN_WORKERS: '1'}),
      encoding: 'utf8',
      timeout: 30_000,
    })
    expect(server.error, 'gunicorn should exit by itself, not hang').toBeUndefined()
    expect(server.status).not.toBe(0)
    expect(server.stderr).toContain('DJANGO_SECRET_KEY is not set')
  })

  it('rejects a DJANGO_DEBUG it cannot read instead of guessing', () => {
    const result = managePy(['check'], pythonEnv({...stackEnvironment(), DJANGO_DEBUG: 'maybe'}))
    expect(result.status).not.toBe(0)
    expect(result.output).toContain('DJANGO_DEBUG must be 1 or 0')
  })

  it('on SIGTERM refuses new connections at once, and still answers the request in flight on an open keep-alive connection', async () => {
    // A view that takes its time, for this test only: the request in flight when SIGTERM comes.
    const urls = join(serviceDir, 'config/urls.py')
    const original = readFileSync(urls, 'utf8')
    writeFileSync(
      urls,
      `${original}\n\nimport sys, time\nfrom django.http import JsonResponse\n\n\ndef slow(request):\n` +
        `    print('slow request in the view', file=sys.stderr, flush=True)\n    time.sleep(4)\n` +
        `    return JsonResponse({'slow': True})\n\n\nurlpatterns.insert(0, path('slow', slow))\n`,
    )
    const stopping = await Gunicorn.start(stackEnvironment()).finally(() => writeFileSync(urls, original))
    const open = await KeepAlive.open(stopping.port)
    try {
      expect(await open.get('/healthz')).toMatch(/^HTTP\/1\.1 200 /)
      open.begin('/slow')
      const slow = open.finish('GET /slow')
      const inView = Date.now() + 5000
      while (!stopping.log.includes('slow request in the view') && Date.now() < inView)
        await new Promise((resolve) => setTimeout(resolve, 20))
      expect(stopping.log).toContain('slow request in the view')
      let answered = false
      void slow.then(
        () => (answered = true),
        () => (answered = true),
      )
      const exited = stopping.terminate()
      // Without the post_worker_init hook the worker keeps its copy of the listening socket until it
      // exits, after the request in flight: new connections are accepted and wait unserved until then.
      // With it, they are refused while that request is still running.
      const outcomes: string[] = []
      const deadline = Date.now() + 10_000
      while (!answered && outcomes.at(-1) !== 'ECONNREFUSED' && Date.now() < deadline) {
        outcomes.push(await tryConnect(stopping.port))
        await new Promise((resolve) => setTimeout(resolve, 50))
      }

      expect(
        {refused: outcomes.at(-1) === 'ECONNREFUSED', answeredYet: answered},
        `new connections after SIGTERM: ${outcomes.join(', ')}`,
      ).toEqual({refused: true, answeredYet: false})
      const answer = await slow.catch((error: Error) => {
        throw new Error(`${error.message}\n${stopping.log}`)
      })
      expect(answer).toMatch(/^HTTP\/1\.1 200 /)
      expect(answer).toContain('"slow": true')
      // Gunicorn 26 still says `Connection: keep-alive` here, but closes the connection as its worker
      // exits: that is why NGINX must have stopped choosing a replica (or reloaded) before its SIGTERM.
      await open.ended
      expect(await exited, stopping.log).toBe(0)
      expect(stopping.log).not.toMatch(/Traceback|Exception/)
    } finally {
      open.close()
      await stopping.stop()
    }
  })

  describe('served by gunicorn', () => {
    beforeAll(async () => {
      gunicorn = await Gunicorn.start(stackEnvironment())
    })

    it('answers /healthz over plain HTTP without the gateway headers: 200, no redirect', async () => {
      const reply = await get(gunicorn!.port, '/healthz', {Host: '127.0.0.1'})
      expect(reply.status).toBe(200)
      expect(json(reply)).toEqual({status: 'ok'})
    })

    it('answers /api/ as the gateway calls it, with the facts of the request', async () => {
      const reply = await get(gunicorn!.port, '/api/', {
        Host: DOMAIN,
        'X-Forwarded-Proto': 'https',
        'X-Request-ID': 'abc',
        'X-Forwarded-For': '203.0.113.7, 10.0.0.2',
      })
      expect(reply.status, reply.body).toBe(200)
      expect(reply.headers['content-type']).toBe('application/json')
      expect(reply.headers['strict-transport-security']).toMatch(/max-age=\d+/)
      const body = json(reply)
      expect(body).toMatchObject({
        endpoint: 'api',
        service: 'web',
        path: '/api/',
        method: 'GET',
        request_id: 'abc',
        forwarded_proto: 'https',
        secure: true,
        client_ip: '203.0.113.7',
      })
      expect(typeof body.hostname).toBe('string')
      expect(body.hostname).not.toBe('')
    })

    it('answers the API under a route prefix the gateway leaves in place', async () => {
      const reply = await get(gunicorn!.port, '/secure/api/', {
        Host: DOMAIN,
        'X-Forwarded-Proto': 'https',
        'X-Real-IP': '198.51.100.9',
      })
      expect(reply.status, reply.body).toBe(200)
      expect(json(reply)).toMatchObject({endpoint: 'api', path: '/secure/api/', client_ip: '198.51.100.9'})
    })

    it.each(['/', '/secure/', '/student-api/anything'])(
      'answers any other path under a route with JSON: %s',
      async (path) => {
        const reply = await get(gunicorn!.port, path, {Host: DOMAIN, 'X-Forwarded-Proto': 'https'})
        expect(reply.status, reply.body).toBe(200)
        expect(json(reply)).toMatchObject({endpoint: 'catch-all', path, service: 'web'})
      },
    )

    it('refuses a Host that is not allowed with 400', async () => {
      const reply = await get(gunicorn!.port, '/api/', {Host: 'evil.example', 'X-Forwarded-Proto': 'https'})
      expect(reply.status).toBe(400)
      expect(json(reply)).toMatchObject({status: 400})
    })

    it('redirects a request that did not come over HTTPS to https', async () => {
      const reply = await get(gunicorn!.port, '/api/', {Host: DOMAIN})
      expect(reply.status).toBe(301)
      expect(reply.headers.location).toBe(`https://${DOMAIN}/api/`)
    })

    it('logs each request with its request id', async () => {
      await get(gunicorn!.port, '/api/', {Host: DOMAIN, 'X-Forwarded-Proto': 'https', 'X-Request-ID': 'log-me-123'})
      const deadline = Date.now() + 5000
      while (!gunicorn!.log.includes('request_id=log-me-123') && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50))
      expect(gunicorn!.log).toMatch(/"GET \/api\/ HTTP\/1\.1" 200 .*request_id=log-me-123/)
    })
  })
})
