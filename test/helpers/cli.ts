import {execFile} from 'node:child_process'
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'

export const ROOT = resolve(import.meta.dirname, '..', '..')
export const BIN = join(ROOT, 'bin', 'run.js')

export interface CliResult {
  status: number | null
  stdout: string
  stderr: string
}

/**
 * Run the built CLI as a user would (stdin not a terminal; `npm test` builds dist/ first), without
 * blocking the test worker: a synchronous run of several slow CLI commands in a row holds vitest's
 * event loop long enough for its worker RPC to time out on a busy machine ("Timeout calling onTaskUpdate").
 * `prefix` runs the CLI under another program (setpriv).
 */
export function runCliAsync(
  args: string[],
  options: {cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; prefix?: string[]} = {},
): Promise<CliResult> {
  const [command, ...prefixArgs] = [...(options.prefix ?? []), process.execPath]
  return new Promise((resolve) => {
    execFile(
      command!,
      [...prefixArgs, BIN, ...args],
      {
        cwd: options.cwd ?? ROOT,
        env: {...process.env, NO_COLOR: '1', ...options.env},
        encoding: 'utf8',
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = (error as (Error & {code?: unknown}) | null)?.code
        resolve({status: error ? (typeof code === 'number' ? code : null) : 0, stdout, stderr})
      },
    ).stdin?.end()
  })
}

export function tempDir(prefix = 'cg-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}
