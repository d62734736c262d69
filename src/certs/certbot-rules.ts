import {isIP} from 'node:net'
import {join, resolve} from 'node:path'

import {UsageError} from '../errors.js'
import type {Manifest} from '../manifest/schema.js'
import {CERTBOT_PATHS, PROJECT_PATHS} from '../manifest/stack.js'
import {inspectCertificate} from './inspect.js'

/**
 * Certbot's rules, without I/O: which ACME server, which domain a CA issues for, certbot's arguments,
 * where certbot keeps a lineage, and a certificate in a few facts.
 */

export const ACME_DIRECTORIES = {
  production: 'https://acme-v02.api.letsencrypt.org/directory',
  staging: 'https://acme-staging-v02.api.letsencrypt.org/directory',
} as const

/** Certbot's own default: renew when fewer than 30 days are left. */
export const RENEW_BEFORE_DAYS = 30

export interface CertificateFacts {
  fingerprint256: string
  subject: string
  issuer: string
  sans: string[]
  validTo: string
  daysLeft: number
}

/** The ACME directory: --server, else --staging, else tls.acmeServer / tls.staging, else production. */
export function chooseAcmeServer(manifest: Manifest, options: {server?: string; staging?: boolean} = {}): string {
  if (options.server && options.staging)
    throw new UsageError("--server and --staging exclude each other: --staging means Let's Encrypt's staging server")
  if (options.server) {
    let url: URL
    try {
      url = new URL(options.server)
    } catch {
      throw new UsageError(
        `--server: must be the URL of an ACME directory, such as ${ACME_DIRECTORIES.staging} (got "${options.server}")`,
      )
    }

    if (url.protocol !== 'https:')
      throw new UsageError(`--server: ACME servers are reached over https:// (got "${options.server}")`)
    return options.server
  }

  if (options.staging) return ACME_DIRECTORIES.staging
  if (manifest.tls.acmeServer) return manifest.tls.acmeServer
  return manifest.tls.staging ? ACME_DIRECTORIES.staging : ACME_DIRECTORIES.production
}

export function isLetsEncrypt(server: string): boolean {
  return /(^|\.)api\.letsencrypt\.org$/.test(new URL(server).hostname)
}

/** A name a public CA can issue for: not an IP address, not localhost. */
export function checkIssuableDomain(domain: string): void {
  if (isIP(domain) !== 0) {
    throw new UsageError(`domain ${domain} is an IP address: certbot's HTTP-01 challenge needs a DNS name`, {
      hint: 'Set domain in gateway.yaml to a name that resolves to this host.',
    })
  }

  if (domain === 'localhost' || domain.endsWith('.localhost') || !domain.includes('.')) {
    throw new UsageError(`domain ${domain} is a local name no certificate authority will issue for`, {
      hint: 'Use tls.mode self-signed for local development, or set domain in gateway.yaml to a public name that resolves to this host.',
    })
  }
}

export function certbotIssueArgs(options: {
  domain: string
  email: string
  server: string
  forceRenewal?: boolean
}): string[] {
  return [
    'certonly',
    '--webroot',
    '--webroot-path',
    CERTBOT_PATHS.webroot,
    '--preferred-challenges',
    'http',
    '--cert-name',
    options.domain,
    '--domains',
    options.domain,
    '--email',
    options.email,
    '--agree-tos',
    '--no-eff-email',
    '--non-interactive',
    // Re-running issue with a valid certificate installs it again instead of spending CA quota.
    ...(options.forceRenewal ? ['--force-renewal'] : ['--keep-until-expiring']),
    '--server',
    options.server,
  ]
}

export function certbotRenewArgs(options: {domain: string; force?: boolean}): string[] {
  // Without a terminal certbot sleeps up to 8 minutes before a due renewal, to spread load on the CA;
  // a cron line with its own odd minute does that better, and a user typing `renew --force` waits.
  return [
    'renew',
    '--cert-name',
    options.domain,
    '--non-interactive',
    '--no-random-sleep-on-renew',
    ...(options.force ? ['--force-renewal'] : []),
  ]
}

/** `server = https://...` from certbot's renewal config of a lineage. */
export function renewalServer(conf: string): string | undefined {
  return /^server\s*=\s*(\S+)\s*$/m.exec(conf)?.[1]
}

/** Where the project keeps certbot's files of the domain. */
export function certbotFiles(dir: string, domain: string): {renewal: string; fullchain: string; privkey: string} {
  const config = join(resolve(dir), PROJECT_PATHS.certbotConfig)
  return {
    renewal: join(config, 'renewal', `${domain}.conf`),
    fullchain: join(config, 'live', domain, 'fullchain.pem'),
    privkey: join(config, 'live', domain, 'privkey.pem'),
  }
}

export function certificateFacts(pem: string, now = new Date()): CertificateFacts {
  const info = inspectCertificate(pem)
  return {
    fingerprint256: info.fingerprint256,
    subject: info.subject,
    issuer: info.issuer,
    sans: info.sans,
    validTo: info.validTo.toISOString(),
    daysLeft: info.daysLeft(now),
  }
}
