import {connectEngine, type ContainerState, type Engine, type ExecResult} from '../docker/engine.js'
import {execIn} from '../docker/exec.js'
import {readLines, type LogLine} from '../docker/gateway-log.js'
import {LABELS} from '../docker/spec.js'
import type {Manifest} from '../manifest/schema.js'

export type {ContainerState, ExecResult} from '../docker/engine.js'

/**
 * What verify asks of the engine, and nothing more: the project's containers, a command run in one
 * of them, and a container's log. Unit tests pass a fake; the real one connects on first use, so checks that never touch
 * the engine still run (and say something useful) when Docker is down.
 */
export interface VerifyEngine {
  /** The project's long-running containers (Compose one-off containers left out), running or not. */
  containers(): Promise<ContainerState[]>
  exec(container: string, cmd: string[]): Promise<ExecResult>
  /** The last `tail` lines a container wrote (stdout and stderr, with the engine's time stamps). */
  logs(container: string, tail: number): Promise<LogLine[]>
}

export function projectEngine(manifest: Manifest, connect: () => Promise<Engine> = connectEngine): VerifyEngine {
  let engine: Promise<Engine> | undefined
  const get = (): Promise<Engine> => (engine ??= connect())
  return {
    async containers() {
      const all = await (await get()).containers({[LABELS.project]: manifest.name})
      return all.filter((container) => container.labels[LABELS.oneoff] !== 'True')
    },
    async exec(container, cmd) {
      return execIn(await get(), container, cmd)
    },
    async logs(container, tail) {
      return readLines(await get(), container, {tail})
    },
  }
}

/** Compose service of a container, from its label. */
export function serviceOf(container: ContainerState): string | undefined {
  return container.labels[LABELS.service]
}
