import {existsSync} from 'node:fs'
import {rm} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import {inspectCertificate} from '../certs/inspect.js'
import {CERT_FILES, issueProjectCertificates} from '../certs/self-signed.js'
import {connectEngine, type Engine} from '../docker/engine.js'
import {findRunningGateway} from '../docker/spec.js'
import type {UpResult} from '../docker/up.js'
import {EngineUnavailableError, GatewayError, OperationError} from '../errors.js'
import {MANIFEST_FILE} from '../manifest/load.js'
import {djangoServices} from '../manifest/model.js'
import type {Manifest} from '../manifest/schema.js'
import {PROJECT_PATHS} from '../manifest/stack.js'
import type {FilePlan, PlannedFile} from '../render/plan.js'
import {renderProject} from '../render/project.js'
import {loadSecrets} from '../render/secrets.js'
import {projectFile, readFileIfExists, writeFileAtomic} from '../util/files.js'
import {systemClock, type Clock} from '../util/retry.js'
import {applyWrittenFiles, GatewayChangeError, WrittenFiles} from '../gateway/apply.js'
import type {ReloadResult} from '../gateway/nginx.js'
import {renderUpstreamsWith, upstreamHosts} from '../gateway/upstreams.js'
import type {Progress} from '../util/progress.js'

/**
 * `render`: the project's files again from gateway.yaml after the user edited it, and the running
 * gateway onto them. gateway.yaml is the source of truth, but some files are the user's once written:
 * gateway.yaml itself (its comments), each Django service's code, the variables they added to .env,
 * the secrets and the CA (kept, never rotated), and the replicas `scale` listed in upstreams.conf.
 *
 * A running gateway whose configuration changed gets `nginx -t` and a confirmed reload; if either
 * fails, every file this run wrote is put back as it was (and NGINX reloaded onto it if needed).
 * Changes to containers (docker-compose.yml, .env) are left to `up`, which applies them without
 * stopping the service.
 */

/**
 * Left by `render` when the gateway's new configuration has to wait for `up` (containers change
 * first); `up` reloads the gateway once it is done if nothing in its run did, then removes it.
 */
export const RELOAD_PENDING_FILE = '.create-gateway.reload-pending'

export type FileStatus = 'created' | 'updated' | 'unchanged'

export interface RenderedFile {
  path: string
  status: FileStatus
}

export type GatewayState =
  /** No running gateway: `up` starts the stack on these files. */
  | 'not-running'
  /** Nothing the gateway reads changed. */
  | 'unchanged'
  | 'reloaded'
  /** Container changes first: `up` applies them (and the gateway configuration with them). */
  | 'needs-up'
  /** The engine could not be asked; the files are written. */
  | 'unknown'
  /** A dry run: nothing written, the gateway not asked. */
  | 'not-checked'

export interface RerenderResult {
  project: string
  dryRun: boolean
  files: RenderedFile[]
  /** Why the certificate was made again, when it was. */
  certificate?: string
  gateway: GatewayState
  reload?: Pick<ReloadResult, 'oldWorkers' | 'newWorkers' | 'ms'>
  /** What the user runs next, if anything. */
  next?: string
}

export interface RerenderOptions {
  dryRun?: boolean
  engine?: Engine
  clock?: Clock
  onProgress?: Progress
}

/** Files the gateway container reads (bind mounts): a change to one of them needs a reload. */
function gatewayReads(path: string): boolean {
  return (
    path.startsWith('gateway/') ||
    path.startsWith(`${PROJECT_PATHS.certs}/`) ||
    (path.startsWith('secrets/') && !path.endsWith('.txt') && !path.endsWith('-secret-key'))
  )
}

/** Files that describe containers: `up` applies them. */
function containersRead(path: string): boolean {
  return path === PROJECT_PATHS.compose || path === PROJECT_PATHS.env
}

/**
 * .env as rendered, merged into the one on disk: the variables create-gateway manages get their
 * rendered values (the secrets are already the kept ones), every other line the user wrote stays.
 */
export function mergeEnv(existing: string | undefined, rendered: string): string {
  if (existing === undefined) return rendered
  const managed = new Map<string, string>()
  for (const line of rendered.split('\n')) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(line)
    if (match) managed.set(match[1]!, line)
  }

  const lines = existing.replace(/\n$/, '').split('\n')
  const seen = new Set<string>()
  const merged = lines.map((line) => {
    const key = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=/.exec(line)?.[1]
    if (key === undefined || !managed.has(key)) return line
    seen.add(key)
    return managed.get(key)!
  })
  for (const [key, line] of managed) if (!seen.has(key)) merged.push(line)
  return `${merged.join('\n')}\n`
}

/** What `render` writes: the full render minus the files that are the user's, adjusted as they need. */
async function renderPlan(root: string, manifest: Manifest): Promise<FilePlan> {
  const secrets = await loadSecrets(root, manifest)
  const full = await renderProject(manifest, secrets)
  const ownCode = djangoServices(manifest)
    .filter((service) => existsSync(join(root, service.path)))
    .map((service) => `${service.path.replace(/\/+$/, '')}/`)
  const upstreamsText = (await readFileIfExists(join(root, PROJECT_PATHS.upstreams)))?.toString('utf8')
  const plan: FilePlan = []
  for (const file of full) {
    if (file.path === MANIFEST_FILE || ownCode.some((prefix) => file.path.startsWith(prefix))) continue
    if (file.path === PROJECT_PATHS.env) {
      plan.push({
        ...file,
        content: mergeEnv((await readFileIfExists(join(root, file.path)))?.toString('utf8'), file.content.toString()),
      })
    } else if (file.path === PROJECT_PATHS.upstreams && upstreamsText !== undefined) {
      // The replicas `scale` listed stay listed; services new to the manifest get their name.
      plan.push({...file, content: await renderUpstreamsWith(manifest, upstreamHosts(manifest, upstreamsText), {})})
    } else {
      plan.push(file)
    }
  }

  return plan
}

/** Why the certificate on disk does not fit the manifest any more, or undefined when it does. */
async function certificateProblem(root: string, manifest: Manifest): Promise<string | undefined> {
  if (manifest.tls.mode === 'off') return undefined
  const pem = await readFileIfExists(join(root, CERT_FILES.fullchain))
  if (!pem) return `${CERT_FILES.fullchain} is missing`
  try {
    const certificate = inspectCertificate(pem)
    if (!certificate.checkHost(manifest.domain))
      return `the certificate does not cover ${manifest.domain} (it names ${certificate.sans.join(', ')})`
  } catch {
    return `${CERT_FILES.fullchain} is not a readable certificate`
  }

  return undefined
}

export async function rerenderProject(
  dir: string,
  manifest: Manifest,
  options: RerenderOptions = {},
): Promise<RerenderResult> {
  const root = resolve(dir)
  const progress = options.onProgress ?? (() => {})
  const plan = await renderPlan(root, manifest)

  // Compare with the disk first: a dry run stops there, and a real one writes only what differs.
  const previous = new Map<string, Buffer | undefined>()
  const files: RenderedFile[] = []
  const changed: PlannedFile[] = []
  // Every path goes through the project guard here, before the first write.
  const targets = new Map<string, string>()
  for (const file of plan) targets.set(file.path, await projectFile(root, file.path))
  for (const file of plan) {
    const before = await readFileIfExists(targets.get(file.path)!)
    const status: FileStatus =
      before === undefined ? 'created' : before.equals(Buffer.from(file.content)) ? 'unchanged' : 'updated'
    files.push({path: file.path, status})
    if (status !== 'unchanged') {
      previous.set(file.path, before)
      changed.push(file)
    }
  }

  const certificate = await certificateProblem(root, manifest)
  const result: RerenderResult = {
    project: manifest.name,
    dryRun: options.dryRun ?? false,
    files,
    gateway: 'unchanged',
    ...(certificate ? {certificate} : {}),
  }
  if (options.dryRun) return {...result, gateway: 'not-checked'}

  // A disk error half-way (full, read-only) puts back what was written: nothing stays half-written.
  const written = await WrittenFiles.write(
    changed.map((file) => ({
      path: targets.get(file.path)!,
      content: file.content,
      mode: file.mode,
      group: file.group,
      before: previous.get(file.path),
    })),
  )

  if (changed.length > 0) progress(`Wrote ${changed.length} file(s)`)
  if (certificate) {
    progress(`Certificate: ${certificate}; signing a new one with the project's CA`)
    const issued = await issueProjectCertificates(root, manifest, {force: true})
    for (const path of issued.files) {
      if (!files.some((file) => file.path === path)) files.push({path, status: 'updated'})
    }
  }

  const certbotNext =
    certificate && manifest.tls.mode === 'certbot'
      ? ' Then `create-gateway certs issue` gets the real certificate for the new domain (a temporary one serves until then).'
      : ''
  const gatewayChanged = files.some((file) => file.status !== 'unchanged' && gatewayReads(file.path))
  const containersChanged = files.some((file) => file.status !== 'unchanged' && containersRead(file.path))

  let engine: Engine
  try {
    engine = options.engine ?? (await connectEngine())
  } catch (error) {
    if (!(error instanceof EngineUnavailableError)) throw error
    return {
      ...result,
      gateway: 'unknown',
      next: `The Docker engine could not be reached (${error.message.split('\n')[0]}): if the stack runs, \`create-gateway up\` applies these files once it can.${certbotNext}`,
    }
  }

  const gateway = await findRunningGateway(engine, manifest.name)
  if (!gateway)
    return {
      ...result,
      gateway: 'not-running',
      next: `\`create-gateway up\` starts the stack on these files.${certbotNext}`,
    }
  if (containersChanged) {
    // Containers first: the new gateway configuration may name a service only `up` creates, or a
    // domain the replicas do not accept yet. `up` reloads the gateway as it changes the replicas.
    const which = [PROJECT_PATHS.compose, PROJECT_PATHS.env].filter((path) =>
      files.some((file) => file.path === path && file.status !== 'unchanged'),
    )
    if (gatewayChanged)
      await writeFileAtomic(
        join(root, RELOAD_PENDING_FILE),
        `${new Date().toISOString()} render: the gateway's configuration changed; \`up\` reloads it\n`,
      )
    const applies = [
      `replacing changed replicas one at a time behind the gateway`,
      ...(gatewayChanged ? ["loading the gateway's new configuration (until then it serves the previous one)"] : []),
    ]
    return {
      ...result,
      gateway: 'needs-up',
      next: `${which.join(' and ')} changed: \`create-gateway up\` applies ${which.length > 1 ? 'them' : 'it'}, ${applies.join(' and ')}.${certbotNext}`,
    }
  }

  if (!gatewayChanged) return {...result, ...(certbotNext ? {next: certbotNext.trim()} : {})}

  const ref = {id: gateway.id, name: gateway.name}
  let reload: ReloadResult
  try {
    reload = (await applyWrittenFiles(engine, ref, written, {
      clock: options.clock ?? systemClock,
      onProgress: progress,
    }))!
  } catch (error) {
    if (!(error instanceof GatewayChangeError)) throw error
    const {cause, rollback} = error
    const notes: string[] = []
    if (rollback.restored)
      notes.push(
        `Put back the ${written.count} file(s) this run changed${certificate ? ' (the new certificate stays: it fits gateway.yaml)' : ''}.`,
      )
    if (rollback.reloaded) notes.push('Reloaded NGINX onto them.')
    if (rollback.failure) notes.push(`Could not fully restore: ${rollback.failure}`)
    notes.push(`The gateway keeps serving its previous configuration.`)
    const message = cause instanceof GatewayError ? cause.message : String(cause)
    throw new OperationError(`${message}\n${notes.join('\n')}`, {
      hint: `Fix gateway.yaml and run \`create-gateway render\` again (\`--dry-run\` lists what it would change).`,
      cause,
    })
  }

  await rm(join(root, RELOAD_PENDING_FILE), {force: true})
  return {
    ...result,
    gateway: 'reloaded',
    reload: {oldWorkers: reload.oldWorkers, newWorkers: reload.newWorkers, ms: reload.ms},
    ...(certbotNext ? {next: certbotNext.trim()} : {}),
  }
}

/** Human summary of a render, the command's output without --json. */
export function describeRerender(result: RerenderResult): string {
  const changed = result.files.filter((file) => file.status !== 'unchanged')
  const unchanged = result.files.length - changed.length
  const lines: string[] = []
  if (result.dryRun) {
    lines.push(
      changed.length === 0
        ? `${result.project}: every file already matches gateway.yaml (dry run).`
        : `${result.project}: would write ${changed.length} file(s) (dry run, nothing written):`,
    )
  } else {
    lines.push(
      changed.length === 0 && !result.certificate
        ? `${result.project}: every file already matches gateway.yaml.`
        : `${result.project}: rendered from gateway.yaml:`,
    )
  }

  for (const file of changed) lines.push(`  ${file.status.padEnd(8)} ${file.path}`)
  if (changed.length > 0 && unchanged > 0) lines.push(`  (${unchanged} file(s) unchanged)`)
  if (result.certificate)
    lines.push(
      `Certificate: ${result.certificate}: ${result.dryRun ? 'would sign' : 'signed'} a new one with the project's CA.`,
    )
  if (result.gateway === 'reloaded' && result.reload) {
    lines.push(
      `Gateway: nginx -t passed; reloaded (workers ${result.reload.oldWorkers.join(', ') || 'none'} -> ${result.reload.newWorkers.join(', ')}, ${result.reload.ms} ms).`,
    )
  }

  if (result.next) lines.push(`Next: ${result.next}`)
  return lines.join('\n')
}

/** Did this `up` make the gateway read its files: created, recreated or started, replicas rolled, or a reload for new ones? */
export function upLoadedGatewayFiles(result: UpResult): boolean {
  return (
    result.rolled.length > 0 ||
    result.containers.some((container) => container.action !== 'keep' && container.action !== 'remove')
  )
}

export interface PendingReloadResult {
  reloaded: boolean
  reload?: Pick<ReloadResult, 'oldWorkers' | 'newWorkers' | 'ms'>
}

/**
 * After `up`: when `render` left the gateway's configuration to it and nothing in the run loaded it
 * (`reloadedByUp` false: no replica rolled or added, the gateway not recreated), `nginx -t` and a
 * confirmed reload now. The marker goes either way once the gateway runs the files on disk.
 */
export async function applyPendingReload(
  dir: string,
  manifest: Manifest,
  reloadedByUp: boolean,
  options: {engine?: Engine; clock?: Clock; onProgress?: Progress} = {},
): Promise<PendingReloadResult> {
  const marker = join(resolve(dir), RELOAD_PENDING_FILE)
  if (!existsSync(marker)) return {reloaded: false}
  if (reloadedByUp) {
    await rm(marker, {force: true})
    return {reloaded: false}
  }

  const engine = options.engine ?? (await connectEngine())
  const gateway = await findRunningGateway(engine, manifest.name)
  if (!gateway) return {reloaded: false}
  const ref = {id: gateway.id, name: gateway.name}
  options.onProgress?.(`Loading the configuration render wrote: nginx -t in ${gateway.name}`)
  let reload: ReloadResult
  try {
    // Nothing to put back: the files are the ones `render` wrote and gateway.yaml describes.
    reload = (await applyWrittenFiles(engine, ref, WrittenFiles.none(), {clock: options.clock ?? systemClock}))!
  } catch (caught) {
    const error = caught instanceof GatewayChangeError ? caught.cause : caught
    // The containers are up; only the gateway's new files do not load. NGINX kept the running ones.
    throw new OperationError(
      `The stack is up, but the gateway configuration \`render\` wrote does not load: ${error instanceof GatewayError ? error.message : String(error)}\nThe gateway keeps serving its previous configuration.`,
      {
        hint: 'Fix gateway.yaml and run `create-gateway render` (it tests and reloads the gateway); `create-gateway up` tries this reload again too.',
        cause: error,
      },
    )
  }

  await rm(marker, {force: true})
  return {reloaded: true, reload: {oldWorkers: reload.oldWorkers, newWorkers: reload.newWorkers, ms: reload.ms}}
}
