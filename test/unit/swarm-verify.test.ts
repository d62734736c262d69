import type Docker from 'dockerode'
import {describe, expect, it} from 'vitest'

import type {DockerodeEngine} from '../../src/docker/engine.js'
import {parseManifest} from '../../src/manifest/load.js'
import type {SwarmConnection} from '../../src/swarm/connect.js'
import type {TaskView} from '../../src/swarm/converge.js'
import {swarmVerifyEngine, taskContainer} from '../../src/swarm/verify.js'
import {judgeContainers} from '../../src/verify/checks/containers.js'

const manifest = parseManifest({
  version: 1,
  name: 'my-api',
  domain: 'api.example.com',
  services: {web: {kind: 'django', replicas: 2}},
  routes: [{path: '/', service: 'web'}],
})

const task = (slot: number, state: string, extra: Partial<TaskView> = {}): TaskView => ({
  id: `task${slot}${state}`,
  slot,
  nodeId: 'manager-node',
  state,
  desiredState: 'running',
  containerId: `c${slot}0123456789abcdef`,
  ...extra,
})

describe('verify on a swarm: tasks as containers', () => {
  it('a running task is a healthy container named as Swarm names it; starting is running with health pending', () => {
    const running = taskContainer('my-api', 'web', task(1, 'running'))
    expect(running).toMatchObject({
      id: 'c10123456789abcdef',
      name: 'my-api_web.1.task1running',
      running: true,
      health: 'healthy',
    })
    expect(running.labels['com.docker.compose.service']).toBe('web')
    expect(running.labels['com.docker.compose.container-number']).toBe('1')
    expect(taskContainer('my-api', 'web', task(2, 'starting'))).toMatchObject({running: true, health: 'starting'})
    const failed = taskContainer('my-api', 'web', task(2, 'failed', {error: 'task: non-zero exit (1)'}))
    expect(failed).toMatchObject({running: false, status: 'failed', error: 'task: non-zero exit (1)'})
    expect(failed.health).toBeUndefined()
  })

  it('the containers check judges the tasks against the replica counts; DNS discovery has no upstreams.conf to compare', () => {
    const tasks = [
      taskContainer('my-api', 'web', task(1, 'running')),
      taskContainer('my-api', 'web', task(2, 'running')),
      taskContainer('my-api', 'gateway', task(1, 'running')),
    ]
    const verdict = judgeContainers(manifest, tasks, 'dns')
    expect(verdict.problems).toEqual([])
    expect(verdict.upstreams.web_upstream?.running).toEqual(['my-api_web.1.task1running', 'my-api_web.2.task2running'])

    const degraded = [tasks[0]!, taskContainer('my-api', 'web', task(2, 'failed')), tasks[2]!]
    expect(judgeContainers(manifest, degraded, 'dns').problems).toEqual([expect.stringMatching(/web\.2\..* failed/)])
    expect(judgeContainers(manifest, [tasks[0]!, tasks[2]!], 'dns').problems).toEqual([
      expect.stringMatching(/^missing: my-api-web-2/),
    ])
  })
})

function frame(stream: 1 | 2, text: string): Buffer {
  const data = Buffer.from(text)
  const header = Buffer.alloc(8)
  header[0] = stream
  header.writeUInt32BE(data.length, 4)
  return Buffer.concat([header, data])
}

function fakeSwarm(gatewayNode: string): {connection: SwarmConnection; execs: string[]} {
  const execs: string[] = []
  const tasks: Record<string, unknown[]> = {
    'my-api_web': [{ID: 'w1', Slot: 1, NodeID: 'worker', DesiredState: 'running', Status: {State: 'running'}}],
    'my-api_gateway': [
      {
        ID: 'g1',
        Slot: 1,
        NodeID: gatewayNode,
        DesiredState: 'running',
        Status: {State: 'running', ContainerStatus: {ContainerID: 'gatewaycontainer'}},
      },
    ],
  }
  const docker = {
    listServices: async () => [{Spec: {Name: 'my-api_web'}}, {Spec: {Name: 'my-api_gateway'}}],
    listTasks: async ({filters}: {filters: {service: string[]}}) => tasks[filters.service[0]!] ?? [],
    info: async () => ({Swarm: {NodeID: 'manager-node'}}),
    getService: () => ({
      // The last `tail` lines, as the engine keeps them.
      logs: async ({tail}: {tail: number}) =>
        Buffer.concat(
          [
            frame(1, '{"status":200,"request_id":"verify-1-1"}\n'),
            frame(2, '2026/12/05 11:00:00 [warn] 1#1: a warning\n'),
            frame(1, '{"status":200,"request_id":"verify-1-2"}\n'),
          ].slice(-tail),
        ),
    }),
  } as unknown as Docker
  const engine = {
    exec: async (container: string, cmd: string[]) => {
      execs.push(`${container}: ${cmd.join(' ')}`)
      return {exitCode: 0, stdout: '', stderr: 'nginx: configuration file /etc/nginx/nginx.conf test is successful'}
    },
  } as unknown as DockerodeEngine
  return {connection: {docker, engine, endpoint: 'tcp://127.0.0.1:2375'}, execs}
}

describe('the swarm verify engine', () => {
  it("runs nginx -t in the gateway task's container when the task is on the manager", async () => {
    const {connection, execs} = fakeSwarm('manager-node')
    const engine = swarmVerifyEngine(connection, 'my-api')
    expect(engine.discovery).toBe('dns')
    const containers = await engine.containers()
    expect(containers.map((container) => container.name)).toEqual(['my-api_gateway.1.g1', 'my-api_web.1.w1'])
    const result = await engine.exec('my-api_gateway.1.g1', ['nginx', '-t'])
    expect(result.exitCode).toBe(0)
    expect(execs).toEqual(['gatewaycontainer: nginx -t'])
  })

  it('says where the gateway task runs when the manager cannot reach it', async () => {
    const {connection, execs} = fakeSwarm('edge-node')
    const engine = swarmVerifyEngine(connection, 'my-api')
    await engine.containers()
    await expect(engine.exec('my-api_gateway.1.g1', ['nginx', '-t'])).rejects.toThrow(
      /runs on node edge-node, not on the manager at tcp:\/\/127\.0\.0\.1:2375/,
    )
    expect(execs).toEqual([])
  })

  it("reads the access log from the gateway service's stdout and the error log from its stderr", async () => {
    const engine = swarmVerifyEngine(fakeSwarm('manager-node').connection, 'my-api')
    const logs = await engine.gatewayLog.read(20_000)
    expect(logs.access).toBe('{"status":200,"request_id":"verify-1-1"}\n{"status":200,"request_id":"verify-1-2"}')
    expect(logs.error).toBe('2026/12/05 11:00:00 [warn] 1#1: a warning')
    // Only the last lines when fewer are asked for.
    expect((await engine.gatewayLog.read(1)).access).toBe('{"status":200,"request_id":"verify-1-2"}')
    expect(engine.gatewayLog.names.access).toMatch(/stdout/)
  })
})
