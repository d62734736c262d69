import {execFileSync} from 'node:child_process'
import {createPrivateKey, X509Certificate} from 'node:crypto'
import {mkdtemp, readFile, rm, stat, writeFile} from 'node:fs/promises'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {connect, createServer} from 'node:tls'
import {afterEach, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import {inspectCertificate, parseSubjectAltName} from '../../src/certs/inspect.js'
import {
  CERT_FILES,
  generateSelfSigned,
  issueProjectCertificates,
  loadExistingCa,
  type CertificatePems,
} from '../../src/certs/self-signed.js'
import {parseManifest} from '../../src/manifest/load.js'
import type {Manifest} from '../../src/manifest/schema.js'

const DOMAIN = 'api.localhost'
const DAY_MS = 86_400_000

function manifest(overrides: Record<string, unknown> = {}): Manifest {
  return parseManifest({
    version: 1,
    name: 'demo',
    domain: DOMAIN,
    services: {web: {kind: 'django'}},
    routes: [{path: '/', service: 'web'}],
    ...overrides,
  })
}

const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'])
    return true
  } catch {
    return false
  }
})()

/** Connect to a TLS server holding the leaf; resolve what the client concluded about it. */
async function handshake(
  pems: CertificatePems,
  options: {servername?: string; ca?: string},
): Promise<{authorized: boolean; error?: string}> {
  const server = createServer({key: pems.key, cert: pems.cert}, (socket) => socket.end())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const {port} = server.address() as AddressInfo
    return await new Promise((resolve, reject) => {
      // rejectUnauthorized false: keep the socket open so the test can read why it would be refused.
      const socket = connect(
        {
          host: '127.0.0.1',
          port,
          ca: options.ca ?? pems.caCert,
          servername: options.servername,
          rejectUnauthorized: false,
        },
        () => {
          resolve({authorized: socket.authorized, error: socket.authorizationError?.toString()})
          socket.destroy()
        },
      )
      socket.on('error', reject)
    })
  } finally {
    server.close()
  }
}

describe('generateSelfSigned', () => {
  let pems: CertificatePems
  let now: Date

  beforeAll(async () => {
    now = new Date()
    const started = performance.now()
    pems = await generateSelfSigned({domain: DOMAIN, now})
    console.log(`CA + leaf (2 x RSA 2048, native) generated in ${Math.round(performance.now() - started)} ms`)
  })

  it('makes a CA that is a CA, self-signed, valid about five years', () => {
    const ca = new X509Certificate(pems.caCert)
    expect(ca.ca).toBe(true)
    expect(ca.subject).toContain(`CN=create-gateway local CA (${DOMAIN})`)
    expect(ca.checkIssued(ca)).toBe(true)
    expect(ca.verify(ca.publicKey)).toBe(true)
    const years = (new Date(ca.validTo).getTime() - now.getTime()) / (365 * DAY_MS)
    expect(years).toBeGreaterThan(4.9)
    expect(years).toBeLessThanOrEqual(5)
    expect(createPrivateKey(pems.caKey).asymmetricKeyDetails?.modulusLength).toBe(2048)
  })

  it('makes a leaf for the domain, localhost and 127.0.0.1 signed by the CA', () => {
    const ca = new X509Certificate(pems.caCert)
    const leaf = new X509Certificate(pems.cert)
    expect(leaf.ca).toBe(false)
    expect(leaf.subject).toContain(`CN=${DOMAIN}`)
    expect(leaf.subjectAltName).toBe(`DNS:${DOMAIN}, DNS:localhost, IP Address:127.0.0.1`)
    expect(leaf.checkHost(DOMAIN)).toBe(DOMAIN)
    expect(leaf.checkHost('localhost')).toBe('localhost')
    expect(leaf.checkHost('other.localhost')).toBeUndefined()
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1')
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']) // extKeyUsage serverAuth
    expect(leaf.verify(ca.publicKey)).toBe(true)
    expect(leaf.checkIssued(ca)).toBe(true)
    expect(leaf.checkPrivateKey(createPrivateKey(pems.key))).toBe(true)
    expect(leaf.issuer).toBe(ca.subject)
  })

  it('keeps the leaf within 397 days, backdated a little, and uses random positive 16-byte serials', () => {
    const leaf = new X509Certificate(pems.cert)
    const from = new Date(leaf.validFrom).getTime()
    const to = new Date(leaf.validTo).getTime()
    expect(from).toBeLessThanOrEqual(now.getTime())
    expect(now.getTime() - from).toBeLessThan(3_601_000) // 1 h back; X.509 times drop milliseconds
    expect(to - from).toBeLessThanOrEqual(397 * DAY_MS)
    expect(Math.round((to - now.getTime()) / DAY_MS)).toBe(365)
    const serials = [leaf.serialNumber, new X509Certificate(pems.caCert).serialNumber]
    for (const serial of serials) expect(serial).toMatch(/^[4-7][0-9A-F]{31}$/)
    expect(serials[0]).not.toBe(serials[1])
  })

  it('completes a TLS handshake for the domain and refuses another name', async () => {
    expect(await handshake(pems, {servername: DOMAIN})).toEqual({authorized: true, error: undefined})
    expect(await handshake(pems, {servername: 'localhost'})).toMatchObject({authorized: true})
    expect(await handshake(pems, {})).toMatchObject({authorized: true}) // no SNI: host 127.0.0.1 against the IP SAN
    expect(await handshake(pems, {servername: 'evil.example'})).toEqual({
      authorized: false,
      error: 'ERR_TLS_CERT_ALTNAME_INVALID',
    })
  })

  it('is refused by a client that trusts a different CA', async () => {
    const other = await generateSelfSigned({domain: DOMAIN})
    const result = await handshake(pems, {servername: DOMAIN, ca: other.caCert})
    expect(result.authorized).toBe(false)
    expect(result.error).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/)
  })

  it.skipIf(!hasOpenssl)('passes openssl verify -x509_strict as a server certificate', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cg-openssl-'))
    try {
      await writeFile(join(dir, 'ca.pem'), pems.caCert)
      await writeFile(join(dir, 'fullchain.pem'), pems.cert)
      const out = execFileSync(
        'openssl',
        [
          'verify',
          '-x509_strict',
          '-purpose',
          'sslserver',
          '-verify_hostname',
          DOMAIN,
          '-CAfile',
          join(dir, 'ca.pem'),
          join(dir, 'fullchain.pem'),
        ],
        {encoding: 'utf8'},
      )
      expect(out.trim()).toBe(`${join(dir, 'fullchain.pem')}: OK`)
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })
})

describe('generateSelfSigned edge cases', () => {
  it('puts an IP-address domain in an IP SAN, not a DNS one', async () => {
    const pems = await generateSelfSigned({domain: '192.0.2.10'})
    const leaf = inspectCertificate(pems.cert)
    expect(leaf.sans).toEqual(['IP:192.0.2.10', 'DNS:localhost', 'IP:127.0.0.1'])
    expect(leaf.dnsNames).toEqual(['localhost'])
    expect(leaf.checkIP('192.0.2.10')).toBe(true)
    expect((await handshake(pems, {})).authorized).toBe(true)
  })

  it('does not repeat a name already in the defaults', async () => {
    const leaf = inspectCertificate((await generateSelfSigned({domain: 'localhost'})).cert)
    expect(leaf.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1')
  })

  it('refuses a leaf longer than 397 days', async () => {
    await expect(generateSelfSigned({domain: DOMAIN, validDays: 398})).rejects.toThrow(/1 to 397 days/)
  })
})

describe('issueProjectCertificates', () => {
  let dir: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cg-certs-'))
  })

  afterEach(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  const mode = async (path: string) => (await stat(join(dir, path))).mode & 0o777
  const read = async (path: string) => readFile(join(dir, path), 'utf8')

  it('writes CA, leaf and keys with key files 0600', async () => {
    const result = await issueProjectCertificates(dir, manifest())
    console.log(`issueProjectCertificates (new CA) took ${result.ms} ms`)
    expect(result.reusedCa).toBe(false)
    expect(result.files.sort()).toEqual([
      'certs/ca.pem',
      'certs/fullchain.pem',
      'certs/privkey.pem',
      'secrets/ca-key.pem',
    ])
    expect(await mode(CERT_FILES.privkey)).toBe(0o600)
    expect(await mode(CERT_FILES.caKey)).toBe(0o600)
    expect(await mode(CERT_FILES.fullchain)).toBe(0o644)
    expect(await mode(CERT_FILES.ca)).toBe(0o644)
    const leaf = new X509Certificate(await read(CERT_FILES.fullchain))
    expect(leaf.checkIssued(new X509Certificate(await read(CERT_FILES.ca)))).toBe(true)
    expect(await read(CERT_FILES.fullchain)).not.toContain('\r')
  })

  it('reuses a valid CA on the next run (even under force) and issues a new leaf; rotateCa makes a new CA', async () => {
    await issueProjectCertificates(dir, manifest())
    const ca1 = inspectCertificate(await read(CERT_FILES.ca)).fingerprint256
    const leaf1 = inspectCertificate(await read(CERT_FILES.fullchain)).fingerprint256

    const second = await issueProjectCertificates(dir, manifest({domain: 'api2.localhost'}), {force: true})
    console.log(`issueProjectCertificates (reused CA) took ${second.ms} ms`)
    expect(second.reusedCa).toBe(true)
    expect(second.files.sort()).toEqual(['certs/fullchain.pem', 'certs/privkey.pem'])
    expect(inspectCertificate(await read(CERT_FILES.ca)).fingerprint256).toBe(ca1)
    const leaf2 = inspectCertificate(await read(CERT_FILES.fullchain))
    expect(leaf2.fingerprint256).not.toBe(leaf1)
    expect(leaf2.checkHost('api2.localhost')).toBe(true)
    expect(
      new X509Certificate(await read(CERT_FILES.fullchain)).verify(
        new X509Certificate(await read(CERT_FILES.ca)).publicKey,
      ),
    ).toBe(true)

    const rotated = await issueProjectCertificates(dir, manifest(), {rotateCa: true})
    expect(rotated.reusedCa).toBe(false)
    expect(inspectCertificate(await read(CERT_FILES.ca)).fingerprint256).not.toBe(ca1)
  })

  it('replaces a CA that expires before a new leaf would', async () => {
    const longAgo = new Date(Date.now() - 5 * 365 * DAY_MS + 100 * DAY_MS) // CA has ~100 days left today
    await issueProjectCertificates(dir, manifest(), {now: longAgo})
    expect(await loadExistingCa(dir, longAgo)).toBeDefined()
    expect(await loadExistingCa(dir)).toBeUndefined()
    expect((await issueProjectCertificates(dir, manifest())).reusedCa).toBe(false)
  })

  it('does not reuse a CA whose key does not match', async () => {
    await issueProjectCertificates(dir, manifest())
    await writeFile(join(dir, CERT_FILES.caKey), (await generateSelfSigned({domain: DOMAIN})).caKey)
    expect(await loadExistingCa(dir)).toBeUndefined()
  })

  it('writes nothing under dryRun or tls off', async () => {
    const dry = await issueProjectCertificates(dir, manifest(), {dryRun: true})
    expect(dry.files).toHaveLength(4)
    const off = await issueProjectCertificates(dir, manifest({tls: {mode: 'off'}}))
    expect(off.files).toEqual([])
    await expect(stat(join(dir, 'certs'))).rejects.toThrow(/ENOENT/)
  })

  it('certbot: writes a marked temporary leaf, and keeps an issued certificate', async () => {
    const certbot = manifest({tls: {mode: 'certbot', email: 'ops@example.com'}})
    const first = await issueProjectCertificates(dir, certbot)
    expect(first.files.sort()).toEqual(['certs/fullchain.pem', 'certs/privkey.pem'])
    const temporary = inspectCertificate(await read(CERT_FILES.fullchain))
    expect(temporary.temporary).toBe(true)
    expect(temporary.subject).toContain('O=create-gateway temporary certificate')
    expect(temporary.checkHost(DOMAIN)).toBe(true)

    // A stand-in is replaced on the next run...
    expect((await issueProjectCertificates(dir, certbot)).files).toHaveLength(2)
    // ...but a certificate certbot issued (here: any valid, non-temporary one for the domain) is kept.
    const issued = await generateSelfSigned({domain: DOMAIN})
    await writeFile(join(dir, CERT_FILES.fullchain), issued.cert)
    expect((await issueProjectCertificates(dir, certbot, {force: true})).files).toEqual([])
    expect(await read(CERT_FILES.fullchain)).toBe(issued.cert)
  })
})

describe('inspectCertificate', () => {
  it('reports names, dates, days left and fingerprint', async () => {
    const now = new Date()
    const info = inspectCertificate((await generateSelfSigned({domain: DOMAIN, now, validDays: 30})).cert)
    expect(info.isCa).toBe(false)
    expect(info.temporary).toBe(false)
    expect(info.sans).toEqual([`DNS:${DOMAIN}`, 'DNS:localhost', 'IP:127.0.0.1'])
    expect(info.dnsNames).toEqual([DOMAIN, 'localhost'])
    expect(info.ipAddresses).toEqual(['127.0.0.1'])
    expect(info.validTo).toBeInstanceOf(Date)
    expect(info.daysLeft(now)).toBe(29) // 30 days minus the sub-second rounding of X.509 times
    expect(info.daysLeft(new Date(now.getTime() + 31 * DAY_MS))).toBeLessThan(0)
    expect(info.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
    expect(info.checkHost(DOMAIN)).toBe(true)
    expect(info.checkIP('127.0.0.2')).toBe(false)
  })

  it('reads the quoted SAN values node prints for ambiguous names', () => {
    expect(parseSubjectAltName('DNS:"a.example, DNS:b.example", IP Address:10.0.0.1, DNS:c.example')).toEqual([
      {type: 'DNS', value: 'a.example, DNS:b.example'},
      {type: 'IP', value: '10.0.0.1'},
      {type: 'DNS', value: 'c.example'},
    ])
    expect(parseSubjectAltName(undefined)).toEqual([])
  })
})
