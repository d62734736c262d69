import {spawn, spawnSync} from 'node:child_process'
import {join} from 'node:path'

import {ROOT} from './cli.js'

/** The Compose v2 line the model in src/docker/compose/ follows. */
export const COMPOSE_V2_LINE = '2.40'

function composeVersion(): string | undefined {
  const result = spawnSync('docker', ['compose', 'version', '--short'], {encoding: 'utf8', timeout: 30_000})
  return result.status === 0 ? result.stdout.trim().replace(/^v/, '') : undefined
}

/**
 * Compose v2 as a Docker CLI plugin, installed from Debian forky's package by
 * fixtures/compose/install-compose-v2.sh when this machine lacks it (a fresh machine, a fresh CI run).
 * Throws when it cannot be had: the tests that need it fail rather than skip.
 */
export function ensureComposeV2(): string {
  const found = composeVersion()
  if (found?.startsWith(`${COMPOSE_V2_LINE}.`)) return found
  const script = join(ROOT, 'fixtures/compose/install-compose-v2.sh')
  const install = spawnSync('bash', [script], {encoding: 'utf8', timeout: 300_000})
  const version = composeVersion()
  if (install.status !== 0 || !version?.startsWith(`${COMPOSE_V2_LINE}.`)) {
    throw new Error(
      `Compose v${COMPOSE_V2_LINE} is needed and ${script} could not install it (exit ${install.status}, now: ${version ?? 'none'}):\n${install.stderr}`,
    )
  }

  return version
}

/**
 * `docker compose ARGS` in a project directory, bounded, without blocking the event loop (a build or
 * an `up` can take minutes, and the test process keeps answering meanwhile).
 */
export function compose(
  args: string[],
  cwd: string,
  options: {timeoutMs?: number; env?: NodeJS.ProcessEnv} = {},
): Promise<{status: number | null; stdout: string; stderr: string}> {
  return new Promise((resolvePromise) => {
    const child = spawn('docker', ['compose', ...args], {
      cwd,
      env: {...process.env, ...options.env},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => {
      stderr += `\n[test] docker compose ${args.join(' ')} killed after ${options.timeoutMs ?? 300_000} ms`
      child.kill('SIGKILL')
    }, options.timeoutMs ?? 300_000)
    child.on('close', (status) => {
      clearTimeout(timer)
      resolvePromise({status, stdout, stderr})
    })
  })
}
