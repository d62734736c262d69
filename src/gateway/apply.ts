import {rm} from 'node:fs/promises'

import type {Engine} from '../docker/engine.js'
import {readFileIfExists, writeFileAtomic} from '../util/files.js'
import type {Clock} from '../util/retry.js'
import {reloadGateway, signalReload, testConfig, type GatewayRef, type ReloadResult} from './nginx.js'
import type {Progress} from '../util/progress.js'

/**
 * The one transaction every change to the running gateway goes through (scale, rolling updates,
 * render, certificates): write the files, `nginx -t` in the gateway, reload and confirm it took
 * effect; on any failure put the previous bytes back and, if a reload was sent, reload onto them, so
 * the gateway keeps serving (and a restart still finds) the configuration it ran before.
 *
 * Callers say in their own words what the rollback did: `GatewayChangeError` carries both the cause
 * and what was undone.
 */

/** One file the gateway reads, as the change wants it. */
export interface GatewayFile {
  /** Absolute path. */
  path: string
  content: string | Buffer
  mode?: number
  /** The file's group (see PlannedFile.group). */
  group?: number
  /**
   * The bytes to put back on failure, when they are not what the disk holds now: a caller that wrote
   * the new file already (`certs` writes the certificate before it knows whether a gateway runs).
   */
  before?: string | Buffer
}

export interface WriteOptions {
  /**
   * A file that did not exist before stays on failure, left for inspection, instead of being removed;
   * the gateway is then not reloaded back (there is no previous configuration on disk to go back to).
   */
  keepNewFiles?: boolean
}

interface Written {
  file: GatewayFile
  before: Buffer | undefined
}

/** Files written for one change, with the bytes each had before: what a failed change puts back. */
export class WrittenFiles {
  private constructor(
    private readonly entries: Written[],
    private readonly keepNewFiles: boolean,
  ) {}

  /** Nothing written: a change that only needs the gateway to load the files on disk again. */
  static none(): WrittenFiles {
    return new WrittenFiles([], false)
  }

  /**
   * Write each file atomically, remembering its previous bytes. A write that fails (a full or
   * read-only disk) puts back the ones already written, so nothing stays half-changed, then throws.
   */
  static async write(files: GatewayFile[], options: WriteOptions = {}): Promise<WrittenFiles> {
    const entries: Written[] = []
    for (const file of files) {
      const before = file.before === undefined ? await readFileIfExists(file.path) : Buffer.from(file.before)
      entries.push({file, before})
    }

    const written = new WrittenFiles(entries, options.keepNewFiles ?? false)
    try {
      for (const {file} of entries) await writeFileAtomic(file.path, file.content, file.mode ?? 0o644, file.group)
    } catch (error) {
      await written.restore().catch(() => {})
      throw error
    }

    return written
  }

  /** How many files the change wrote. */
  get count(): number {
    return this.entries.length
  }

  /** Would restore() bring every file back to its previous bytes (false when a new file is kept)? */
  get restorable(): boolean {
    return !this.keepNewFiles || this.entries.every((entry) => entry.before !== undefined)
  }

  /** Put every file back as it was: its previous bytes, or no file when there was none (unless kept). */
  async restore(): Promise<void> {
    for (const {file, before} of this.entries) {
      if (before !== undefined) await writeFileAtomic(file.path, before, file.mode ?? 0o644, file.group)
      else if (!this.keepNewFiles) await rm(file.path, {force: true})
    }
  }
}

export interface ApplyOptions {
  clock?: Clock
  /** How long NGINX may take to show new workers after a reload. */
  reloadTimeoutMs?: number
  /**
   * `confirmed` (the default): the reload counts once NGINX runs new workers and error.log gained no
   * [emerg] or [alert] line. `signal`: `nginx -s reload` only, for a caller that proves the change
   * another way (certs: the certificate served over TLS).
   */
  reload?: 'confirmed' | 'signal'
  /** Told before `nginx -t` and before the reload. */
  onProgress?: Progress
}

/** What a failed change undid. */
export interface Rollback {
  /** Every file the change wrote is back as it was (trivially so when it wrote none). */
  restored: boolean
  /** NGINX was reloaded onto the restored files (the failed change had sent a reload). */
  reloaded: boolean
  /** The confirmed reload back, when there was one: its old workers are the ones that ran the failed files. */
  reload?: ReloadResult
  /** Why undoing failed part-way, if it did. */
  failure?: string
}

/** A gateway change failed and was undone as far as it could be; `cause` is the failure. */
export class GatewayChangeError extends Error {
  constructor(
    override readonly cause: unknown,
    readonly rollback: Rollback,
  ) {
    super(cause instanceof Error ? cause.message : String(cause), {cause})
    this.name = 'GatewayChangeError'
  }
}

async function reload(engine: Engine, gateway: GatewayRef, options: ApplyOptions): Promise<ReloadResult | undefined> {
  if (options.reload === 'signal') {
    await signalReload(engine, gateway)
    return undefined
  }

  return reloadGateway(engine, gateway, {clock: options.clock, timeoutMs: options.reloadTimeoutMs})
}

/**
 * `nginx -t` and a reload onto files already written; on failure restore them (and reload back when
 * the failed reload was sent and some file changed) and throw GatewayChangeError. Returns the
 * confirmed reload (undefined with `reload: 'signal'`).
 */
export async function applyWrittenFiles(
  engine: Engine,
  gateway: GatewayRef,
  files: WrittenFiles,
  options: ApplyOptions = {},
): Promise<ReloadResult | undefined> {
  let reloadSent = false
  try {
    options.onProgress?.(`Testing the configuration: nginx -t in ${gateway.name}`)
    await testConfig(engine, gateway)
    options.onProgress?.(`Reloading NGINX in ${gateway.name}`)
    reloadSent = true
    return await reload(engine, gateway, options)
  } catch (error) {
    throw new GatewayChangeError(error, await rollBack(engine, gateway, files, reloadSent, options))
  }
}

async function rollBack(
  engine: Engine,
  gateway: GatewayRef,
  files: WrittenFiles,
  reloadSent: boolean,
  options: ApplyOptions,
): Promise<Rollback> {
  const rollback: Rollback = {restored: false, reloaded: false}
  try {
    await files.restore()
    rollback.restored = files.restorable
    // The master may have started workers with the failed files: put the previous ones back in force.
    if (reloadSent && files.count > 0 && rollback.restored) {
      rollback.reload = await reload(engine, gateway, options)
      rollback.reloaded = true
    }
  } catch (error) {
    rollback.failure = error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error)
  }

  return rollback
}

/** The whole transaction: write `files`, then applyWrittenFiles. */
export async function changeGateway(
  engine: Engine,
  gateway: GatewayRef,
  files: GatewayFile[],
  options: ApplyOptions & WriteOptions = {},
): Promise<ReloadResult | undefined> {
  const written = await WrittenFiles.write(files, options)
  return applyWrittenFiles(engine, gateway, written, options)
}
