import {randomBytes} from 'node:crypto'
import {chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'

import {UsageError} from '../errors.js'
import type {FilePlan} from '../render/plan.js'

export interface WriteOptions {
  dryRun?: boolean
  /** Allow writing into a non-empty directory, overwriting only files in the plan. */
  force?: boolean
  /** Skip the "directory must be empty" check: for commands that update an existing project. */
  update?: boolean
}

export interface WriteResult {
  written: string[]
  kept: string[]
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}

/** A file's bytes, or undefined when it does not exist (any other error is thrown). */
export async function readFileIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/**
 * Write one file atomically: a sibling temp file with the final mode, then rename. A reader (NGINX
 * reloading, a user's editor) never sees half a file, and a secret is never world-readable even briefly.
 */
export async function writeFileAtomic(path: string, content: string | Buffer, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), {recursive: true})
  const temp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`)
  try {
    await writeFile(temp, content, {mode})
    await chmod(temp, mode) // writeFile's mode is filtered by the umask
    await rename(temp, path)
  } catch (error) {
    await rm(temp, {force: true})
    throw error
  }
}

/**
 * The one place generated files are written (STYLE.md habit 7): knows --dry-run, --force, modes and
 * atomic rename. Into a non-empty directory it refuses unless --force, and --force overwrites only the
 * files in the plan, keeping those marked keepExisting.
 */
export async function writePlan(dir: string, plan: FilePlan, options: WriteOptions = {}): Promise<WriteResult> {
  const root = resolve(dir)
  if (!options.update && !options.force && (await exists(root))) {
    const entries = await readdir(root)
    if (entries.length > 0) {
      throw new UsageError(`${root} is not empty`, {
        hint: 'Choose a new directory, or pass --force to overwrite only the files init generates.',
      })
    }
  }

  const result: WriteResult = {written: [], kept: []}
  for (const file of plan) {
    const target = join(root, file.path)
    if (!target.startsWith(root + '/')) throw new UsageError(`refusing to write outside the project: ${file.path}`)
    if (file.keepExisting && (await exists(target))) {
      result.kept.push(file.path)
      continue
    }

    if (!options.dryRun) await writeFileAtomic(target, file.content, file.mode ?? 0o644)
    result.written.push(file.path)
  }

  return result
}
