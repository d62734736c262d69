import {OperationError} from '../errors.js'
import {engineFailure, type Engine, type ExecResult} from './engine.js'

export type {ExecResult} from './engine.js'

/**
 * Run a command in a running container and collect its exit code and its demultiplexed stdout and
 * stderr (used for `nginx -t` and `nginx -s reload` in the gateway).
 */
export async function execIn(engine: Engine, container: string, cmd: string[]): Promise<ExecResult> {
  try {
    return await engine.exec(container, cmd)
  } catch (error) {
    throw engineFailure(`Running \`${cmd.join(' ')}\` in ${container}`, error)
  }
}

/** execIn that fails with the command's own output when it exits non-zero. */
export async function execChecked(engine: Engine, container: string, cmd: string[]): Promise<ExecResult> {
  const result = await execIn(engine, container, cmd)
  if (result.exitCode !== 0) {
    const output = (result.stderr.trim() || result.stdout.trim())
      .split('\n')
      .slice(-20)
      .map((line) => `  | ${line}`)
    throw new OperationError(
      [`\`${cmd.join(' ')}\` in ${container} exited with code ${result.exitCode}`, ...output].join('\n'),
    )
  }

  return result
}
