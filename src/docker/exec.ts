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
