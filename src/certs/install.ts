import {randomBytes} from 'node:crypto'
import {readFile, rm} from 'node:fs/promises'
import {request} from 'node:http'
import {join} from 'node:path'
import {connect} from 'node:tls'

import {connectEngine, type ContainerState, type Engine} from '../docker/engine.js'
import {findRunningGateway} from '../docker/spec.js'
import {EngineUnavailableError, OperationError, UsageError} from '../errors.js'
import {changeGateway, GatewayChangeError, type GatewayFile} from '../gateway/apply.js'
import {GatewayConfigError} from '../gateway/nginx.js'
import {connectAddress} from '../manifest/model.js'
import type {Manifest} from '../manifest/schema.js'
import {PROJECT_PATHS} from '../manifest/stack.js'
import {writeFileAtomic} from '../util/files.js'
import {retryUntil, systemClock, type Clock} from '../util/retry.js'
import {inspectCertificate} from './inspect.js'
import {CERT_FILES} from './self-signed.js'

/**
 * The second half of `certs issue` / `certs renew`: put a certificate where NGINX reads it, test the
 * config in the gateway, reload, and prove over TLS that the gateway now serves exactly that file.
 */

const CONFIRM_TIMEOUT_MS = 20_000
const CONFIRM_INTERVAL_MS = 250
const PROBE_TIMEOUT_MS = 5_000

/** The running gateway container of the project (by Compose labels, so a `docker compose up` one counts). */
export async function requireRunningGateway(engine: Engine, manifest: Manifest): Promise<ContainerState> {
  const running = await findRunningGateway(engine, manifest.name)
  if (!running) {
    throw new UsageError(
      `The gateway of ${manifest.name} is not running: it has to answer the certificate authority's challenge on port 80`,
      {
        hint: 'Start the stack with `create-gateway up` (it serves a temporary certificate until the real one is issued), then run this command again.',
      },
    )
  }

  return running
}

export interface CertificateFiles {
  fullchain: string
  privkey: string
}

export async function readInstalled(dir: string): Promise<CertificateFiles | undefined> {
  try {
    const [fullchain, privkey] = await Promise.all([
      readFile(join(dir, CERT_FILES.fullchain), 'utf8'),
      readFile(join(dir, CERT_FILES.privkey), 'utf8'),
    ])
    return {fullchain, privkey}
  } catch {
    return undefined
  }
}

/** SHA-256 fingerprint of the leaf (first certificate) of a PEM chain, undefined if it is not one. */
export function leafFingerprint(pem: string | undefined): string | undefined {
  if (!pem) return undefined
  try {
    return inspectCertificate(pem).fingerprint256
  } catch {
    return undefined
  }
}

function certificateFiles(dir: string, files: CertificateFiles, previous?: CertificateFiles): GatewayFile[] {
  // The key stays 0600 (the folder is mounted read-only into NGINX).
  return [
    {path: join(dir, CERT_FILES.privkey), content: files.privkey, mode: 0o600, before: previous?.privkey},
    {path: join(dir, CERT_FILES.fullchain), content: files.fullchain, mode: 0o644, before: previous?.fullchain},
  ]
}

/**
 * Install `next` into certs/, `nginx -t` in the gateway, reload: one gateway change. If the test or
 * the reload fails the previous files are put back, so the gateway keeps serving (and a later restart
 * still finds) the old certificate. The reload is only signalled: for a certificate the proof that
 * counts is the one confirmServed gets over TLS, the served fingerprint.
 */
export async function installAndReload(
  engine: Engine,
  gateway: ContainerState,
  dir: string,
  next: CertificateFiles,
  previous?: CertificateFiles,
): Promise<void> {
  try {
    await changeGateway(engine, gateway, certificateFiles(dir, next, previous), {reload: 'signal', keepNewFiles: true})
  } catch (error) {
    if (!(error instanceof GatewayChangeError)) throw error
    const {cause, rollback} = error
    if (cause instanceof GatewayConfigError) {
      throw new OperationError(
        `nginx -t in ${gateway.name} rejected the new certificate; the previous one is back in place and still served\n${commandOutput(cause.output)}`,
        {
          hint: `Check ${CERT_FILES.fullchain} and ${CERT_FILES.privkey} (from Let's Encrypt: certbot/config/live/); \`create-gateway logs gateway\` shows more.`,
        },
      )
    }

    throw new OperationError(
      `${cause instanceof Error ? cause.message : String(cause)}${rollback.restored ? '\nThe previous certificate is back in place.' : ''}${rollback.failure ? `\nCould not fully restore: ${rollback.failure}` : ''}`,
      {cause},
    )
  }
}

function commandOutput(output: string): string {
  return output
    .trim()
    .split('\n')
    .slice(-10)
    .map((line) => `  | ${line}`)
    .join('\n')
}

/** The SHA-256 fingerprint of the certificate a TLS server presents for `servername`. */
export function servedFingerprint(
  host: string,
  port: number,
  servername: string,
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    // Trust is not the question here (verify's tls check asks it): which certificate is served is.
    const socket = connect({host, port, servername, rejectUnauthorized: false, timeout: timeoutMs})
    socket.once('secureConnect', () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256
      socket.destroy()
      if (fingerprint) resolvePromise(fingerprint)
      else reject(new Error('the server sent no certificate'))
    })
    socket.once('timeout', () => {
      socket.destroy()
      reject(new Error(`no TLS handshake within ${timeoutMs} ms`))
    })
    socket.once('error', (error) => {
      socket.destroy()
      reject(error)
    })
  })
}

export interface ConfirmOptions {
  clock?: Clock
  timeoutMs?: number
}

/** Handshakes per round: new connections land on different workers. */
const CONFIRM_PARALLEL = 3
/** Rounds in a row that must all see the certificate. */
const CONFIRM_STREAK = 4

/**
 * Wait until the gateway serves the certificate whose fingerprint is `expected`. `nginx -s reload`
 * only signals the master, which starts new workers and lets the old ones accept for at least 100 ms
 * more before telling them to quit; one matching handshake can land on a new worker while the next
 * still gets an old one. So every round makes several handshakes, and only a streak of rounds in which
 * all of them match counts (bounded by the timeout).
 */
export async function confirmServed(
  manifest: Manifest,
  expected: string,
  options: ConfirmOptions = {},
): Promise<string> {
  const host = connectAddress(manifest.bind)
  const port = manifest.ports.https
  let streak = 0
  await retryUntil(
    async () => {
      const seen = await Promise.all(
        Array.from({length: CONFIRM_PARALLEL}, async () => {
          try {
            return await servedFingerprint(host, port, manifest.domain)
          } catch (error) {
            return `error: ${(error as Error).message}`
          }
        }),
      )
      const other = seen.find((fingerprint) => fingerprint !== expected)
      streak = other === undefined ? streak + 1 : 0
      return {streak, other}
    },
    (round) => round.streak >= CONFIRM_STREAK,
    {
      timeoutMs: options.timeoutMs ?? CONFIRM_TIMEOUT_MS,
      intervalMs: CONFIRM_INTERVAL_MS,
      clock: options.clock ?? systemClock,
      describe: `the gateway on ${host}:${port} (SNI ${manifest.domain}) to serve the certificate ${expected.slice(0, 23)}... of ${CERT_FILES.fullchain}`,
      explain: (round) =>
        round.other === undefined
          ? `served it ${round.streak} times in a row`
          : round.other.startsWith('error:')
            ? round.other
            : `it serves ${round.other.slice(0, 23)}...`,
    },
  )
  return expected
}

function httpGet(
  host: string,
  port: number,
  path: string,
  hostHeader: string,
): Promise<{status: number; body: string}> {
  return new Promise((resolvePromise, reject) => {
    const req = request(
      {host, port, path, method: 'GET', headers: {Host: hostHeader}, timeout: PROBE_TIMEOUT_MS, agent: false},
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (body += chunk))
        res.on('end', () => resolvePromise({status: res.statusCode ?? 0, body}))
      },
    )
    req.on('timeout', () => req.destroy(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)))
    req.on('error', reject)
    req.end()
  })
}

/**
 * Before asking the CA: put a file in the webroot and fetch it through the gateway's port 80 listener
 * on this machine. A broken mount or config fails here, without spending the CA's failed-validation
 * quota. It cannot tell whether the internet reaches port 80; the CA's own attempt does that.
 */
export async function checkChallengePath(dir: string, manifest: Manifest): Promise<void> {
  const name = `create-gateway-selftest-${randomBytes(8).toString('hex')}`
  const token = randomBytes(16).toString('hex')
  const file = join(dir, PROJECT_PATHS.acmeWebroot, '.well-known', 'acme-challenge', name)
  const host = connectAddress(manifest.bind)
  const url = `http://${host}:${manifest.ports.http}/.well-known/acme-challenge/${name}`
  await writeFileAtomic(file, token, 0o644)
  try {
    let answer: {status: number; body: string}
    try {
      answer = await httpGet(host, manifest.ports.http, `/.well-known/acme-challenge/${name}`, manifest.domain)
    } catch (error) {
      throw new OperationError(
        `The gateway does not answer on ${host}:${manifest.ports.http} (ports.http): ${(error as Error).message}`,
        {
          hint: 'Check `create-gateway status`; the CA validates the domain through this listener.',
        },
      )
    }

    if (answer.status !== 200 || answer.body.trim() !== token) {
      throw new OperationError(
        `The gateway does not serve the ACME webroot: GET ${url} answered ${answer.status}${answer.status === 200 ? ' with other content' : ''}`,
        {
          hint: `Certbot writes challenge files to ${PROJECT_PATHS.acmeWebroot}/ in the project, which the gateway must serve at /.well-known/acme-challenge/ on port 80. Re-render the project or restart it with \`create-gateway up\`.`,
        },
      )
    }
  } finally {
    await rm(file, {force: true})
  }
}

export type ServeOutcome =
  {served: true; fingerprint: string; gateway: string} | {served: false; why: 'not-running' | 'no-engine'}

/**
 * After `certs` wrote a new self-signed certificate: when the gateway runs, test, reload and confirm
 * over TLS that it serves the new file (putting `previous` back if `nginx -t` refuses it).
 */
export async function serveWhereRunning(
  dir: string,
  manifest: Manifest,
  previous: CertificateFiles | undefined,
  options: ConfirmOptions = {},
): Promise<ServeOutcome> {
  let engine: Engine
  try {
    engine = await connectEngine()
    const gateway = await findRunningGateway(engine, manifest.name)
    if (!gateway) return {served: false, why: 'not-running'}
    const next = await readInstalled(dir)
    if (!next)
      throw new OperationError(`${CERT_FILES.fullchain} or ${CERT_FILES.privkey} is missing after writing them`)
    await installAndReload(engine, gateway, dir, next, previous)
    return {
      served: true,
      fingerprint: await confirmServed(manifest, leafFingerprint(next.fullchain)!, options),
      gateway: gateway.name,
    }
  } catch (error) {
    if (error instanceof EngineUnavailableError) return {served: false, why: 'no-engine'}
    throw error
  }
}
