import {isNotOneOff} from '../docker/containers.js'
import {connectEngine, type ContainerState, type Engine, type ExecResult} from '../docker/engine.js'
import {execIn} from '../docker/exec.js'
import {LABELS} from '../docker/spec.js'
import type {Manifest} from '../manifest/schema.js'

export type {ContainerState, ExecResult} from '../docker/engine.js'

/**
 * What verify asks of the engine, and nothing more: the project's containers and a command run in
 * one of them. Unit tests pass a fake; the real one connects on first use, so checks that never touch
 * the engine still run (and say something useful) when Docker is down.
 */
export interface VerifyEngine {
  /** The project's long-running containers (Compose one-off containers left out), running or not. */
  containers(): Promise<ContainerState[]>
  exec(container: string, cmd: string[]): Promise<ExecResult>
  /**
   * A stack whose gateway logs somewhere other than the project's logs/ folder (a swarm: the gateway
   * task's stdout and stderr): the last `maxBytes` of its access or error log. Absent: the files.
   */
  logTail?(log: 'access' | 'error', maxBytes: number): Promise<string>
  /** What to call that log in a report (`gateway task stdout`); absent: the file's path. */
  logName?(log: 'access' | 'error'): string
  /**
   * How the gateway finds the replicas: `file` (upstreams.conf, checked against the running replicas)
   * or `dns` (a swarm: resolved at run time from the engine's DNS, nothing on disk to compare).
   */
  discovery?: 'file' | 'dns'
}

export function projectEngine(manifest: Manifest, connect: () => Promise<Engine> = connectEngine): VerifyEngine {
  let engine: Promise<Engine> | undefined
  const get = (): Promise<Engine> => (engine ??= connect())
  return {
    async containers() {
      const all = await (await get()).containers({[LABELS.project]: manifest.name})
      return all.filter(isNotOneOff)
    },
    async exec(container, cmd) {
      return execIn(await get(), container, cmd)
    },
  }
}

/** Compose service of a container, from its label. */
export function serviceOf(container: ContainerState): string | undefined {
  return container.labels[LABELS.service]
}
