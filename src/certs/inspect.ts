import {X509Certificate} from 'node:crypto'

/**
 * Reads a certificate the way `status` and `verify` need it. node:crypto parses with OpenSSL, so what
 * we report is what NGINX and clients will see, not node-forge's own reading of the bytes we wrote.
 */

/** Subject O= of the stand-in certificate written for tls.mode certbot until certbot issues the real one. */
export const TEMPORARY_ORGANIZATION = 'create-gateway temporary certificate'

export interface SubjectAltName {
  /** `DNS`, `IP`, `URI`, `email`, ... (node's `IP Address` is shortened to `IP`). */
  type: string
  value: string
}

export interface CertificateInfo {
  /** One `KEY=value` per line, as node:crypto prints it. */
  subject: string
  issuer: string
  serialNumber: string
  isCa: boolean
  /** A certbot-mode stand-in: NGINX can start, but no client trusts it. */
  temporary: boolean
  /** The raw extension text, e.g. `DNS:api.localhost, DNS:localhost, IP Address:127.0.0.1`. */
  subjectAltName: string
  /** `DNS:api.localhost`, `IP:127.0.0.1`: ready to print. */
  sans: string[]
  dnsNames: string[]
  ipAddresses: string[]
  validFrom: Date
  validTo: Date
  fingerprint256: string
  /** Whole days until validTo (negative once expired). */
  daysLeft(now?: Date): number
  /** Would a client connecting to this host name accept the certificate's names (SAN, wildcards)? */
  checkHost(name: string): boolean
  checkIP(ip: string): boolean
}

const DAY_MS = 86_400_000

/**
 * Split node's subjectAltName text. Since Node 17.3.1 a value that could be mistaken for a separator
 * is printed as a JSON string (`DNS:"a, DNS:b"`), so a plain split on ", " would be spoofable.
 */
export function parseSubjectAltName(text: string | undefined): SubjectAltName[] {
  const sans: SubjectAltName[] = []
  for (const match of (text ?? '').matchAll(/([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g)) {
    const [, type = '', raw = ''] = match
    sans.push({
      type: type === 'IP Address' ? 'IP' : type,
      value: raw.startsWith('"') ? (JSON.parse(raw) as string) : raw,
    })
  }

  return sans
}

/** Inspect the first certificate of a PEM (for fullchain.pem that is the leaf). */
export function inspectCertificate(pem: string | Buffer): CertificateInfo {
  const x509 = new X509Certificate(pem)
  const validTo = new Date(x509.validTo)
  const sans = parseSubjectAltName(x509.subjectAltName)
  const valuesOf = (type: string) => sans.filter((san) => san.type === type).map((san) => san.value)
  return {
    subject: x509.subject,
    issuer: x509.issuer,
    serialNumber: x509.serialNumber,
    isCa: x509.ca,
    temporary: x509.subject.split('\n').includes(`O=${TEMPORARY_ORGANIZATION}`),
    subjectAltName: x509.subjectAltName ?? '',
    sans: sans.map((san) => `${san.type}:${san.value}`),
    dnsNames: valuesOf('DNS'),
    ipAddresses: valuesOf('IP'),
    validFrom: new Date(x509.validFrom),
    validTo,
    fingerprint256: x509.fingerprint256,
    daysLeft: (now = new Date()) => Math.floor((validTo.getTime() - now.getTime()) / DAY_MS),
    checkHost: (name) => x509.checkHost(name) !== undefined,
    checkIP: (ip) => x509.checkIP(ip) !== undefined,
  }
}
