import type Docker from 'dockerode'

import {Demuxer, LineSplitter} from '../docker/demux.js'
import type {LogLine} from '../docker/gateway-log.js'
import {execIn} from '../docker/exec.js'
import {LABELS} from '../docker/spec.js'
import {OperationError} from '../errors.js'
import type {ContainerState, VerifyEngine} from '../verify/engine.js'
import {splitGatewayLog, type GatewayLogSource} from '../verify/log-source.js'
import {serviceTasks, type TaskView} from './converge.js'
import {stackServices} from './objects.js'
import type {SwarmConnection} from './connect.js'
import {serviceName} from './names.js'

/**
 * `verify` on a deployed stack: the checks are the same, only what they ask of the engine changes.
 * The tasks stand for the containers (Swarm names a task's container `<service>.<slot>.<task id>`, and
 * its hostname is the container's short id, as on one host); `nginx -t` runs in the gateway task's
 * container through the manager's engine, which reaches it when the task runs on the manager (the
 * default placement); the access and error logs are the gateway task's stdout and stderr.
 */

/**
 * A task as the checks see a container. Swarm sets a task `running` only once its healthcheck passed;
 * until then it is `starting` (the container runs, its health is not known yet).
 */
export function taskContainer(namespace: string, service: string, task: TaskView): ContainerState {
  const starting = task.state === 'starting'
  const running = task.state === 'running' || starting
  return {
    id: task.containerId ?? task.id,
    name: `${serviceName(namespace, service)}.${task.slot ?? ''}.${task.id}`,
    labels: {
      [LABELS.project]: namespace,
      [LABELS.service]: service,
      [LABELS.number]: String(task.slot ?? ''),
      [LABELS.oneoff]: 'False',
    },
    image: '',
    imageId: '',
    status: task.state,
    running,
    exitCode: 0,
    restartCount: 0,
    ...(running ? {health: starting ? 'starting' : 'healthy'} : {}),
    ports: [],
    ...(task.error ? {error: task.error} : {}),
  }
}

/** What to call the gateway service's logs in a report. */
export const SERVICE_LOG_NAMES = {
  access: "the gateway service's stdout (access log)",
  error: "the gateway service's stderr (error log)",
} as const

/**
 * A swarm's source of the gateway's log: the gateway service's stdout and stderr (every task's), read
 * through the manager, `tail` lines of each task.
 */
export function serviceLogSource(docker: Docker, namespace: string): GatewayLogSource {
  return {
    names: SERVICE_LOG_NAMES,
    async read(tail) {
      const raw = (await docker.getService(serviceName(namespace, 'gateway')).logs({
        stdout: true,
        stderr: true,
        follow: false,
        tail,
      })) as unknown as Buffer
      const demuxer = new Demuxer()
      const splitter = new LineSplitter()
      const lines: LogLine[] = []
      for (const frame of demuxer.push(Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw)))) {
        for (const {stream, line} of splitter.push(frame)) lines.push({stream, text: line, time: ''})
      }

      for (const {stream, line} of splitter.flush()) lines.push({stream, text: line, time: ''})
      return splitGatewayLog(lines)
    },
  }
}

export function swarmVerifyEngine(connection: SwarmConnection, namespace: string): VerifyEngine {
  const {docker, engine} = connection
  const tasks = new Map<string, TaskView>()
  return {
    discovery: 'dns',
    async containers() {
      const states: ContainerState[] = []
      for (const service of await stackServices(docker, namespace)) {
        const name = service.Spec?.Name ?? ''
        const short = name.startsWith(`${namespace}_`) ? name.slice(namespace.length + 1) : name
        const current = (await serviceTasks(docker, name)).filter((task) => task.desiredState === 'running')
        for (const task of current) {
          const state = taskContainer(namespace, short, task)
          tasks.set(state.name, task)
          states.push(state)
        }
      }

      return states.sort((a, b) => a.name.localeCompare(b.name))
    },
    async exec(container, cmd) {
      const task = tasks.get(container)
      const info = (await docker.info()) as {Swarm?: {NodeID?: string}}
      if (!task?.containerId)
        throw new OperationError(`No running task ${container} on the swarm (is the stack deployed?)`)
      if (task.nodeId !== info.Swarm?.NodeID)
        throw new OperationError(
          `${container} runs on node ${task.nodeId}, not on the manager at ${connection.endpoint}: \`${cmd.join(' ')}\` can only run through the engine of the node that holds the task`,
          {hint: 'Run verify with --host pointing at that node, or --skip config.'},
        )
      return execIn(engine, task.containerId, cmd)
    },
    gatewayLog: serviceLogSource(docker, namespace),
  }
}
