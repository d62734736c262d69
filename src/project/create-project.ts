import {constants} from 'node:fs'
import {access, chmod, stat} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'

import {issueProjectCertificates} from '../certs/self-signed.js'
import type {InitAnswers} from '../manifest/options.js'
import {buildManifest} from '../manifest/from-answers.js'
import type {Manifest} from '../manifest/schema.js'
import {UsageError} from '../errors.js'
import {fileSystemError, writePlan} from '../util/files.js'
import {renderProject} from '../render/project.js'
import {loadSecrets, type ProjectSecrets} from '../render/secrets.js'
import type {Progress} from '../util/progress.js'

export interface CreateProjectOptions {
  dir: string
  answers: InitAnswers
  force?: boolean
  dryRun?: boolean
  /** Progress lines for long steps. */
  onProgress?: Progress
}

export interface CreatedProject {
  dir: string
  manifest: Manifest
  secrets: ProjectSecrets
  written: string[]
  certificates: string[]
}

/**
 * The target must be a folder, or a path whose nearest existing ancestor is a folder we may write to:
 * said in one line now, rather than as ENOTDIR or EACCES from the middle of the writes.
 */
async function checkProjectFolder(dir: string): Promise<void> {
  let existing = dir
  let info = await stat(existing).catch(() => undefined)
  while (!info && dirname(existing) !== existing) {
    existing = dirname(existing)
    info = await stat(existing).catch(() => undefined)
  }

  if (!info) return
  if (!info.isDirectory())
    throw new UsageError(
      existing === dir
        ? `${dir} is a file: init needs a folder to create the project in`
        : `cannot create ${dir}: ${existing} is a file, not a folder`,
    )
  try {
    await access(existing, constants.W_OK | constants.X_OK)
  } catch (error) {
    throw fileSystemError(error, existing, existing === dir ? 'write' : 'create')
  }
}

/**
 * The work of `init`, callable without the CLI. Everything is validated and rendered in memory before
 * the first byte is written, so bad input leaves nothing behind.
 */
export async function createProject(options: CreateProjectOptions): Promise<CreatedProject> {
  const dir = resolve(options.dir)
  const manifest = buildManifest(options.answers)
  await checkProjectFolder(dir)
  const secrets = await loadSecrets(dir, manifest)
  const plan = await renderProject(manifest, secrets)

  // Progress says what was done, after it is done: nothing under --dry-run, nothing before a refusal.
  const result = await writePlan(dir, plan, {force: options.force, dryRun: options.dryRun})
  if (!options.dryRun) {
    await chmod(join(dir, 'secrets'), 0o700)
    options.onProgress?.(`Wrote ${result.written.length} files to ${dir}`)
  }

  let certificates: string[] = []
  if (manifest.tls.mode !== 'off') {
    if (!options.dryRun)
      options.onProgress?.(
        manifest.tls.mode === 'self-signed'
          ? 'Signing a local CA and a certificate'
          : 'Making a temporary certificate until Certbot issues the real one',
      )
    const issued = await issueProjectCertificates(dir, manifest, {dryRun: options.dryRun, force: options.force})
    certificates = issued.files
  }

  return {dir, manifest, secrets, written: result.written, certificates}
}
