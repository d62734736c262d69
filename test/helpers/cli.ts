import {spawnSync} from 'node:child_process'
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

/** Run the built CLI as a user would (stdin not a terminal). `npm test` builds dist/ first. */
export function runCli(
  args: string[],
  options: {cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number} = {},
): CliResult {
  const result = spawnSync(process.execPath, [BIN, ...args], {
    cwd: options.cwd ?? ROOT,
    env: {...process.env, NO_COLOR: '1', ...options.env},
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 120_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return {status: result.status, stdout: result.stdout, stderr: result.stderr}
}

export function tempDir(prefix = 'cg-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}
