import {readFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import type {Manifest} from '../manifest/schema.js'
import {PROJECT_PATHS} from '../manifest/stack.js'
import {RENEW_BEFORE_DAYS} from './certbot-rules.js'
import {inspectCertificate} from './inspect.js'

export interface CertificateStatus {
  mode: Manifest['tls']['mode']
  /** certs/fullchain.pem missing or unreadable. */
  missing?: boolean
  /** certbot mode, still the stand-in made by init. */
  temporary?: boolean
  issuer?: string
  validTo?: string
  daysLeft?: number
}

/** The installed certificate in a few facts, for `status`. */
export async function certificateStatus(dir: string, manifest: Manifest, now = new Date()): Promise<CertificateStatus> {
  if (manifest.tls.mode === 'off') return {mode: 'off'}
  const pem = await readFile(join(resolve(dir), PROJECT_PATHS.certs, 'fullchain.pem'), 'utf8').catch(() => undefined)
  if (!pem) return {mode: manifest.tls.mode, missing: true}
  try {
    const info = inspectCertificate(pem)
    const issuer = /^CN=(.*)$/m.exec(info.issuer)?.[1] ?? info.issuer.replace(/\n/g, ', ')
    return {
      mode: manifest.tls.mode,
      temporary: info.temporary,
      issuer,
      validTo: info.validTo.toISOString(),
      daysLeft: info.daysLeft(now),
    }
  } catch {
    return {mode: manifest.tls.mode, missing: true}
  }
}

export function describeCertificateStatus(status: CertificateStatus): string {
  if (status.mode === 'off') return 'Certificate: none (tls.mode off).'
  if (status.missing)
    return `Certificate: certs/fullchain.pem is missing or unreadable${status.mode === 'certbot' ? ': run `create-gateway certs issue`' : ': run `create-gateway certs`'}.`
  if (status.temporary)
    return 'Certificate: temporary self-signed stand-in; run `create-gateway certs issue` for the real one.'
  const renew =
    status.mode === 'certbot' && (status.daysLeft ?? 0) <= RENEW_BEFORE_DAYS
      ? ' (due: `create-gateway certs renew`)'
      : ''
  return `Certificate: issued by ${status.issuer}, ${status.daysLeft} days left (until ${status.validTo?.slice(0, 10)})${renew}.`
}
