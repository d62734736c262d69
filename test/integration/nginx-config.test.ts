import {execFile, spawn, type ChildProcess} from 'node:child_process'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {parseManifest} from '../../src/manifest/load.js'
import type {ManifestInput} from '../../src/manifest/schema.js'
import {renderUpstreams} from '../../src/render/gateway.js'
import {signJwt} from '../../src/verify/jwt.js'
import {
  API_KEY,
  BASIC_PASSWORD,
  BASIC_USER,
  buildTree,
  CANNOT_RUN_NGINX,
  canRunNginx,
  JWT_SECRET,
  NGINX,
  nginxTest,
  put,
  removeSandboxes,
  sandbox,
  sandboxCommand,
  writeHosts,
  type Tree,
} from '../helpers/nginx-sandbox.js'

/**
 * The rendered gateway config, run by the stand-in image's NGINX (1.30) in the sandbox of
 * test/helpers/nginx-sandbox.ts (a container of its own: the host's files and ports are never touched).
 */

const run = promisify(execFile)
const canRun = canRunNginx
if (!canRun) console.warn(`nginx-config: skipped, ${CANNOT_RUN_NGINX}`)
afterAll(removeSandboxes)

const projects: Record<string, ManifestInput> = {
  defaults: {
    version: 1,
    name: 'my-api',
    domain: 'api.localhost',
    services: {web: {kind: 'django', replicas: 2}},
    routes: [{path: '/', service: 'web'}],
  },
  'several services, an external, every auth mode, route limits': {
    version: 1,
    name: 'shop',
    domain: 'shop.example.com',
    ports: {http: 80, https: 443},
    rateLimit: {rate: '600r/m', burst: 5, status: 429},
    services: {
      web: {kind: 'django', replicas: 3},
      'student-api': {kind: 'django', replicas: 2, port: 8001},
      payment: {kind: 'external', url: 'https://ec2-3-91-1-123.compute.amazonaws.com/api/'},
      reading: {kind: 'external', url: 'http://live-reading.domain.com:8080'},
    },
    routes: [
      {path: '/live-reading/', service: 'reading'},
      {path: '/student-api/', service: 'student-api', auth: 'api-key', rateLimit: {rate: '5r/s', burst: 0}},
      {path: '/payment/', service: 'payment', auth: 'api-key'},
      {path: '/secure/', service: 'web', auth: 'basic', rateLimit: {rate: '1r/s', burst: 3}},
      {path: '/v1.0/', service: 'web'},
      {path: '/private/', service: 'student-api', auth: 'jwt'},
    ],
  },
  'tls off': {
    version: 1,
    name: 'plain',
    domain: 'plain.localhost',
    tls: {mode: 'off'},
    services: {web: {kind: 'django'}},
    routes: [{path: '/', service: 'web', auth: 'basic'}],
  },
  'cached routes: public, basic, api-key and jwt': {
    version: 1,
    name: 'cached',
    domain: 'api.localhost',
    cache: {keys: '1m', size: '16m'},
    services: {web: {kind: 'django'}},
    routes: [
      {path: '/', service: 'web', cache: {ttl: '30s'}},
      {path: '/shared/', service: 'web', cache: {ttl: '5m', credentialed: 'share'}},
      {path: '/secure/', service: 'web', auth: 'basic', cache: {ttl: '1m'}},
      {path: '/keyed/', service: 'web', auth: 'api-key', cache: {ttl: '1h'}},
      {path: '/private/', service: 'web', auth: 'jwt', cache: {ttl: '1d'}},
    ],
  },
  'the metrics profile (a stub_status listener for the exporter)': {
    version: 1,
    name: 'metered',
    domain: 'api.localhost',
    metrics: {enabled: true},
    services: {web: {kind: 'django'}},
    routes: [{path: '/', service: 'web'}],
  },
  'jwt only, limit status 401': {
    version: 1,
    name: 'tokens',
    domain: 'api.localhost',
    rateLimit: {status: 401},
    services: {web: {kind: 'django'}},
    routes: [{path: '/', service: 'web', auth: 'jwt'}],
  },
}

describe.skipIf(!canRun)("nginx -t on rendered configs (the stand-in image's nginx)", () => {
  for (const [title, input] of Object.entries(projects)) {
    it(`accepts ${title}, without warnings`, async () => {
      const tree = await buildTree(parseManifest(input))
      const result = await nginxTest(tree.dir)
      expect(result.output).toContain('test is successful')
      expect(result.ok).toBe(true)
      expect(result.output).not.toMatch(/\[(warn|emerg)\]/)
    })
  }

  it('fails when an upstream name of the reload form does not resolve (the check is real)', async () => {
    const manifest = parseManifest(projects.defaults)
    const tree = await buildTree(manifest)
    // The resolve form is looked up at run time, so nginx -t checks names in the reload form only.
    await put(join(tree.dir, 'etc-nginx/conf.d/upstreams.conf'), await renderUpstreams(manifest, {}, 'reload'))
    await writeFile(join(tree.dir, 'hosts'), '127.0.0.1 localhost\n')
    const result = await nginxTest(tree.dir)
    expect(result.ok).toBe(false)
    expect(result.output).toMatch(/host not found in upstream "web:8000"/)
  })

  it('accepts the upstreams scale writes (container names), when those names resolve', async () => {
    const manifest = parseManifest(projects['several services, an external, every auth mode, route limits']!)
    const tree = await buildTree(manifest)
    const listed: Record<string, string[]> = {}
    for (const replica of tree.replicas) (listed[replica.service] ??= []).push(replica.name)
    expect(listed).toEqual({
      web: ['shop-web-1', 'shop-web-2', 'shop-web-3'],
      'student-api': ['shop-student-api-1', 'shop-student-api-2'],
    })
    const upstreams = await renderUpstreams(manifest, listed)
    expect(upstreams).toContain('server shop-student-api-2:8001 ')
    await put(join(tree.dir, 'etc-nginx/conf.d/upstreams.conf'), upstreams)

    await writeHosts(tree, 'container')
    const result = await nginxTest(tree.dir)
    expect(result.output).toContain('test is successful')
    expect(result.ok).toBe(true)
    expect(result.output).not.toMatch(/\[(warn|emerg)\]/)

    // The service names alone do not do for this file: the container names are what NGINX looks up.
    await writeHosts(tree, 'service')
    const unresolved = await nginxTest(tree.dir)
    expect(unresolved.ok).toBe(false)
    expect(unresolved.output).toMatch(/host not found in upstream "shop-web-1:8000"/)
  })
})

// ---------------------------------------------------------------------------------------------------
// A live gateway: real requests through the rendered config.

/** Stub upstreams (echo what they received) and a stub of Docker's DNS, run inside the namespaces. */
const STUBS = String.raw`
import dgram from 'node:dgram'
import http from 'node:http'
import https from 'node:https'
import {readFileSync} from 'node:fs'

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const echo = (name) => (req, res) => {
  let body = ''
  req.on('data', (chunk) => (body += chunk))
  req.on('end', () => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({name, method: req.method, url: req.url, headers: req.headers, body}))
  })
}

const listening = []
for (const stub of spec.servers) {
  const server = stub.tls
    ? https.createServer({cert: readFileSync(stub.tls.cert), key: readFileSync(stub.tls.key)}, echo(stub.name))
    : http.createServer(echo(stub.name))
  listening.push(new Promise((resolve) => server.listen(stub.port, stub.host, resolve)))
}

// Answers A queries for the names it knows, NXDOMAIN for the rest.
const dns = dgram.createSocket('udp4')
dns.on('message', (query, peer) => {
  let offset = 12
  const labels = []
  while (query[offset]) {
    labels.push(query.subarray(offset + 1, offset + 1 + query[offset]).toString())
    offset += query[offset] + 1
  }
  const type = query.readUInt16BE(offset + 1)
  // One address, or several (a service name: every replica, as Docker's DNS answers it).
  const ips = [spec.dns[labels.join('.').toLowerCase()] ?? []].flat()
  const header = Buffer.alloc(12)
  query.copy(header, 0, 0, 2)
  header.writeUInt16BE(ips.length > 0 ? 0x8180 : 0x8183, 2)
  header.writeUInt16BE(1, 4)
  const answers = type === 1 ? ips : []
  header.writeUInt16BE(answers.length, 6)
  const parts = [header, query.subarray(12, offset + 5)]
  for (const ip of answers) {
    const record = Buffer.alloc(16)
    record.writeUInt16BE(0xc00c, 0)
    record.writeUInt16BE(1, 2)
    record.writeUInt16BE(1, 4)
    record.writeUInt32BE(30, 6)
    record.writeUInt16BE(4, 10)
    ip.split('.').forEach((octet, index) => (record[12 + index] = Number(octet)))
    parts.push(record)
  }
  dns.send(Buffer.concat(parts), peer.port, peer.address)
})
listening.push(new Promise((resolve) => dns.bind(53, '127.0.0.11', resolve)))
await Promise.all(listening)
console.log('ready')
`

interface Reply {
  /** As the status line says it: "1.1" or "2". */
  httpVersion: string
  status: number
  headers: Record<string, string>
  body: string
}

interface Echo {
  name: string
  method: string
  url: string
  headers: Record<string, string>
  body: string
}

const live: ManifestInput = {
  version: 1,
  name: 'my-api',
  domain: 'api.localhost',
  // The whole file's requests share the gateway-wide zone (default 10r/s, burst 20): raised so only
  // the routes' own limits below refuse, whatever the machine's speed (a CI run once got the global
  // 503 for /ghost/ instead of its 502).
  rateLimit: {rate: '1000r/s', burst: 1000},
  services: {
    web: {kind: 'django', replicas: 2},
    api: {kind: 'django', replicas: 1},
    payment: {kind: 'external', url: 'https://payments.example.test:9443/v1/'},
    ghost: {kind: 'external', url: 'http://ghost.invalid'},
  },
  routes: [
    {path: '/', service: 'web'},
    {path: '/secure/', service: 'web', auth: 'basic'},
    {path: '/api/', service: 'api', auth: 'api-key'},
    // One request a minute, no burst: the second request in a test must be refused.
    {path: '/api2/', service: 'api', auth: 'api-key', rateLimit: {rate: '1r/m', burst: 0}},
    {path: '/private/', service: 'api', auth: 'jwt'},
    {path: '/private2/', service: 'api', auth: 'jwt', rateLimit: {rate: '1r/m', burst: 0}},
    {path: '/payment/', service: 'payment'},
    {path: '/ghost/', service: 'ghost'},
  ],
}

describe.skipIf(!canRun)('a live gateway from the rendered config', () => {
  let tree: Tree
  /** The sandbox container's main process: its network namespace is where everything talks. */
  let holderPid = 0
  const children: ChildProcess[] = []
  /** What NGINX wrote to its stdout: the access log, as the engine would keep it for the gateway. */
  let nginxStdout = ''

  /** Start a process (a command line that enters the sandbox); resolves when `ready` matches its output. */
  async function startInside(
    command: string[],
    ready: (output: string) => boolean,
    what: string,
  ): Promise<ChildProcess> {
    const child = spawn(command[0]!, command.slice(1), {stdio: ['ignore', 'pipe', 'pipe']})
    children.push(child)
    let output = ''
    const started = Date.now()
    await new Promise<void>((resolve, reject) => {
      const check = async () => {
        for (let attempt = 0; attempt < 100; attempt++) {
          if (child.exitCode !== null) return reject(new Error(`${what} exited (${child.exitCode}): ${output}`))
          if (ready(output) || (await probe())) return resolve()
          await new Promise((done) => setTimeout(done, 100))
        }

        reject(new Error(`${what} not ready after ${Date.now() - started} ms: ${output}`))
      }

      const probe = async () =>
        what === 'nginx' &&
        (await curl(['http://127.0.0.1:8081/healthz']).then(
          (reply) => reply.status === 200,
          () => false,
        ))
      child.stdout!.on('data', (chunk) => {
        output += chunk
        if (what === 'nginx') nginxStdout += chunk
      })
      child.stderr!.on('data', (chunk) => (output += chunk))
      void check()
    })
    return child
  }

  async function curl(args: string[]): Promise<Reply> {
    const resolve = ['80', '443'].flatMap((port) => ['--resolve', `api.localhost:${port}:127.0.0.1`])
    const {stdout} = await run('nsenter', [
      '-t',
      String(holderPid),
      '-n',
      'curl',
      '-sS',
      '-i',
      '--max-time',
      '10',
      '--cacert',
      join(tree.dir, 'ca.pem'),
      ...resolve,
      ...args,
    ])
    const split = stdout.indexOf('\r\n\r\n')
    const [statusLine, ...lines] = stdout.slice(0, split).split('\r\n')
    const headers: Record<string, string> = {}
    for (const line of lines) {
      const colon = line.indexOf(':')
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
    }

    const [protocol, status] = statusLine!.split(' ')
    return {httpVersion: protocol!.replace('HTTP/', ''), status: Number(status), headers, body: stdout.slice(split + 4)}
  }

  const echoOf = (reply: Reply): Echo => JSON.parse(reply.body) as Echo

  beforeAll(async () => {
    const manifest = parseManifest(live)
    tree = await buildTree(manifest)
    await put(join(tree.dir, 'www/acme/.well-known/acme-challenge/token-123'), 'token-123.thumbprint')
    await put(join(tree.dir, 'big-body'), 'x'.repeat(2 * 1024 * 1024))

    // Each stub answers with its container name: the service name resolves to both web addresses, so
    // seeing both names proves NGINX made one server of each.
    const servers = [
      ...tree.replicas.map((replica) => ({name: replica.name, host: replica.ip, port: replica.port})),
      {
        name: 'payment',
        host: '127.0.0.100',
        port: 9443,
        tls: {cert: join(tree.dir, 'payment.pem'), key: join(tree.dir, 'payment.key')},
      },
    ]
    await put(join(tree.dir, 'stubs.mjs'), STUBS)
    // upstreams.conf's resolve form asks the DNS stub for the service names at run time.
    const dns: Record<string, string | string[]> = {'payments.example.test': '127.0.0.100'}
    for (const replica of tree.replicas) dns[replica.service] = [...[dns[replica.service] ?? []].flat(), replica.ip]
    await put(join(tree.dir, 'stubs.json'), JSON.stringify({servers, dns}))

    // The sandbox container keeps the network namespace alive; the stubs and curl join it with nsenter.
    holderPid = (await sandbox()).pid
    await startInside(
      [
        'nsenter',
        '-t',
        String(holderPid),
        '-n',
        process.execPath,
        join(tree.dir, 'stubs.mjs'),
        join(tree.dir, 'stubs.json'),
      ],
      (output) => output.includes('ready'),
      'stubs',
    )
    await startInside(await sandboxCommand(tree.dir, `exec ${NGINX} -g 'daemon off;'`), () => false, 'nginx')
  })

  afterAll(async () => {
    // Each process we started, by its own pid: nginx (SIGQUIT, its graceful stop) and the stubs.
    for (const child of children)
      if (child.pid && child.exitCode === null) child.kill(child.spawnargs.includes(NGINX) ? 'SIGQUIT' : 'SIGTERM')
    await Promise.all(
      children.map((child) => (child.exitCode === null ? new Promise((done) => child.once('exit', done)) : undefined)),
    )
  })

  it('refuses unknown names: no handshake for a foreign SNI, no answer for a foreign Host, no redirect to it', async () => {
    const foreignSni = await run('nsenter', [
      '-t',
      String(holderPid),
      '-n',
      'curl',
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--max-time',
      '10',
      '-k',
      '--resolve',
      'evil.example:443:127.0.0.1',
      'https://evil.example/',
    ]).then(
      () => 'answered',
      (error: {stderr?: string}) => error.stderr ?? '',
    )
    expect(foreignSni).toMatch(/alert|handshake|SSL/i)
    // The right SNI with another Host header, and plain HTTP with a foreign Host: the connection is closed.
    await expect(curl(['--http1.1', '-H', 'Host: evil.example', 'https://api.localhost/'])).rejects.toThrow(
      /Empty reply/,
    )
    // Over HTTP/2 NGINX answers a Host other than the TLS name 421 itself: nothing reaches the service.
    const misdirected = await curl(['-H', 'Host: evil.example', 'https://api.localhost/'])
    expect(misdirected.httpVersion).toBe('2')
    expect(misdirected.status).toBe(421)
    await expect(curl(['-H', 'Host: evil.example', 'http://api.localhost/x'])).rejects.toThrow(/Empty reply/)
  })

  it('sets X-Forwarded-For itself and clears forwarding headers a client sent', async () => {
    const reply = await curl([
      '-H',
      'X-Forwarded-For: 6.6.6.6',
      '-H',
      'Forwarded: for=6.6.6.6;proto=http',
      '-H',
      'X-Forwarded-Ssl: on',
      '-H',
      'X-Forwarded-Prefix: /evil',
      '-H',
      'X-Forwarded-Host: evil.example',
      'https://api.localhost/',
    ])
    expect(reply.status).toBe(200)
    const headers = echoOf(reply).headers
    expect(headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(headers['x-forwarded-host']).toBe('api.localhost')
    expect(headers.forwarded).toBeUndefined()
    expect(headers['x-forwarded-ssl']).toBeUndefined()
    expect(headers['x-forwarded-prefix']).toBeUndefined()
  })

  it('refuses a body over client_max_body_size with a JSON 413', async () => {
    const reply = await curl([
      '-X',
      'POST',
      '--data-binary',
      `@${join(tree.dir, 'big-body')}`,
      'https://api.localhost/',
    ])
    expect(reply.status).toBe(413)
    expect(reply.headers['content-type']).toBe('application/json')
    expect(reply.headers['x-gateway-error']).toBe('body-too-large')
    expect(JSON.parse(reply.body)).toMatchObject({error: 'request body too large'})
  })

  it('redirects HTTP to HTTPS on the published port and serves ACME challenges', async () => {
    const redirect = await curl(['http://api.localhost/some/path?x=1'])
    expect(redirect.status).toBe(308)
    expect(redirect.headers.location).toBe('https://api.localhost:8443/some/path?x=1')
    // 308, not 301: a client must repeat a POST, body and all, at the new address.
    const post = await curl(['-X', 'POST', '-d', 'a=1', 'http://api.localhost/api/things/'])
    expect(post.status).toBe(308)
    expect(post.headers.location).toBe('https://api.localhost:8443/api/things/')

    const token = await curl(['http://api.localhost/.well-known/acme-challenge/token-123'])
    expect(token.status).toBe(200)
    expect(token.body).toBe('token-123.thumbprint')
    expect(token.headers['content-type']).toBe('text/plain')
    expect((await curl(['http://api.localhost/.well-known/acme-challenge/missing'])).status).toBe(404)
  })

  it("proxies a Django route with the forwarding headers and the caller's request id", async () => {
    const reply = await curl(['-H', 'X-Request-ID: verify-route-1', 'https://api.localhost/hello/?x=1'])
    expect(reply.status).toBe(200)
    expect(reply.headers['x-request-id']).toBe('verify-route-1')
    expect(reply.headers['x-gateway-route']).toBe('/')
    expect(reply.headers['x-gateway-upstream']).toBeUndefined()
    expect(reply.headers['strict-transport-security']).toBe('max-age=63072000; includeSubDomains')
    expect(reply.headers['x-content-type-options']).toBe('nosniff')
    const echo = echoOf(reply)
    expect(echo.name).toMatch(/^my-api-web-[12]$/)
    expect(echo.url).toBe('/hello/?x=1')
    expect(echo.headers).toMatchObject({
      host: 'api.localhost',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'api.localhost',
      'x-forwarded-port': '8443',
      'x-request-id': 'verify-route-1',
      'x-real-ip': '127.0.0.1',
    })
  })

  it('makes up a request id when the caller sends none (or a malformed one), and spreads over replicas', async () => {
    const seen = new Set<string>()
    for (let index = 0; index < 4; index++) {
      const reply = await curl(['https://api.localhost/'])
      expect(reply.headers['x-request-id']).toMatch(/^[0-9a-f]{32}$/)
      expect(echoOf(reply).headers['x-request-id']).toBe(reply.headers['x-request-id'])
      seen.add(echoOf(reply).name)
    }

    expect([...seen].sort()).toEqual(['my-api-web-1', 'my-api-web-2'])
    const odd = await curl(['-H', 'X-Request-ID: has spaces"and quotes', 'https://api.localhost/'])
    expect(odd.headers['x-request-id']).toMatch(/^[0-9a-f]{32}$/)
  })

  it('negotiates HTTP/2 by ALPN and still serves HTTP/1.1 clients', async () => {
    const h2 = await curl(['--http2', 'https://api.localhost/hello/'])
    expect(h2.httpVersion).toBe('2')
    expect(h2.status).toBe(200)
    expect(echoOf(h2).url).toBe('/hello/')
    const h1 = await curl(['--http1.1', 'https://api.localhost/hello/'])
    expect(h1.httpVersion).toBe('1.1')
    expect(h1.status).toBe(200)
  })

  it('asks for basic credentials on /secure/ and keeps the prefix', async () => {
    const refused = await curl(['https://api.localhost/secure/data/'])
    expect(refused.status).toBe(401)
    expect(refused.headers['www-authenticate']).toBe('Basic realm="my-api restricted"')
    expect(refused.headers['content-type']).toBe('application/json')
    expect(refused.headers['x-gateway-error']).toBe('unauthorized')
    expect(JSON.parse(refused.body)).toMatchObject({error: 'missing or invalid credentials'})
    expect((await curl(['-u', `${BASIC_USER}:wrong`, 'https://api.localhost/secure/data/'])).status).toBe(401)

    const accepted = await curl(['-u', `${BASIC_USER}:${BASIC_PASSWORD}`, 'https://api.localhost/secure/data/'])
    expect(accepted.status).toBe(200)
    expect(echoOf(accepted).url).toBe('/secure/data/')
    expect(echoOf(accepted).headers.authorization).toBeUndefined()

    const slashless = await curl(['-u', `${BASIC_USER}:${BASIC_PASSWORD}`, 'https://api.localhost/secure'])
    expect(slashless.status).toBe(301)
    expect(slashless.headers.location).toBe('/secure/')
  })

  it('asks for an API key on /api/', async () => {
    const missing = await curl(['https://api.localhost/api/things/'])
    expect(missing.status).toBe(401)
    expect(missing.headers['x-gateway-error']).toBe('unauthorized')
    expect(JSON.parse(missing.body)).toMatchObject({error: 'missing or invalid X-API-Key'})
    expect((await curl(['-H', 'X-API-Key: not-the-key', 'https://api.localhost/api/things/'])).status).toBe(401)

    const accepted = await curl([
      '-H',
      `X-API-Key: ${API_KEY}`,
      '-X',
      'POST',
      '-d',
      'a=1',
      'https://api.localhost/api/things/',
    ])
    expect(accepted.status).toBe(200)
    expect(echoOf(accepted)).toMatchObject({name: 'my-api-api-1', method: 'POST', url: '/api/things/', body: 'a=1'})
    expect(echoOf(accepted).headers['x-api-key']).toBeUndefined()
  })

  it('counts requests refused for a missing API key in the rate limit', async () => {
    // /api2/ allows 1 request a minute. The first one, without a key, is refused by the key check...
    const first = await curl(['-H', 'X-Request-ID: verify-limit-1', 'https://api.localhost/api2/'])
    expect(first.status).toBe(401)
    // ...and has used the allowance: had the 401 come before limit_req, this would pass with 200.
    const second = await curl([
      '-H',
      `X-API-Key: ${API_KEY}`,
      '-H',
      'X-Request-ID: verify-limit-2',
      'https://api.localhost/api2/',
    ])
    expect(second.status).toBe(503)
    expect(second.headers['x-gateway-error']).toBe('rate-limited')
    expect(second.headers['strict-transport-security']).toBe('max-age=63072000; includeSubDomains')
    expect(JSON.parse(second.body)).toEqual({error: 'rate limit exceeded', request_id: 'verify-limit-2'})
  })

  it('asks for a bearer JWT on /private/: signature, exp and nbf checked by njs', async () => {
    const now = Math.floor(Date.now() / 1000)
    const bearer = (token: string) => ['-H', `Authorization: Bearer ${token}`]
    const refusedWith = async (args: string[]) =>
      (await curl([...args, 'https://api.localhost/private/things/'])).status

    const missing = await curl(['https://api.localhost/private/things/'])
    expect(missing.status).toBe(401)
    expect(missing.headers['www-authenticate']).toBe('Bearer')
    expect(missing.headers['x-gateway-error']).toBe('unauthorized')
    expect(missing.headers['content-type']).toBe('application/json')
    expect(JSON.parse(missing.body)).toMatchObject({error: 'missing or invalid bearer token'})

    expect(await refusedWith(bearer(signJwt('another-key-0123456789abcdefghijklmnop', {exp: now + 300})))).toBe(401)
    expect(await refusedWith(bearer(signJwt(JWT_SECRET, {exp: now - 3600})))).toBe(401)
    expect(await refusedWith(bearer(signJwt(JWT_SECRET, {sub: 'no-exp'} as never)))).toBe(401)
    expect(await refusedWith(bearer(signJwt(JWT_SECRET, {exp: now + 600, nbf: now + 300})))).toBe(401)
    expect(await refusedWith(['-H', 'Authorization: Basic Zm9vOmJhcg=='])).toBe(401)
    // alg "none" with the signature dropped, and a good token with its payload swapped.
    const good = signJwt(JWT_SECRET, {sub: 'alice', exp: now + 300})
    const [, payload] = good.split('.')
    const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${payload}.`
    expect(await refusedWith(bearer(none))).toBe(401)
    const forged = good.replace(payload!, Buffer.from(`{"sub":"root","exp":${now + 300}}`).toString('base64url'))
    expect(await refusedWith(bearer(forged))).toBe(401)

    const accepted = await curl([...bearer(good), '-X', 'POST', '-d', 'a=1', 'https://api.localhost/private/things/'])
    expect(accepted.status).toBe(200)
    expect(accepted.headers['x-gateway-route']).toBe('/private/')
    expect(echoOf(accepted)).toMatchObject({name: 'my-api-api-1', method: 'POST', url: '/private/things/', body: 'a=1'})
    expect(echoOf(accepted).headers.authorization).toBeUndefined()

    // Within the leeway: exp 10 s ago, nbf 10 s ahead. Scheme in lower case.
    expect(
      (
        await curl([
          '-H',
          `Authorization: bearer ${signJwt(JWT_SECRET, {exp: now - 10, nbf: now + 10})}`,
          'https://api.localhost/private/',
        ])
      ).status,
    ).toBe(200)
  })

  it('counts requests refused for a missing bearer token in the rate limit', async () => {
    // /private2/ allows 1 request a minute: the refused first one must use it up, as for /api2/.
    const first = await curl(['-H', 'X-Request-ID: verify-jwt-limit-1', 'https://api.localhost/private2/'])
    expect(first.status).toBe(401)
    const token = signJwt(JWT_SECRET, {exp: Math.floor(Date.now() / 1000) + 300})
    const second = await curl([
      '-H',
      `Authorization: Bearer ${token}`,
      '-H',
      'X-Request-ID: verify-jwt-limit-2',
      'https://api.localhost/private2/',
    ])
    expect(second.status).toBe(503)
    expect(second.headers['x-gateway-error']).toBe('rate-limited')
    expect(JSON.parse(second.body)).toEqual({error: 'rate limit exceeded', request_id: 'verify-jwt-limit-2'})
  })

  it('reaches an HTTPS external service, resolved at request time, with the prefix stripped', async () => {
    const reply = await curl(['https://api.localhost/payment/checkout/?order=7'])
    expect(reply.status).toBe(200)
    expect(reply.headers['x-gateway-route']).toBe('/payment/')
    const echo = echoOf(reply)
    expect(echo).toMatchObject({name: 'payment', method: 'GET', url: '/v1/checkout/?order=7'})
    expect(echo.headers).toMatchObject({host: 'payments.example.test:9443', 'x-forwarded-proto': 'https'})
  })

  it('starts although an external host does not resolve, and answers 502 for it only', async () => {
    const reply = await curl(['https://api.localhost/ghost/anything'])
    expect(reply.status, JSON.stringify(reply.headers)).toBe(502)
    expect(reply.headers['x-gateway-error']).toBe('upstream-unavailable')
    expect(reply.headers['content-type']).toBe('application/json')
    expect(JSON.parse(reply.body)).toMatchObject({error: 'upstream unavailable'})
  })

  it('answers the healthcheck on the internal status port', async () => {
    const health = await curl(['http://127.0.0.1:8081/healthz'])
    expect(health.status).toBe(200)
    expect(health.body).toBe('ok\n')
    expect((await curl(['http://127.0.0.1:8081/nginx_status'])).body).toMatch(/^Active connections: \d+/)
  })

  it('writes one JSON object per request to the access log, on its stdout', async () => {
    const lines = nginxStdout.trim().split('\n')
    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(entries.find((entry) => entry.request_id === 'verify-route-1')).toMatchObject({
      method: 'GET',
      uri: '/hello/?x=1',
      status: 200,
      upstream_status: '200',
      route: '/',
      service: 'web',
      host: 'api.localhost',
      upstream_addr: expect.stringMatching(/^127\.0\.0\.[23]:8000$/),
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    })
    // Behind auth_request the route is still known: the subrequest shares the request's variables.
    expect(entries.find((entry) => entry.request_id === 'verify-limit-1')).toMatchObject({
      status: 401,
      route: '/api2/',
      service: 'api',
    })
    expect(entries.find((entry) => entry.request_id === 'verify-limit-2')).toMatchObject({
      status: 503,
      upstream_addr: '',
      route: '/api2/',
    })
    expect(entries.every((entry) => typeof entry.request_time === 'number' && typeof entry.bytes === 'number')).toBe(
      true,
    )
  })
})
