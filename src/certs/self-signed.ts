import {createPrivateKey, generateKeyPair, randomBytes, X509Certificate} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {isIP} from 'node:net'
import {join} from 'node:path'
import {promisify} from 'node:util'
import forge from 'node-forge'

import {UsageError} from '../errors.js'
import type {Manifest} from '../manifest/schema.js'
import {PROJECT_PATHS} from '../manifest/stack.js'
import type {PlannedFile} from '../render/plan.js'
import {writePlan} from '../util/files.js'
import {inspectCertificate, TEMPORARY_ORGANIZATION} from './inspect.js'

/**
 * A local CA and a leaf certificate for the project's domain. node-forge builds and signs the X.509
 * structures (node:crypto cannot create certificates); node:crypto makes the RSA keys, because forge's
 * pure-JavaScript generator takes seconds per key. (forge 1.4.3 would also call node:crypto itself
 * unless `forge.options.usePureJavaScript` is set or a custom `prng` is passed; calling it directly
 * does not depend on that, and the async form runs CA and leaf keys in parallel on libuv threads.)
 */

export const CERT_FILES = {
  /** What users and `verify` trust: `curl --cacert certs/ca.pem`, or import it into the OS store. */
  ca: `${PROJECT_PATHS.certs}/ca.pem`,
  /** Certbot's file names, so one NGINX config serves both tls modes. */
  fullchain: `${PROJECT_PATHS.certs}/fullchain.pem`,
  privkey: `${PROJECT_PATHS.certs}/privkey.pem`,
  /**
   * Not under certs/: that folder is mounted into the gateway container, and a CA key the user's
   * browser trusts must not be readable from inside NGINX. secrets/ is the project's 0600 area.
   */
  caKey: 'secrets/ca-key.pem',
} as const

export interface CertificatePems {
  caCert: string
  caKey: string
  cert: string
  key: string
}

export interface SelfSignedOptions {
  domain: string
  /** Leaf lifetime; at most 397 days, the longest Apple and Chrome accept for a TLS server certificate. */
  validDays?: number
  now?: Date
  /** Sign with this CA instead of making a new one (so users trust the CA once). */
  ca?: {cert: string; key: string}
  /** Mark the leaf as a certbot-mode stand-in (subject O=), so `status` can tell it apart. */
  temporary?: boolean
}

// RSA 2048 for both: forge only signs with RSA, 2048 is accepted everywhere, and here one native 2048
// key takes ~0.2 s while 3072 took 0.3 to 2.8 s. A CA that lives 5 years on a dev box does not need more.
const RSA_BITS = 2048
const CA_DAYS = 5 * 365
export const LEAF_DAYS = 365
const LEAF_MAX_DAYS = 397
// Start an hour back: a client whose clock runs a little behind must not see "not yet valid".
const BACKDATE_MS = 3_600_000
const DAY_MS = 86_400_000

const generateRsa = promisify(generateKeyPair)

async function newRsaKey(): Promise<{publicKey: string; privateKey: string}> {
  return generateRsa('rsa', {
    modulusLength: RSA_BITS,
    publicKeyEncoding: {type: 'spki', format: 'pem'},
    privateKeyEncoding: {type: 'pkcs8', format: 'pem'},
  })
}

/** 16 random bytes with the top bit clear (DER INTEGER stays positive) and the next set (minimal encoding). */
function serialNumber(): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes.readUInt8(0) & 0x7f) | 0x40
  return bytes.toString('hex')
}

/** X.520 caps commonName at 64 characters; the SAN, not the CN, is what clients match anyway. */
function commonName(value: string, fallback: string): string {
  return value.length <= 64 ? value : fallback
}

function subjectAltNames(domain: string): Array<{type: number; value?: string; ip?: string}> {
  const names = [...new Set([domain.toLowerCase(), 'localhost', '127.0.0.1'])]
  // GeneralName 7 = iPAddress, 2 = dNSName. Clients never match an IP literal against a DNS entry.
  return names.map((name) => (isIP(name) ? {type: 7, ip: name} : {type: 2, value: name}))
}

function toPem(cert: forge.pki.Certificate): string {
  return forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n') // forge writes CRLF
}

function newCertificate(publicKeyPem: string, now: Date, days: number, notAfterMax?: Date): forge.pki.Certificate {
  const cert = forge.pki.createCertificate()
  cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem)
  cert.serialNumber = serialNumber()
  cert.validity.notBefore = new Date(now.getTime() - BACKDATE_MS)
  const notAfter = now.getTime() + days * DAY_MS
  // A leaf must not outlive its CA: clients would reject it from that day on.
  cert.validity.notAfter = new Date(notAfterMax ? Math.min(notAfter, notAfterMax.getTime()) : notAfter)
  return cert
}

interface Signer {
  cert: forge.pki.Certificate
  /** PEM of cert: for a reused CA, the bytes read from disk, so ca.pem (and its fingerprint) never change. */
  pem: string
  key: string
}

async function createCa(domain: string, now: Date): Promise<Signer> {
  const keys = await newRsaKey()
  const cert = newCertificate(keys.publicKey, now, CA_DAYS)
  const name = [
    {shortName: 'CN', value: commonName(`create-gateway local CA (${domain})`, 'create-gateway local CA')},
    {shortName: 'O', value: 'create-gateway'},
  ]
  cert.setSubject(name)
  cert.setIssuer(name)
  cert.setExtensions([
    // pathLen 0: this CA signs leaves only, never another CA.
    {name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true},
    {name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true},
    {name: 'subjectKeyIdentifier'},
    {name: 'authorityKeyIdentifier', keyIdentifier: true}, // self-signed: its own key id
  ])
  cert.sign(forge.pki.privateKeyFromPem(keys.privateKey), forge.md.sha256.create())
  return {cert, pem: toPem(cert), key: keys.privateKey}
}

/** Make a leaf for `domain` (and localhost, 127.0.0.1) signed by a new or the given CA, as PEM strings. */
export async function generateSelfSigned(options: SelfSignedOptions): Promise<CertificatePems> {
  const {domain, validDays = LEAF_DAYS, now = new Date()} = options
  if (!Number.isInteger(validDays) || validDays < 1 || validDays > LEAF_MAX_DAYS) {
    throw new UsageError(`certificate validity must be 1 to ${LEAF_MAX_DAYS} days, not ${validDays}`, {
      hint: 'Browsers and Apple platforms reject TLS server certificates valid for longer.',
    })
  }

  const existing = options.ca
  const [leafKeys, signer] = await Promise.all([
    newRsaKey(),
    existing
      ? {cert: forge.pki.certificateFromPem(existing.cert), pem: existing.cert, key: existing.key}
      : createCa(domain, now),
  ])
  const ca = signer.cert

  const leaf = newCertificate(leafKeys.publicKey, now, validDays, ca.validity.notAfter)
  leaf.setSubject([
    {shortName: 'CN', value: commonName(domain, 'create-gateway')},
    {shortName: 'O', value: options.temporary ? TEMPORARY_ORGANIZATION : 'create-gateway'},
  ])
  leaf.setIssuer(ca.subject.attributes)
  // forge's `keyIdentifier: true` would take the leaf's own key id: name the CA's explicitly.
  const caKeyId = (ca.getExtension('subjectKeyIdentifier') as {subjectKeyIdentifier?: string} | undefined)
    ?.subjectKeyIdentifier
  leaf.setExtensions([
    {name: 'basicConstraints', cA: false, critical: true},
    {name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true},
    {name: 'extKeyUsage', serverAuth: true},
    {name: 'subjectAltName', altNames: subjectAltNames(domain)},
    {name: 'subjectKeyIdentifier'},
    {
      name: 'authorityKeyIdentifier',
      keyIdentifier: caKeyId ? forge.util.hexToBytes(caKeyId) : ca.generateSubjectKeyIdentifier().getBytes(),
    },
  ])
  leaf.sign(forge.pki.privateKeyFromPem(signer.key), forge.md.sha256.create())

  return {caCert: signer.pem, caKey: signer.key, cert: toPem(leaf), key: leafKeys.privateKey}
}

/**
 * The project's CA if it can sign another leaf: both files present, an RSA CA certificate whose key
 * matches, valid now and for a whole leaf lifetime. Anything else returns undefined and a new CA is made.
 */
export async function loadExistingCa(
  dir: string,
  now = new Date(),
  leafDays = LEAF_DAYS,
): Promise<{cert: string; key: string} | undefined> {
  try {
    const [cert, key] = await Promise.all([
      readFile(join(dir, CERT_FILES.ca), 'utf8'),
      readFile(join(dir, CERT_FILES.caKey), 'utf8'),
    ])
    const x509 = new X509Certificate(cert)
    const privateKey = createPrivateKey(key)
    const usable =
      x509.ca &&
      privateKey.asymmetricKeyType === 'rsa' &&
      x509.checkPrivateKey(privateKey) &&
      new Date(x509.validFrom) <= now &&
      new Date(x509.validTo).getTime() >= now.getTime() + leafDays * DAY_MS
    return usable ? {cert, key} : undefined
  } catch {
    return undefined // missing, unreadable or not PEM
  }
}

/**
 * The files of a tls mode. fullchain.pem holds the leaf only: the chain a server sends is the leaf plus
 * intermediates, never the root, since clients must already hold the root to trust it (RFC 8446 4.4.2),
 * and this CA is a root. Clients trust certs/ca.pem instead.
 */
export function renderCertificateFiles(manifest: Manifest, pems: CertificatePems): PlannedFile[] {
  if (manifest.tls.mode === 'off') return []
  const leaf: PlannedFile[] = [
    {path: CERT_FILES.fullchain, content: pems.cert, mode: 0o644},
    {path: CERT_FILES.privkey, content: pems.key, mode: 0o600},
  ]
  // certbot: the stand-in's CA is thrown away; nobody should be asked to trust it.
  if (manifest.tls.mode === 'certbot') return leaf
  return [
    {path: CERT_FILES.ca, content: pems.caCert, mode: 0o644},
    {path: CERT_FILES.caKey, content: pems.caKey, mode: 0o600},
    ...leaf,
  ]
}

export interface IssueOptions {
  dryRun?: boolean
  /**
   * Accepted for symmetry with init's --force, and changes nothing: the leaf is re-issued on every call
   * anyway, and --force promises to keep secrets, which the CA key is.
   */
  force?: boolean
  /** self-signed: make a new CA even if the existing one is usable (users must trust it again). */
  rotateCa?: boolean
  now?: Date
}

export interface IssueResult {
  /** Paths written (or that would be, under dryRun), relative to the project. */
  files: string[]
  reusedCa: boolean
  ms: number
}

/** A certificate certbot issued for this domain and still valid: never replaced by a stand-in. */
async function hasIssuedCertificate(dir: string, domain: string, now: Date): Promise<boolean> {
  try {
    const info = inspectCertificate(await readFile(join(dir, CERT_FILES.fullchain)))
    const covers = isIP(domain) ? info.checkIP(domain) : info.checkHost(domain)
    return !info.temporary && covers && info.daysLeft(now) > 0
  } catch {
    return false
  }
}

/**
 * Write the project's certificates for its tls mode. self-signed: a new leaf on every call, signed by
 * the existing CA when usable. certbot: a temporary leaf so NGINX can start before certbot runs, unless
 * a valid issued certificate is already there (never replaced: re-issuing costs Let's Encrypt quota).
 * off: nothing.
 */
export async function issueProjectCertificates(
  dir: string,
  manifest: Manifest,
  options: IssueOptions = {},
): Promise<IssueResult> {
  const started = performance.now()
  const now = options.now ?? new Date()
  const {mode} = manifest.tls
  const done = (files: string[], reusedCa: boolean): IssueResult => ({
    files,
    reusedCa,
    ms: Math.round(performance.now() - started),
  })
  if (mode === 'off' || (mode === 'certbot' && (await hasIssuedCertificate(dir, manifest.domain, now))))
    return done([], false)

  const ca = mode === 'self-signed' && !options.rotateCa ? await loadExistingCa(dir, now) : undefined
  const pems = await generateSelfSigned({domain: manifest.domain, now, ca, temporary: mode === 'certbot'})
  // A reused CA is left untouched on disk rather than rewritten with the same bytes.
  const reused = new Set<string>(ca ? [CERT_FILES.ca, CERT_FILES.caKey] : [])
  const plan = renderCertificateFiles(manifest, pems).filter((file) => !reused.has(file.path))
  const {written} = await writePlan(dir, plan, {update: true, dryRun: options.dryRun})
  return done(written, ca !== undefined)
}
