import {mkdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {createServer as createHttpServer, type Server as HttpServer} from 'node:http'
import type {AddressInfo} from 'node:net'
import {join} from 'node:path'
import {createServer as createTlsServer, type Server as TlsServer} from 'node:tls'

import type Docker from 'dockerode'
import {afterEach, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import {issueCertificate, renewCertificate} from '../../src/certs/certbot.js'
import {ACME_DIRECTORIES} from '../../src/certs/certbot-rules.js'
import {CertbotError} from '../../src/certs/certbot-output.js'
import {inspectCertificate} from '../../src/certs/inspect.js'
import {generateSelfSigned, type CertificatePems} from '../../src/certs/self-signed.js'
import type {ExecResult} from '../../src/docker/engine.js'
import {LABELS} from '../../src/docker/spec.js'
import {ManifestError, OperationError, UsageError} from '../../src/errors.js'
import {parseManifest, serializeManifest} from '../../src/manifest/load.js'
import type {Manifest} from '../../src/manifest/schema.js'
import {tempDir} from '../helpers/cli.js'
import {fakeClock, FakeEngine} from '../helpers/fake-engine.js'

/**
 * The whole `certs issue` / `certs renew` flow without Docker: a fake engine whose "certbot" writes a
 * lineage into the project's certbot/config the way certbot does, and a stand-in gateway on 127.0.0.1
 * (a TLS server whose certificate changes only when the fake `nginx -s reload` runs, and an HTTP server
 * serving acme-webroot/ like the gateway's port 80).
 */

const DOMAIN = 'api.example.test'
const CERTBOT_IMAGE = 'create-gateway-offline/certbot:bookworm'
const PEBBLE = 'https://pebble:14000/dir'

let pool: CertificatePems[] = []
let temporary: CertificatePems

beforeAll(async () => {
  // Keys take a moment each: make them once. The temporary one is what init leaves in certs/.
  temporary = await generateSelfSigned({domain: DOMAIN, temporary: true})
  pool = await Promise.all([1, 2, 3, 4].map(() => generateSelfSigned({domain: DOMAIN})))
})

interface CertbotCall {
  args: string[]
  env: string[]
  binds: string[]
}

/** What the fake certbot does for one run; `live` is the host path of config/live/<domain>. */
type CertbotBehaviour = (call: CertbotCall, configDir: string) => Promise<{exitCode: number; output: string}>

class CertbotFakeEngine extends FakeEngine {
  certbotCalls: CertbotCall[] = []
  execs: string[][] = []
  nginxTestExit = 0
  certbot: CertbotBehaviour = async () => ({exitCode: 0, output: ''})
  onReload: () => Promise<void> = async () => {}

  override async startContainer(id: string): Promise<void> {
    const container = this.containersById.get(id)
    if (container?.labels[LABELS.service] !== 'certbot') return super.startContainer(id)
    const options = (container as unknown as {options: Docker.ContainerCreateOptions}).options
    const call = {args: options.Cmd as string[], env: options.Env ?? [], binds: options.HostConfig?.Binds ?? []}
    this.certbotCalls.push(call)
    const configDir = call.binds.find((bind) => bind.includes(':/etc/letsencrypt:'))!.split(':')[0]!
    const outcome = await this.certbot(call, configDir)
    Object.assign(container, {
      status: 'exited',
      running: false,
      exitCode: outcome.exitCode,
      logs: outcome.output.split('\n'),
    })
  }

  override async exec(id: string, cmd: string[]): Promise<ExecResult> {
    this.execs.push(cmd)
    if (cmd.join(' ') === 'nginx -t')
      return {
        exitCode: this.nginxTestExit,
        stdout: '',
        stderr: this.nginxTestExit
          ? 'nginx: [emerg] SSL_CTX_use_PrivateKey failed'
          : 'nginx: configuration file /etc/nginx/nginx.conf test is successful',
      }
    if (cmd.join(' ') === 'nginx -s reload') await this.onReload()
    return {exitCode: 0, stdout: '', stderr: ''}
  }
}

/** Certbot's layout: live/<domain>/{fullchain,privkey}.pem and renewal/<domain>.conf with the server. */
async function writeLineage(configDir: string, pems: CertificatePems, server: string): Promise<void> {
  await mkdir(join(configDir, 'live', DOMAIN), {recursive: true})
  await mkdir(join(configDir, 'renewal'), {recursive: true})
  await writeFile(join(configDir, 'live', DOMAIN, 'fullchain.pem'), pems.cert)
  await writeFile(join(configDir, 'live', DOMAIN, 'privkey.pem'), pems.key, {mode: 0o600})
  await writeFile(
    join(configDir, 'renewal', `${DOMAIN}.conf`),
    `version = 2.1.0\narchive_dir = /etc/letsencrypt/archive/${DOMAIN}\n[renewalparams]\nauthenticator = webroot\nserver = ${server}\n`,
  )
}

function argValue(args: string[], flag: string): string | undefined {
  const index = args.indexOf(flag)
  return index === -1 ? undefined : args[index + 1]
}

interface Fixture {
  dir: string
  manifest: Manifest
  engine: CertbotFakeEngine
  tls: TlsServer
  http: HttpServer
  reloads: number
}

let fixture: Fixture

async function listen<T extends TlsServer | HttpServer>(server: T): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

async function setup(tlsOverrides: Record<string, unknown> = {}): Promise<Fixture> {
  const dir = tempDir('cg-certbot-')
  await mkdir(join(dir, 'certs'), {recursive: true})
  await mkdir(join(dir, 'acme-webroot', '.well-known', 'acme-challenge'), {recursive: true})
  await writeFile(join(dir, 'certs', 'fullchain.pem'), temporary.cert)
  await writeFile(join(dir, 'certs', 'privkey.pem'), temporary.key, {mode: 0o600})

  // The gateway stand-in: serves certs/ as loaded at start and at each reload, and the webroot on "port 80".
  const tls = createTlsServer({cert: temporary.cert, key: temporary.key}, (socket) => socket.end())
  const http = createHttpServer(async (req, res) => {
    const path = join(dir, 'acme-webroot', decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname))
    try {
      const body = await readFile(path)
      res.writeHead(200).end(body)
    } catch {
      res.writeHead(404).end()
    }
  })
  const [https, httpPort] = [await listen(tls), await listen(http)]

  const manifest = parseManifest({
    version: 1,
    name: 'demo',
    domain: DOMAIN,
    bind: '127.0.0.1',
    ports: {http: httpPort, https},
    tls: {mode: 'certbot', email: 'ops@example.com', ...tlsOverrides},
    services: {web: {kind: 'django'}},
    routes: [{path: '/', service: 'web'}],
    images: {certbot: CERTBOT_IMAGE},
  })
  await writeFile(join(dir, 'gateway.yaml'), serializeManifest(manifest))

  const engine = new CertbotFakeEngine([CERTBOT_IMAGE, 'nginx:1.30'])
  const gateway = await engine.createContainer({
    name: 'demo-gateway-1',
    Image: 'nginx:1.30',
    Labels: {[LABELS.project]: 'demo', [LABELS.service]: 'gateway', [LABELS.number]: '1', [LABELS.oneoff]: 'False'},
  })
  await engine.startContainer(gateway)

  const result: Fixture = {dir, manifest, engine, tls, http, reloads: 0}
  engine.onReload = async () => {
    result.reloads += 1
    tls.setSecureContext({
      cert: await readFile(join(dir, 'certs', 'fullchain.pem'), 'utf8'),
      key: await readFile(join(dir, 'certs', 'privkey.pem'), 'utf8'),
    })
  }

  return result
}

/** A certbot that issues pool[n] on each run that would make a new certificate. */
function issuingCertbot(): CertbotBehaviour {
  let next = 0
  return async (call, configDir) => {
    const [command] = call.args
    const exists = await stat(join(configDir, 'live', DOMAIN, 'fullchain.pem')).then(
      () => true,
      () => false,
    )
    const renewing = call.args.includes('--force-renewal') || !exists
    if (command === 'certonly' && renewing) {
      await writeLineage(configDir, pool[next++]!, argValue(call.args, '--server')!)
      return {
        exitCode: 0,
        output: 'Saving debug log to /var/log/letsencrypt/letsencrypt.log\nSuccessfully received certificate.',
      }
    }

    if (command === 'renew' && call.args.includes('--force-renewal')) {
      const server = /server = (\S+)/.exec(await readFile(join(configDir, 'renewal', `${DOMAIN}.conf`), 'utf8'))![1]!
      await writeLineage(configDir, pool[next++]!, server)
      return {exitCode: 0, output: 'Congratulations, all renewals succeeded'}
    }

    return {exitCode: 0, output: 'Certificate not yet due for renewal\nNo renewals were attempted.'}
  }
}

async function installed(dir: string): Promise<string> {
  return inspectCertificate(await readFile(join(dir, 'certs', 'fullchain.pem'))).fingerprint256
}

beforeEach(async () => {
  fixture = await setup()
  fixture.engine.certbot = issuingCertbot()
})

afterEach(async () => {
  fixture.tls.close()
  fixture.http.close()
  await rm(fixture.dir, {recursive: true, force: true})
})

describe('certs issue', () => {
  it('runs certbot on the project network, installs the certificate, tests, reloads and confirms it is served', async () => {
    const bundle = join(fixture.dir, 'pebble.minica.pem')
    await writeFile(bundle, pool[3]!.caCert)
    const result = await issueCertificate({
      dir: fixture.dir,
      engine: fixture.engine,
      clock: fakeClock(),
      server: PEBBLE,
      caBundle: bundle,
    })

    const call = fixture.engine.certbotCalls[0]!
    expect(call.args.slice(0, 4)).toEqual(['certonly', '--webroot', '--webroot-path', '/var/www/acme'])
    expect(argValue(call.args, '--server')).toBe(PEBBLE)
    expect(argValue(call.args, '--email')).toBe('ops@example.com')
    expect(argValue(call.args, '--cert-name')).toBe(DOMAIN)
    expect(call.args).toEqual(expect.arrayContaining(['--agree-tos', '--non-interactive', '--keep-until-expiring']))
    expect(call.env).toContain('REQUESTS_CA_BUNDLE=/etc/create-gateway/acme-ca.pem')
    expect(call.binds).toEqual([
      `${fixture.dir}/certbot/config:/etc/letsencrypt:rw`,
      `${fixture.dir}/certbot/work:/var/lib/letsencrypt:rw`,
      `${fixture.dir}/certbot/logs:/var/log/letsencrypt:rw`,
      `${fixture.dir}/acme-webroot:/var/www/acme:rw`,
      `${fixture.dir}/certbot/acme-ca.pem:/etc/create-gateway/acme-ca.pem:ro`,
    ])
    expect(await readFile(join(fixture.dir, 'certbot', 'acme-ca.pem'), 'utf8')).toBe(pool[3]!.caCert)

    // The one-off container is gone afterwards; only the gateway remains.
    expect(fixture.engine.names()).toEqual(['demo-gateway-1'])
    expect(fixture.engine.calls.some((line) => /^create demo-certbot-run-[0-9a-f]{12}$/.test(line))).toBe(true)

    const expected = inspectCertificate(pool[0]!.cert).fingerprint256
    expect(await installed(fixture.dir)).toBe(expected)
    expect(await readFile(join(fixture.dir, 'certs', 'privkey.pem'), 'utf8')).toBe(pool[0]!.key)
    expect((await stat(join(fixture.dir, 'certs', 'privkey.pem'))).mode & 0o777).toBe(0o600)
    expect(fixture.engine.execs).toEqual([
      ['nginx', '-t'],
      ['nginx', '-s', 'reload'],
    ])
    expect(result).toMatchObject({
      domain: DOMAIN,
      action: 'issued',
      server: PEBBLE,
      installed: true,
      reloaded: true,
      servedFingerprint: expected,
    })
    expect(result.certificate.fingerprint256).toBe(expected)
    expect(result.previousFingerprint).toBe(inspectCertificate(temporary.cert).fingerprint256)
  })

  it('again, with the certificate still valid: certbot keeps it, nothing is installed or reloaded', async () => {
    await issueCertificate({dir: fixture.dir, engine: fixture.engine, clock: fakeClock(), server: PEBBLE})
    fixture.engine.execs = []
    const result = await issueCertificate({
      dir: fixture.dir,
      engine: fixture.engine,
      clock: fakeClock(),
      server: PEBBLE,
    })
    expect(result).toMatchObject({action: 'unchanged', installed: false, reloaded: false})
    expect(fixture.engine.execs).toEqual([])
    expect(fixture.reloads).toBe(1)
  })

  it('from another server (staging, then production) forces certbot to replace the lineage', async () => {
    await issueCertificate({dir: fixture.dir, engine: fixture.engine, clock: fakeClock(), staging: true})
    expect(argValue(fixture.engine.certbotCalls[0]!.args, '--server')).toBe(ACME_DIRECTORIES.staging)
    const result = await issueCertificate({dir: fixture.dir, engine: fixture.engine, clock: fakeClock()})
    const second = fixture.engine.certbotCalls[1]!.args
    expect(argValue(second, '--server')).toBe(ACME_DIRECTORIES.production)
    expect(second).toContain('--force-renewal')
    expect(result.action).toBe('issued')
  })

  it('keeps serving the previous certificate when nginx -t rejects the new one', async () => {
    fixture.engine.nginxTestExit = 1
    const before = await installed(fixture.dir)
    const error = await issueCertificate({
      dir: fixture.dir,
      engine: fixture.engine,
      clock: fakeClock(),
      server: PEBBLE,
    }).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(OperationError)
    expect((error as Error).message).toContain(
      'nginx -t in demo-gateway-1 rejected the new certificate; the previous one is back in place',
    )
    expect((error as Error).message).toContain('SSL_CTX_use_PrivateKey failed')
    expect(await installed(fixture.dir)).toBe(before)
    expect(await readFile(join(fixture.dir, 'certs', 'privkey.pem'), 'utf8')).toBe(temporary.key)
    expect(fixture.reloads).toBe(0)
  })

  it('turns certbot\'s NXDOMAIN into "does not resolve" and leaves certs/ alone', async () => {
    fixture.engine.certbot = async () => ({
      exitCode: 1,
      output:
        'Certbot failed to authenticate some domains (authenticator: webroot).\n  Domain: api.example.test\n  Type:   dns\n  Detail: DNS problem: NXDOMAIN looking up A for api.example.test',
    })
    const before = await installed(fixture.dir)
    const error = await issueCertificate({
      dir: fixture.dir,
      engine: fixture.engine,
      clock: fakeClock(),
      server: PEBBLE,
    }).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(CertbotError)
    expect((error as CertbotError).kind).toBe('dns')
    expect((error as Error).message).toContain('api.example.test does not resolve for the certificate authority')
    expect(await installed(fixture.dir)).toBe(before)
    expect(fixture.engine.names()).toEqual(['demo-gateway-1'])
  })

  it('fails before certbot runs when the gateway does not serve the webroot', async () => {
    fixture.http.removeAllListeners('request')
    fixture.http.on('request', (_req, res) => res.writeHead(301, {location: 'https://elsewhere/'}).end())
    const error = await issueCertificate({
      dir: fixture.dir,
      engine: fixture.engine,
      clock: fakeClock(),
      server: PEBBLE,
    }).catch((caught: unknown) => caught)
    expect((error as Error).message).toMatch(
      /The gateway does not serve the ACME webroot: GET http:\/\/127\.0\.0\.1:\d+\/\.well-known\/acme-challenge\/create-gateway-selftest-[0-9a-f]+ answered 301/,
    )
    expect(fixture.engine.certbotCalls).toEqual([])
  })

  it('needs a running gateway', async () => {
    const gateway = (await fixture.engine.containers({[LABELS.service]: 'gateway'}))[0]!
    await fixture.engine.stopContainer(gateway.id)
    const error = await issueCertificate({
      dir: fixture.dir,
      engine: fixture.engine,
      clock: fakeClock(),
      server: PEBBLE,
    }).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(UsageError)
    expect((error as UsageError).message).toContain('The gateway of demo is not running')
    expect((error as UsageError).hint).toContain('create-gateway up')
  })

  it('refuses bad input with exit code 2: other tls modes, no email, --server with --staging, a bad --ca-bundle', async () => {
    const selfSigned = parseManifest({...fixture.manifest, tls: {mode: 'self-signed'}})
    await writeFile(join(fixture.dir, 'gateway.yaml'), serializeManifest(selfSigned))
    await expect(issueCertificate({dir: fixture.dir, engine: fixture.engine, clock: fakeClock()})).rejects.toThrow(
      /tls\.mode is self-signed in gateway\.yaml/,
    )

    await writeFile(
      join(fixture.dir, 'gateway.yaml'),
      serializeManifest(fixture.manifest).replace(/\n\s+email: ops@example\.com/, ''),
    )
    const noEmail = await issueCertificate({dir: fixture.dir, engine: fixture.engine, clock: fakeClock()}).catch(
      (caught: unknown) => caught,
    )
    expect(noEmail).toBeInstanceOf(ManifestError)
    expect((noEmail as ManifestError).exitCode).toBe(2)
    expect((noEmail as Error).message).toContain('tls.email: is required when tls.mode is certbot')

    await writeFile(join(fixture.dir, 'gateway.yaml'), serializeManifest(fixture.manifest))
    await expect(
      issueCertificate({dir: fixture.dir, engine: fixture.engine, clock: fakeClock(), server: PEBBLE, staging: true}),
    ).rejects.toBeInstanceOf(UsageError)
    await expect(
      issueCertificate({
        dir: fixture.dir,
        engine: fixture.engine,
        clock: fakeClock(),
        server: 'http://pebble:14000/dir',
      }),
    ).rejects.toThrow(/https:\/\//)
    const notPem = join(fixture.dir, 'not.pem')
    await writeFile(notPem, 'hello')
    await expect(
      issueCertificate({
        dir: fixture.dir,
        engine: fixture.engine,
        clock: fakeClock(),
        server: PEBBLE,
        caBundle: notPem,
      }),
    ).rejects.toThrow(/--ca-bundle: .* is not a readable PEM certificate/)
    expect(fixture.engine.certbotCalls).toEqual([])
  })

  it('refuses local names no CA issues for', async () => {
    await writeFile(
      join(fixture.dir, 'gateway.yaml'),
      serializeManifest(parseManifest({...fixture.manifest, domain: 'api.localhost'})),
    )
    await expect(issueCertificate({dir: fixture.dir, engine: fixture.engine, clock: fakeClock()})).rejects.toThrow(
      /api\.localhost is a local name/,
    )
  })
})

describe('certs renew', () => {
  it('needs an issued certificate first', async () => {
    const error = await renewCertificate({dir: fixture.dir, engine: fixture.engine, clock: fakeClock()}).catch(
      (caught: unknown) => caught,
    )
    expect(error).toBeInstanceOf(UsageError)
    expect((error as Error).message).toContain(`No certificate for ${DOMAIN} has been issued in this project yet`)
    expect((error as UsageError).hint).toContain('certs issue')
  })

  it('not due: certbot renews nothing, the gateway is not reloaded', async () => {
    await issueCertificate({dir: fixture.dir, engine: fixture.engine, clock: fakeClock(), server: PEBBLE})
    fixture.engine.execs = []
    const result = await renewCertificate({dir: fixture.dir, engine: fixture.engine, clock: fakeClock()})
    expect(fixture.engine.certbotCalls[1]!.args).toEqual([
      'renew',
      '--cert-name',
      DOMAIN,
      '--non-interactive',
      '--no-random-sleep-on-renew',
    ])
    expect(result).toMatchObject({action: 'unchanged', installed: false, reloaded: false, server: PEBBLE})
    expect(fixture.engine.execs).toEqual([])
  })

  it('--force: a new certificate, installed and served; the CA bundle kept by issue is used again', async () => {
    const bundle = join(fixture.dir, 'pebble.minica.pem')
    await writeFile(bundle, pool[3]!.caCert)
    const issued = await issueCertificate({
      dir: fixture.dir,
      engine: fixture.engine,
      clock: fakeClock(),
      server: PEBBLE,
      caBundle: bundle,
    })
    const renewed = await renewCertificate({dir: fixture.dir, engine: fixture.engine, clock: fakeClock(), force: true})
    expect(fixture.engine.certbotCalls[1]!.args).toContain('--force-renewal')
    expect(fixture.engine.certbotCalls[1]!.env).toContain('REQUESTS_CA_BUNDLE=/etc/create-gateway/acme-ca.pem')
    expect(renewed).toMatchObject({
      action: 'renewed',
      installed: true,
      reloaded: true,
      previousFingerprint: issued.certificate.fingerprint256,
    })
    expect(renewed.servedFingerprint).not.toBe(issued.servedFingerprint)
    expect(renewed.servedFingerprint).toBe(await installed(fixture.dir))
    expect(fixture.reloads).toBe(2)
  })

  it('installs a certificate certbot renewed outside create-gateway (docker compose run certbot)', async () => {
    await issueCertificate({dir: fixture.dir, engine: fixture.engine, clock: fakeClock(), server: PEBBLE})
    await writeLineage(join(fixture.dir, 'certbot', 'config'), pool[2]!, PEBBLE)
    const result = await renewCertificate({dir: fixture.dir, engine: fixture.engine, clock: fakeClock()})
    expect(result).toMatchObject({action: 'unchanged', installed: true, reloaded: true})
    expect(await installed(fixture.dir)).toBe(inspectCertificate(pool[2]!.cert).fingerprint256)
  })

  it('reloads when certs/ is current but the gateway still serves an older certificate', async () => {
    await issueCertificate({dir: fixture.dir, engine: fixture.engine, clock: fakeClock(), server: PEBBLE})
    fixture.tls.setSecureContext({cert: temporary.cert, key: temporary.key}) // e.g. a reload that never happened
    fixture.engine.execs = []
    const result = await renewCertificate({dir: fixture.dir, engine: fixture.engine, clock: fakeClock()})
    expect(result).toMatchObject({action: 'unchanged', installed: false, reloaded: true})
    expect(fixture.engine.execs).toEqual([['nginx', '-s', 'reload']])
  })
})

describe('confirming the served certificate', () => {
  it('is not fooled by one handshake on a new worker while old workers still serve the old certificate', async () => {
    const {createSecureContext} = await import('node:tls')
    const {confirmServed} = await import('../../src/certs/install.js')
    const contexts = [
      createSecureContext({cert: pool[0]!.cert, key: pool[0]!.key}),
      createSecureContext({cert: temporary.cert, key: temporary.key}),
    ]
    let handshakes = 0
    // Like NGINX right after a reload: new and old workers both accept, so answers alternate.
    const server = createTlsServer({SNICallback: (_name, done) => done(null, contexts[handshakes++ % 2]!)}, (socket) =>
      socket.end(),
    )
    const port = await listen(server)
    try {
      const expected = inspectCertificate(pool[0]!.cert).fingerprint256
      const manifest = {...fixture.manifest, ports: {...fixture.manifest.ports, https: port}}
      const error = await confirmServed(manifest, expected, {clock: fakeClock(), timeoutMs: 2000}).catch(
        (caught: unknown) => caught,
      )
      expect((error as Error).message).toMatch(
        /^Timed out after 2000 ms waiting for the gateway on 127\.0\.0\.1:\d+ \(SNI api\.example\.test\) to serve the certificate .* \(last: it serves /,
      )
      expect(handshakes).toBeGreaterThan(3)

      // Once every worker serves the new one, a streak of rounds confirms it.
      contexts[1] = contexts[0]!
      await expect(confirmServed(manifest, expected, {clock: fakeClock()})).resolves.toBe(expected)
    } finally {
      server.close()
    }
  })
})
