import {X509Certificate} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import {connectEngine, type ContainerState, type Engine} from '../docker/engine.js'
import {OperationError, UsageError} from '../errors.js'
import {loadManifest} from '../manifest/load.js'
import type {Manifest} from '../manifest/schema.js'
import {PROJECT_PATHS} from '../manifest/stack.js'
import {writeFileAtomic} from '../util/files.js'
import type {Clock} from '../util/retry.js'
import {certbotTool, ensureCertbotImage, runCertbot, type CertbotRun} from './certbot-container.js'
import {certbotFailure} from './certbot-output.js'
import {
  certbotFiles,
  certbotIssueArgs,
  certbotRenewArgs,
  certificateFacts,
  checkIssuableDomain,
  chooseAcmeServer,
  isLetsEncrypt,
  RENEW_BEFORE_DAYS,
  renewalServer,
  type CertificateFacts,
} from './certbot-rules.js'
import {
  checkChallengePath,
  confirmServed,
  installAndReload,
  leafFingerprint,
  readInstalled,
  requireRunningGateway,
  servedFingerprint,
  type CertificateFiles,
} from './install.js'
import {signalReload} from '../gateway/nginx.js'
import {connectAddress} from '../manifest/model.js'
import type {Progress} from '../util/progress.js'

/**
 * `certs issue` and `certs renew`: certbot (webroot HTTP-01) in a one-off container on the project
 * network, writing challenge files into acme-webroot/ which the running gateway serves on port 80; then
 * the certificate is copied from certbot/config/live/<domain>/ into certs/, tested, reloaded and
 * confirmed over TLS. Certbot's state stays in the project's certbot/ folder, so renewals find it.
 * The rules without I/O are in certbot-rules.ts; what `status` says of the certificate in
 * certificate-status.ts.
 */

/** The ACME server's CA certificate (for a private or test CA), kept so that `renew` reuses it. */
export const ACME_CA_BUNDLE = {
  project: `${PROJECT_PATHS.certbot}/acme-ca.pem`,
  container: '/etc/create-gateway/acme-ca.pem',
} as const

export interface CertbotCommandOptions {
  dir: string
  engine?: Engine
  /** A PEM file holding the ACME server's CA (REQUESTS_CA_BUNDLE for certbot). */
  caBundle?: string
  timeoutMs?: number
  clock?: Clock
  /** Steps, in the user's words. */
  onProgress?: Progress
  /** Certbot's own output, line by line. */
  onOutput?: (line: string) => void
  /** The shell environment (run id label in tests). */
  env?: NodeJS.ProcessEnv
}

export interface IssueCertificateOptions extends CertbotCommandOptions {
  /** ACME directory URL; wins over --staging and the manifest. */
  server?: string
  staging?: boolean
}

export interface RenewCertificateOptions extends CertbotCommandOptions {
  /** Renew even when certbot would not (more than 30 days left). */
  force?: boolean
}

export interface CertificateResult {
  domain: string
  /** issued / renewed: certbot made a new certificate; unchanged: the installed one is current. */
  action: 'issued' | 'renewed' | 'unchanged'
  /** ACME directory certbot used (renew: the one in certbot's renewal config). */
  server?: string
  /** certs/ now holds a different certificate than before the command. */
  installed: boolean
  reloaded: boolean
  previousFingerprint?: string
  certificate: CertificateFacts
  /** What the gateway serves now (equal to certificate.fingerprint256, or the command failed). */
  servedFingerprint: string
  certbotMs: number
  ms: number
}

// ---- shared steps --------------------------------------------------------------------------------

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    if ((error as NodeJS.ErrnoException).code === 'EACCES') {
      throw new OperationError(`Cannot read ${path}: permission denied`, {
        hint: 'Files under certbot/ were made by another user (a `docker compose run certbot` runs as root). Fix the owner (`sudo chown -R $USER certbot`) or run create-gateway as that user.',
      })
    }

    throw error
  }
}

async function readLive(dir: string, domain: string): Promise<CertificateFiles | undefined> {
  const files = certbotFiles(dir, domain)
  const [fullchain, privkey] = await Promise.all([readOptional(files.fullchain), readOptional(files.privkey)])
  return fullchain && privkey ? {fullchain, privkey} : undefined
}

/**
 * The CA bundle for certbot: the given file (checked, then kept in certbot/ for later renewals), or the
 * one kept by an earlier run, or none (the public CAs are in certbot's own trust store).
 */
async function prepareCaBundle(
  dir: string,
  given: string | undefined,
): Promise<{env: Record<string, string>; files: Array<{source: string; target: string}>}> {
  const kept = join(dir, ACME_CA_BUNDLE.project)
  if (given) {
    let pem: string
    try {
      pem = await readFile(resolve(given), 'utf8')
      void new X509Certificate(pem) // throws unless it is a PEM certificate
    } catch (error) {
      throw new UsageError(`--ca-bundle: ${given} is not a readable PEM certificate (${(error as Error).message})`, {
        hint: "Pass the CA certificate of the ACME server, e.g. Pebble's pebble.minica.pem.",
      })
    }

    await writeFileAtomic(kept, pem, 0o644)
  } else if ((await readOptional(kept)) === undefined) {
    return {env: {}, files: []}
  }

  return {
    env: {REQUESTS_CA_BUNDLE: ACME_CA_BUNDLE.container},
    files: [{source: ACME_CA_BUNDLE.project, target: ACME_CA_BUNDLE.container}],
  }
}

function warnAboutReachability(manifest: Manifest, server: string, progress: Progress): void {
  if (!isLetsEncrypt(server)) return
  if (manifest.ports.http !== 80)
    progress(
      `Note: Let's Encrypt validates on port 80; ports.http is ${manifest.ports.http}, so port 80 of ${manifest.domain} must be forwarded to it`,
    )
  if (manifest.bind === '127.0.0.1' || manifest.bind === '::1')
    progress(
      `Note: bind is ${manifest.bind}: Let's Encrypt cannot reach the gateway unless something forwards to it (bind: 0.0.0.0 publishes it)`,
    )
}

interface Session {
  dir: string
  manifest: Manifest
  engine: Engine
  gateway: ContainerState
  progress: Progress
  started: number
}

async function openSession(options: CertbotCommandOptions): Promise<Session> {
  const started = performance.now()
  const dir = resolve(options.dir)
  const manifest = await loadManifest(dir)
  certbotTool(manifest) // tls.mode must be certbot
  if (!manifest.tls.email) {
    throw new UsageError(
      "tls.email is not set in gateway.yaml: certbot registers an ACME account with it, and Let's Encrypt sends expiry notices there",
      {
        hint: 'Add `email: you@example.com` under tls in gateway.yaml.',
      },
    )
  }

  checkIssuableDomain(manifest.domain)
  const engine = options.engine ?? (await connectEngine())
  const gateway = await requireRunningGateway(engine, manifest)
  return {dir, manifest, engine, gateway, progress: options.onProgress ?? (() => {}), started}
}

async function certbot(
  session: Session,
  options: CertbotCommandOptions,
  args: string[],
  server: string | undefined,
): Promise<CertbotRun> {
  const {manifest, engine, progress} = session
  const bundle = await prepareCaBundle(session.dir, options.caBundle)
  await ensureCertbotImage(engine, manifest.images.certbot, progress)
  progress(
    `Running certbot ${args[0]} for ${manifest.domain} (${manifest.images.certbot})${server ? ` against ${server}` : ''}`,
  )
  const run = await runCertbot({
    engine,
    dir: session.dir,
    manifest,
    args,
    env: bundle.env,
    files: bundle.files,
    timeoutMs: options.timeoutMs,
    clock: options.clock,
    onOutput: options.onOutput,
    processEnv: options.env,
  })
  if (run.exitCode !== 0) {
    throw certbotFailure(run.output, {
      domain: manifest.domain,
      server: server ?? "the server in certbot's renewal config",
      httpPort: manifest.ports.http,
      bind: manifest.bind,
      exitCode: run.exitCode,
      letsEncrypt: server ? isLetsEncrypt(server) : true,
    })
  }

  return run
}

/**
 * Make certs/ hold `live` and the gateway serve it: install + test + reload when the files differ,
 * a reload alone when the files are right but the gateway still serves something else.
 */
async function installAndConfirm(
  session: Session,
  live: CertificateFiles,
  options: CertbotCommandOptions,
): Promise<{installed: boolean; reloaded: boolean; previous?: string; served: string}> {
  const {dir, manifest, engine, gateway, progress} = session
  const installed = await readInstalled(dir)
  const previous = leafFingerprint(installed?.fullchain)
  const expected = leafFingerprint(live.fullchain)
  if (!expected) throw new OperationError(`certbot/config/live/${manifest.domain}/fullchain.pem is not a certificate`)
  const differs = previous !== expected || installed?.privkey !== live.privkey
  let reloaded = false
  if (differs) {
    progress('Installing the certificate into certs/, testing the NGINX config, reloading the gateway')
    await installAndReload(engine, gateway, dir, live)
    reloaded = true
  } else {
    const host = connectAddress(manifest.bind)
    const serving = await servedFingerprint(host, manifest.ports.https, manifest.domain).catch(() => undefined)
    if (serving !== expected) {
      progress('certs/ is current but the gateway serves another certificate: reloading it')
      await signalReload(engine, gateway)
      reloaded = true
    }
  }

  progress(`Confirming over TLS that the gateway serves ${expected.slice(0, 23)}...`)
  const served = await confirmServed(manifest, expected, {clock: options.clock})
  return {installed: differs, reloaded, previous, served}
}

function result(
  session: Session,
  action: CertificateResult['action'],
  server: string | undefined,
  live: CertificateFiles,
  step: Awaited<ReturnType<typeof installAndConfirm>>,
  certbotMs: number,
): CertificateResult {
  return {
    domain: session.manifest.domain,
    action,
    server,
    installed: step.installed,
    reloaded: step.reloaded,
    previousFingerprint: step.previous,
    certificate: certificateFacts(live.fullchain),
    servedFingerprint: step.served,
    certbotMs,
    ms: Math.round(performance.now() - session.started),
  }
}

// ---- the commands' work --------------------------------------------------------------------------

/** `certs issue`: obtain (or re-install a still valid) certificate for the manifest's domain. */
export async function issueCertificate(options: IssueCertificateOptions): Promise<CertificateResult> {
  const session = await openSession(options)
  const {dir, manifest, progress} = session
  const server = chooseAcmeServer(manifest, options)
  warnAboutReachability(manifest, server, progress)

  progress(
    `Checking that the gateway serves ${PROJECT_PATHS.acmeWebroot}/ at /.well-known/acme-challenge/ on port ${manifest.ports.http}`,
  )
  await checkChallengePath(dir, manifest)

  // A lineage from another server (staging -> production) is not "identical": certbot must replace it.
  const files = certbotFiles(dir, manifest.domain)
  const previousServer = renewalServer((await readOptional(files.renewal)) ?? '')
  const before = leafFingerprint((await readLive(dir, manifest.domain))?.fullchain)
  const args = certbotIssueArgs({
    domain: manifest.domain,
    email: manifest.tls.email!,
    server,
    forceRenewal: previousServer !== undefined && previousServer !== server,
  })
  const run = await certbot(session, options, args, server)

  const live = await readLive(dir, manifest.domain)
  if (!live)
    throw new OperationError(
      `certbot succeeded but left no certificate in ${PROJECT_PATHS.certbotConfig}/live/${manifest.domain}/`,
      {hint: "Certbot's log: certbot/logs/letsencrypt.log."},
    )
  const step = await installAndConfirm(session, live, options)
  return result(
    session,
    leafFingerprint(live.fullchain) === before ? 'unchanged' : 'issued',
    server,
    live,
    step,
    run.ms,
  )
}

/** `certs renew`: certbot's renewal rule (or --force), then install and reload only on a change. */
export async function renewCertificate(options: RenewCertificateOptions): Promise<CertificateResult> {
  const session = await openSession(options)
  const {dir, manifest, progress} = session
  const files = certbotFiles(dir, manifest.domain)
  const conf = await readOptional(files.renewal)
  const before = await readLive(dir, manifest.domain)
  if (conf === undefined || !before) {
    throw new UsageError(
      `No certificate for ${manifest.domain} has been issued in this project yet (no ${PROJECT_PATHS.certbotConfig}/renewal/${manifest.domain}.conf)`,
      {
        hint: 'Run `create-gateway certs issue` first.',
      },
    )
  }

  const server = renewalServer(conf)
  const beforeFingerprint = leafFingerprint(before.fullchain)
  const daysLeft = certificateFacts(before.fullchain).daysLeft
  if (options.force || daysLeft <= RENEW_BEFORE_DAYS) {
    progress(
      `Checking that the gateway serves ${PROJECT_PATHS.acmeWebroot}/ at /.well-known/acme-challenge/ on port ${manifest.ports.http}`,
    )
    await checkChallengePath(dir, manifest)
  } else {
    progress(
      `${daysLeft} days left: certbot renews only within ${RENEW_BEFORE_DAYS} days of expiry (pass --force to renew now)`,
    )
  }

  const run = await certbot(session, options, certbotRenewArgs({domain: manifest.domain, force: options.force}), server)
  const live = await readLive(dir, manifest.domain)
  if (!live)
    throw new OperationError(
      `certbot renew left no certificate in ${PROJECT_PATHS.certbotConfig}/live/${manifest.domain}/`,
    )
  const step = await installAndConfirm(session, live, options)
  return result(
    session,
    leafFingerprint(live.fullchain) === beforeFingerprint ? 'unchanged' : 'renewed',
    server,
    live,
    step,
    run.ms,
  )
}
/** What `certs issue` / `certs renew` print. */
export function describeCertificateResult(result: CertificateResult): string {
  const seconds = (result.ms / 1000).toFixed(1)
  const cert = result.certificate
  const issuer = /^CN=(.*)$/m.exec(cert.issuer)?.[1] ?? cert.issuer.replace(/\n/g, ', ')
  const what = {
    issued: `Issued a certificate for ${result.domain}`,
    renewed: `Renewed the certificate for ${result.domain}`,
    unchanged: `The certificate for ${result.domain} is current (not due for renewal)`,
  }[result.action]
  const gateway = result.installed
    ? 'installed in certs/, nginx -t passed, gateway reloaded'
    : result.reloaded
      ? 'certs/ already held it; the gateway was reloaded to serve it'
      : 'the gateway already serves it; nothing reloaded'
  return [
    `${what} in ${seconds} s: ${gateway}.`,
    `  issuer:      ${issuer}`,
    `  names:       ${cert.sans.join(', ')}`,
    `  valid until: ${cert.validTo.slice(0, 10)} (${cert.daysLeft} days left)`,
    `  served:      ${result.servedFingerprint} (= certs/fullchain.pem)`,
  ].join('\n')
}
