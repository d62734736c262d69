import {isNotOneOff} from '../docker/containers.js'
import {connectEngine, type ContainerState, type Engine, type ExecResult} from '../docker/engine.js'
import {execIn} from '../docker/exec.js'
import {readLines} from '../docker/gateway-log.js'
import {LABELS} from '../docker/spec.js'
import type {Manifest} from '../manifest/schema.js'
import {containerLogSource, type GatewayLogSource} from './log-source.js'

export type {ContainerState, ExecResult} from '../docker/engine.js'

/**
 * What verify asks of the engine, and nothing more: the project's containers, a command run in one
 * of them, and the gateway's log. Unit tests pass a fake; the real one connects on first use, so checks that never touch
 * the engine still run (and say something useful) when Docker is down.
 */
export interface VerifyEngine {
  /** The project's long-running containers (Compose one-off containers left out), running or not. */
  containers(): Promise<ContainerState[]>
  exec(container: string, cmd: string[]): Promise<ExecResult>
  /** The gateway's access and error lines: its container's log on one host, its service's log on a swarm. */
  gatewayLog: GatewayLogSource
  /**
   * How the gateway finds the replicas: `file` (upstreams.conf, checked against the running replicas)
   * or `dns` (a swarm: resolved at run time from the engine's DNS, nothing on disk to compare).
   */
  discovery?: 'file' | 'dns'
}

export function projectEngine(manifest: Manifest, connect: () => Promise<Engine> = connectEngine): VerifyEngine {
  let engine: Promise<Engine> | undefined
  const get = (): Promise<Engine> => (engine ??= connect())
  const containers = async (): Promise<ContainerState[]> => {
    const all = await (await get()).containers({[LABELS.project]: manifest.name})
    return all.filter(isNotOneOff)
  }

  return {
    containers,
    async exec(container, cmd) {
      return execIn(await get(), container, cmd)
    },
    gatewayLog: containerLogSource({
      containers,
      logs: async (container, tail) => readLines(await get(), container, {tail}),
    }),
  }
}

/** Compose service of a container, from its label. */
export function serviceOf(container: ContainerState): string | undefined {
  return container.labels[LABELS.service]
}
