import {randomBytes} from 'node:crypto'
import type {Stats} from 'node:fs'
import {chmod, chown, mkdir, readdir, readFile, realpath, rename, rm, stat, writeFile} from 'node:fs/promises'
import {dirname, isAbsolute, join, relative, resolve, sep} from 'node:path'

import {OperationError, UsageError} from '../errors.js'

/** One file `init` (or `certs`, `scale`) will write, relative to the project root, POSIX separators. */
export interface PlannedFile {
  path: string
  content: string | Buffer
  /** File mode; secrets are 0o600. Defaults to 0o644 (0o755 for scripts set explicitly). */
  mode?: number
  /**
   * Group of the file, when a container's user reads it (secrets: NGINX's workers, Django): set when
   * create-gateway may (it runs as root); otherwise the containers join the file's group (group_add).
   */
  group?: number
  /**
   * Keep an existing file instead of overwriting it under --force (secrets, keys, certificates: a
   * re-render must not rotate credentials behind the user's back).
   */
  keepExisting?: boolean
}

export type FilePlan = PlannedFile[]

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

/** File-system errors the user can fix (a file where a folder belongs, permissions): exit 2. */
const USER_FIXABLE: Record<string, string> = {
  ENOTDIR: 'part of the path is a file, not a folder',
  EISDIR: 'it is a folder, not a file',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or folder',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'the name is too long',
  EROFS: 'the file system is read-only',
  EEXIST: 'something is already there',
}

/**
 * A Node.js file-system error as one line naming the path (no stack, no bare "EACCES"): a UsageError
 * for what the user can fix, an OperationError for the rest (a full disk). Anything else is returned
 * as it is: it is a bug, and keeps its stack.
 */
export function fileSystemError(error: unknown, path: string, action: 'read' | 'write' | 'create'): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) return error
  const reason = USER_FIXABLE[code]
  if (reason) return new UsageError(`cannot ${action} ${path}: ${reason}`, {cause: error})
  return new OperationError(`cannot ${action} ${path}: ${code}`, {cause: error})
}

/** A file's bytes, or undefined when it does not exist (any other error is thrown, naming the file). */
export async function readFileIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw fileSystemError(error, path, 'read')
  }
}

/** What stat says of a path, or undefined when nothing is there (any other error is thrown, naming it). */
export async function statIfExists(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw fileSystemError(error, path, 'read')
  }
}

/**
 * The one guard of every writer (and reader) of generated files: `path`, relative to the project,
 * resolved inside `root`. A path that leaves it (`../x`, `/etc/x`), or reaches a folder that is a
 * symbolic link out of it, is refused. gateway.yaml's grammar already refuses such paths; this holds
 * for every plan, whatever built it.
 */
export async function projectFile(projectRoot: string, path: string): Promise<string> {
  const root = resolve(projectRoot)
  const target = resolve(root, path)
  const outside = (base: string, candidate: string) => {
    const rel = relative(base, candidate)
    return rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)
  }

  if (isAbsolute(path) || outside(root, target))
    throw new UsageError(`refusing to write outside the project ${root}: ${path}`)
  // The deepest folder that exists: through a symbolic link it may lie elsewhere.
  let existing = dirname(target)
  while (existing !== root && !(await exists(existing))) existing = dirname(existing)
  const [realRoot, realExisting] = await Promise.all([
    realpath(root).catch(() => root),
    realpath(existing).catch(() => existing),
  ])
  if (existing !== root && outside(realRoot, realExisting))
    throw new UsageError(
      `refusing to write outside the project ${root}: ${path} (${relative(root, existing)} leads to ${realExisting})`,
    )
  return target
}

/**
 * Write one file atomically: a sibling temp file with the final mode, then rename. A reader (NGINX
 * reloading, a user's editor) never sees half a file, and a secret is never world-readable even briefly.
 */
export async function writeFileAtomic(
  path: string,
  content: string | Buffer,
  mode = 0o644,
  group?: number,
): Promise<void> {
  const temp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`)
  try {
    await mkdir(dirname(path), {recursive: true})
    await writeFile(temp, content, {mode})
    await chmod(temp, mode) // writeFile's mode is filtered by the umask
    // Only root may give a file another group; anyone else keeps their own (see PlannedFile.group).
    if (group !== undefined && process.getuid?.() === 0) await chown(temp, -1, group)
    await rename(temp, path)
  } catch (error) {
    await rm(temp, {force: true}).catch(() => {})
    throw fileSystemError(error, path, 'write')
  }
}

/**
 * The one place generated files are written, so every writer gets the same guarantees: it knows --dry-run, --force, modes and
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

  // Every path is checked before the first write, so a bad one leaves nothing behind.
  const targets: string[] = []
  for (const file of plan) targets.push(await projectFile(root, file.path))
  const result: WriteResult = {written: [], kept: []}
  for (const [index, file] of plan.entries()) {
    const target = targets[index]!
    if (file.keepExisting && (await exists(target))) {
      result.kept.push(file.path)
      continue
    }

    if (!options.dryRun) await writeFileAtomic(target, file.content, file.mode ?? 0o644, file.group)
    result.written.push(file.path)
  }

  return result
}
