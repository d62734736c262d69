import {readFileSync, rmSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {join} from 'node:path'
import {connect} from 'node:tls'
import {X509Certificate} from 'node:crypto'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {DockerodeEngine} from '../../src/docker/engine.js'
import {retryUntil} from '../../src/util/retry.js'
import {tempDir} from '../helpers/cli.js'
import {
  cleanupRun,
  docker,
  gatewayAccessLog,
  newRunId,
  OFFLINE_IMAGES,
  projectContainersChecked,
  runCliAsync,
  waitForEngineAndImages,
} from '../helpers/e2e.js'

/**
 * Certbot against a real ACME server: Let's Encrypt's Pebble (Debian's package, in an offline image) on
 * the project network, validating HTTP-01 for real through our gateway's port 80. Pebble resolves the
 * domain with Docker's embedded DNS, which knows it because the gateway carries it as a network alias.
 * Nothing is published but the gateway's ports, on 127.0.0.1 in 29000-29999; everything carries the
 * run id and afterAll removes it whatever happened.
 */

const RUN_ID = newRunId()
const ENV = {CREATE_GATEWAY_RUN_ID: RUN_ID}
const DOMAIN = 'api.example.test'
const NAME = `cgcb-${RUN_ID}`
const NETWORK = `${NAME}_default`
const GATEWAY = `${NAME}-gateway-1`
const PEBBLE = `${NAME}-pebble`
const IMAGES = {
  ...OFFLINE_IMAGES,
  certbot: 'create-gateway-offline/certbot:bookworm',
  pebble: 'create-gateway-offline/pebble:bookworm',
} as const
const engine = new DockerodeEngine()

let parent = ''
let dir = ''
let ports = {http: 29080, https: 29443}

const cli = (args: string[], timeoutMs = 240_000) => runCliAsync(args, {cwd: parent, env: ENV, timeoutMs})

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({host: '127.0.0.1', port, exclusive: true}, () => server.close(() => resolve(true)))
  })
}

/** 29080/29443 as in the issue when free, else another free pair in our 29000-29999 range. */
async function choosePorts(): Promise<{http: number; https: number}> {
  const candidates = [
    [29080, 29443],
    ...Array.from({length: 40}, (_, index) => [29100 + index * 20, 29101 + index * 20]),
  ] as Array<[number, number]>
  for (const [http, https] of candidates) if ((await portFree(http)) && (await portFree(https))) return {http, https}
  throw new Error('no free port pair in 29000-29999 on 127.0.0.1')
}

interface Served {
  fingerprint256: string
  subject: string
  issuer: string
  subjectAltName: string
}

/** The certificate the gateway presents on 127.0.0.1 for SNI = domain (trust is verify's question). */
function served(): Promise<Served> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port: ports.https,
      servername: DOMAIN,
      rejectUnauthorized: false,
      timeout: 10_000,
    })
    socket.once('secureConnect', () => {
      const x509 = socket.getPeerX509Certificate()!
      socket.destroy()
      resolve({
        fingerprint256: x509.fingerprint256,
        subject: x509.subject,
        issuer: x509.issuer,
        subjectAltName: x509.subjectAltName ?? '',
      })
    })
    socket.once('error', reject)
    socket.once('timeout', () => socket.destroy(new Error('TLS handshake timed out')))
  })
}

function onDisk(): X509Certificate {
  return new X509Certificate(readFileSync(join(dir, 'certs', 'fullchain.pem')))
}

async function execOut(container: string, cmd: string[]): Promise<string> {
  const result = await engine.exec(container, cmd)
  if (result.exitCode !== 0)
    throw new Error(`${cmd.join(' ')} in ${container}: exit ${result.exitCode}: ${result.stderr}`)
  return result.stdout
}

/** Access-log entries (JSON lines on the gateway's stdout) for ACME challenge paths. */
async function challengeRequests(): Promise<
  Array<{uri: string; status: number; user_agent: string; remote_addr: string}>
> {
  return (await gatewayAccessLog(NAME))
    .split('\n')
    .filter((line) => line.includes('/.well-known/acme-challenge/'))
    .map((line) => JSON.parse(line) as {uri: string; status: number; user_agent: string; remote_addr: string})
}

async function startPebble(): Promise<void> {
  const container = await docker.createContainer({
    name: PEBBLE,
    Image: IMAGES.pebble,
    Labels: {'dev.create-gateway.run-id': RUN_ID},
    // Validate HTTP-01 on port 80 (the gateway's container port), at once, with nothing skipped:
    // no PEBBLE_VA_ALWAYS_VALID, no authorization reuse, so renewals validate again too.
    Env: ['PEBBLE_VA_NOSLEEP=1', 'PEBBLE_WFE_NONCEREJECT=0', 'PEBBLE_AUTHZREUSE=0'],
    Entrypoint: ['sh', '-c'],
    Cmd: [
      'sed \'s/"httpPort": *[0-9]*/"httpPort": 80/\' /test/config/pebble-config.json > /tmp/pebble.json && exec pebble -config /tmp/pebble.json',
    ],
    HostConfig: {NetworkMode: NETWORK},
    NetworkingConfig: {EndpointsConfig: {[NETWORK]: {Aliases: ['pebble']}}},
  })
  await container.start()
  await retryUntil(
    async () =>
      (
        await engine.exec(PEBBLE, [
          'curl',
          '-s',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '--cacert',
          '/test/certs/pebble.minica.pem',
          'https://pebble:14000/dir',
        ])
      ).stdout,
    (code) => code === '200',
    {timeoutMs: 30_000, intervalMs: 250, describe: 'Pebble to serve its ACME directory'},
  )
}

/** Docker's DNS answers for a network alias only: re-attach the gateway with the domain as one. */
async function aliasDomainToGateway(): Promise<void> {
  const network = docker.getNetwork(NETWORK)
  await network.disconnect({Container: GATEWAY})
  await network.connect({Container: GATEWAY, EndpointConfig: {Aliases: ['gateway', GATEWAY, DOMAIN]}})
  await retryUntil(
    async () =>
      (
        await engine.exec(PEBBLE, [
          'curl',
          '-s',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          `http://${DOMAIN}/.well-known/acme-challenge/.keep`,
        ])
      ).stdout,
    (code) => code === '200',
    {timeoutMs: 30_000, intervalMs: 250, describe: `${DOMAIN} to reach the gateway from Pebble`},
  )
}

beforeAll(async () => {
  await waitForEngineAndImages(240_000)
  await retryUntil(
    async () => {
      for (const image of [IMAGES.certbot, IMAGES.pebble])
        if (!(await engine.image(image))) return `image ${image} missing (run fixtures/images/build.sh)`
      return 'ready'
    },
    (state) => state === 'ready',
    {
      timeoutMs: 240_000,
      intervalMs: 2000,
      describe: 'the certbot and pebble stand-in images',
      explain: (state) => state,
    },
  )
  parent = tempDir('cg-certbot-e2e-')
  dir = join(parent, NAME)
  ports = await choosePorts()
}, 400_000)

afterAll(async () => {
  await cleanupRun(RUN_ID, [NAME])
  if (parent) rmSync(parent, {recursive: true, force: true})
}, 120_000)

describe('certbot mode against Pebble, validated through the gateway', () => {
  let temporaryFingerprint = ''
  let issuedFingerprint = ''

  it('init --tls certbot + up: the gateway is healthy on the temporary certificate', async () => {
    const init = await cli([
      'init',
      dir,
      '--yes',
      '--name',
      NAME,
      '--tls',
      'certbot',
      '--email',
      'ops@example.com',
      '--domain',
      DOMAIN,
      '--http-port',
      String(ports.http),
      '--https-port',
      String(ports.https),
      '--python-image',
      IMAGES.python,
      '--nginx-image',
      IMAGES.nginx,
      '--certbot-image',
      IMAGES.certbot,
    ])
    expect(init.status, init.stderr).toBe(0)
    expect(readFileSync(join(dir, 'docker-compose.yml'), 'utf8')).toMatch(
      /certbot:\n\s+image: create-gateway-offline\/certbot:bookworm\n\s+profiles:\n\s+- certbot/,
    )

    const up = await cli(['up', '--dir', dir, '--timeout', '150'])
    expect(up.status, `${up.stdout}\n${up.stderr}`).toBe(0)
    const gateway = (await projectContainersChecked(NAME)).find((container) => container.Names[0] === `/${GATEWAY}`)
    expect(gateway?.Status).toContain('(healthy)')
    // up starts no certbot container: the service is under a Compose profile.
    expect(
      (await engine.containers({'com.docker.compose.project': NAME})).map((container) => container.name).sort(),
    ).toEqual([GATEWAY, `${NAME}-web-1`, `${NAME}-web-2`])

    const cert = await served()
    expect(cert.subject).toContain('O=create-gateway temporary certificate')
    expect(cert.fingerprint256).toBe(onDisk().fingerprint256)
    temporaryFingerprint = cert.fingerprint256

    const status = await cli(['status', '--dir', dir])
    expect(status.stdout).toContain(
      'Certificate: temporary self-signed stand-in; run `create-gateway certs issue` for the real one.',
    )
  }, 300_000)

  it('certs issue while the domain resolves nowhere: one clear message, exit 1, nothing installed', async () => {
    await startPebble()
    writeFileSync(join(parent, 'pebble.minica.pem'), await execOut(PEBBLE, ['cat', '/test/certs/pebble.minica.pem']))
    const result = await cli([
      'certs',
      'issue',
      '--dir',
      dir,
      '--server',
      'https://pebble:14000/dir',
      '--ca-bundle',
      join(parent, 'pebble.minica.pem'),
    ])
    expect(result.status, result.stderr).toBe(1)
    expect(result.stderr).toContain(
      `Error: ${DOMAIN} does not resolve for the certificate authority, so it cannot check that you control it`,
    )
    expect(result.stderr).toContain('no such host')
    expect(result.stderr).toContain(`Create an A (and/or AAAA) record for ${DOMAIN}`)
    expect(onDisk().fingerprint256).toBe(temporaryFingerprint)
    // The one-off certbot container is gone.
    expect(
      (await engine.containers({'com.docker.compose.service': 'certbot', 'com.docker.compose.project': NAME})).length,
    ).toBe(0)
  }, 120_000)

  it("certs issue: Pebble validates through the gateway and the gateway serves Pebble's certificate", async () => {
    await aliasDomainToGateway()
    const result = await cli([
      'certs',
      'issue',
      '--dir',
      dir,
      '--server',
      'https://pebble:14000/dir',
      '--ca-bundle',
      join(parent, 'pebble.minica.pem'),
    ])
    expect(result.status, `${result.stdout}\n${result.stderr}`).toBe(0)
    expect(result.stdout).toContain(`Issued a certificate for ${DOMAIN}`)
    expect(result.stdout).toContain('installed in certs/, nginx -t passed, gateway reloaded')

    const cert = await served()
    expect(cert.issuer).toMatch(/CN=Pebble Intermediate CA/)
    expect(cert.subjectAltName).toBe(`DNS:${DOMAIN}`)
    const disk = onDisk()
    expect(cert.fingerprint256).toBe(disk.fingerprint256)
    expect(cert.fingerprint256).not.toBe(temporaryFingerprint)
    expect(
      readFileSync(join(dir, 'certs', 'fullchain.pem'), 'utf8').match(/BEGIN CERTIFICATE/g)!.length,
    ).toBeGreaterThanOrEqual(2) // leaf + intermediate
    issuedFingerprint = cert.fingerprint256

    // The challenge really went through NGINX: Pebble's validation request is in the access log, answered 200.
    const pebbleAddress = (await docker.getContainer(PEBBLE).inspect()).NetworkSettings.Networks[NETWORK]!.IPAddress
    const validations = (await challengeRequests()).filter(
      (entry) =>
        entry.remote_addr === pebbleAddress && /Pebble/.test(entry.user_agent) && !entry.uri.endsWith('/.keep'),
    )
    expect(validations.length).toBeGreaterThan(0)
    expect(validations.every((entry) => entry.status === 200)).toBe(true)

    const status = await cli(['status', '--dir', dir])
    expect(status.stdout).toMatch(/Certificate: issued by Pebble Intermediate CA \w+, \d+ days left/)
    const json = await cli(['status', '--dir', dir, '--json'])
    const certificate = (
      JSON.parse(json.stdout) as {certificate: {mode: string; issuer: string; daysLeft: number; temporary: boolean}}
    ).certificate
    expect(certificate).toMatchObject({
      mode: 'certbot',
      temporary: false,
      issuer: expect.stringMatching(/^Pebble Intermediate CA/),
    })
    expect(certificate.daysLeft).toBeGreaterThan(0)
  }, 240_000)

  it('certs renew when nothing is due: no reload, the same certificate', async () => {
    const result = await cli(['certs', 'renew', '--dir', dir])
    expect(result.status, `${result.stdout}\n${result.stderr}`).toBe(0)
    expect(result.stdout).toContain('is current (not due for renewal)')
    expect(result.stdout).toContain('nothing reloaded')
    expect((await served()).fingerprint256).toBe(issuedFingerprint)
  }, 240_000)

  it('certs renew --force: a new certificate from Pebble, and the gateway serves it', async () => {
    const validationsBefore = (await challengeRequests()).length
    const result = await cli(['certs', 'renew', '--dir', dir, '--force', '--json'])
    expect(result.status, `${result.stdout}\n${result.stderr}`).toBe(0)
    const report = JSON.parse(result.stdout) as {
      action: string
      reloaded: boolean
      previousFingerprint: string
      servedFingerprint: string
    }
    expect(report).toMatchObject({action: 'renewed', reloaded: true, previousFingerprint: issuedFingerprint})
    const cert = await served()
    expect(cert.fingerprint256).not.toBe(issuedFingerprint)
    expect(cert.fingerprint256).toBe(onDisk().fingerprint256)
    expect(cert.fingerprint256).toBe(report.servedFingerprint)
    expect(cert.issuer).toMatch(/CN=Pebble Intermediate CA/)
    // Validated again through the gateway (Pebble reuses no authorization here).
    expect((await challengeRequests()).length).toBeGreaterThan(validationsBefore)
  }, 240_000)

  it("verify --only tls passes when trusting Pebble's root, and fails on the system store", async () => {
    const root = await execOut(PEBBLE, [
      'curl',
      '-sS',
      '--cacert',
      '/test/certs/pebble.minica.pem',
      'https://pebble:15000/roots/0',
    ])
    expect(new X509Certificate(root).subject).toMatch(/CN=Pebble Root CA/)
    writeFileSync(join(parent, 'pebble-root.pem'), root)

    const trusted = await cli([
      'verify',
      '--dir',
      dir,
      '--only',
      'tls',
      '--ca-file',
      join(parent, 'pebble-root.pem'),
      '--json',
    ])
    const report = JSON.parse(trusted.stdout) as {ok: boolean; checks: Array<{id: string; ok: boolean; detail: string}>}
    expect(report.checks[0]!.detail).toContain(`certificate for ${DOMAIN} trusted by`)
    expect(trusted.status, trusted.stdout).toBe(0)
    expect(report.ok).toBe(true)
    expect(report.checks[0]!.detail).toMatch(/\d+ days left/)

    const untrusted = await cli(['verify', '--dir', dir, '--only', 'tls', '--json'])
    expect(untrusted.status).toBe(1)
    expect((JSON.parse(untrusted.stdout) as {checks: Array<{detail: string}>}).checks[0]!.detail).toContain(
      'certificate not trusted by system store',
    )
  }, 120_000)
})
