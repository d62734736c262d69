import {PassThrough} from 'node:stream'

import type Docker from 'dockerode'
import {describe, expect, it} from 'vitest'

import type {LogEngine} from '../../src/docker/gateway-log.js'
import type {SwarmConnection} from '../../src/swarm/connect.js'
import {readServiceLines, type ServiceLogDocker} from '../../src/swarm/gateway-log.js'
import {defaultSource} from '../../src/top/run.js'
import {DEFAULT_MAX_LINES, GatewayAccessLog, SwarmGatewayAccessLog} from '../../src/top/source.js'
import {frame} from '../helpers/fake-engine.js'

/**
 * `top` on a stack deployed to a swarm: the gateway service's log through the manager (`docker service
 * logs`), read once (newest lines of every task, in time order) and then followed from where that read
 * ended; and which stack `top` reads when a swarm stack exists.
 */

interface Entry {
  task: string
  stream: 'stdout' | 'stderr'
  time: string
  text: string
}

interface LogRequest {
  service: string
  follow: boolean
  tail?: number
  since?: number
  timestamps?: boolean
}

/** A manager holding the gateway service's log; `tasks` orders the answer task by task, as the engine may. */
function manager(options: {missing?: boolean} = {}) {
  const entries: Entry[] = []
  const follows: PassThrough[] = []
  const requests: LogRequest[] = []
  let missing = options.missing ?? false
  const encode = (entry: Entry) => frame(entry.stream === 'stdout' ? 1 : 2, `${entry.time} ${entry.text}\n`)
  const docker: ServiceLogDocker = {
    getService: ((name: string) => ({
      logs: async (request: LogRequest) => {
        requests.push({...request, service: name})
        if (missing || name !== 'demo_gateway') throw Object.assign(new Error('no such service'), {statusCode: 404})
        let selected = entries.filter(
          (entry) => request.since === undefined || Date.parse(entry.time) >= request.since * 1000,
        )
        // Task by task, each task's newest `tail` lines.
        const tasks = [...new Set(selected.map((entry) => entry.task))].sort()
        selected = tasks.flatMap((task) => {
          const own = selected.filter((entry) => entry.task === task)
          return request.tail === undefined ? own : own.slice(Math.max(0, own.length - request.tail))
        })
        const body = Buffer.concat(selected.map(encode))
        if (!request.follow) return body
        const stream = new PassThrough()
        stream.write(body)
        follows.push(stream)
        return stream
      },
    })) as unknown as Docker['getService'],
  }
  const write = (entry: Entry) => {
    entries.push(entry)
    for (const follow of follows) if (!follow.destroyed) follow.write(encode(entry))
  }

  return {docker, write, follows, requests, setMissing: (value: boolean) => (missing = value)}
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20))
const access = (n: number) => `{"n":${n}}`

describe("reading the swarm gateway service's log", () => {
  it('reads the newest lines of every task in time order, with time stamps, stdout JSON only', async () => {
    const log = manager()
    // The old task (a), replaced by b during an update: the engine answers task by task.
    log.write({task: 'b', stream: 'stdout', time: '2030-01-01T10:00:03.000000000Z', text: access(3)})
    log.write({task: 'a', stream: 'stdout', time: '2030-01-01T10:00:01.000000000Z', text: access(1)})
    log.write({task: 'a', stream: 'stderr', time: '2030-01-01T10:00:02.000000000Z', text: '[notice] 1#1: exiting'})
    log.write({task: 'b', stream: 'stdout', time: '2030-01-01T10:00:02.500000000Z', text: 'entrypoint: ready'})
    log.write({task: 'a', stream: 'stdout', time: '2030-01-01T10:00:02.100000000Z', text: access(2)})

    const lines = await readServiceLines(log.docker, 'demo', 'gateway', 10)
    expect(lines.map((line) => line.time)).toEqual([
      '2030-01-01T10:00:01.000000000Z',
      '2030-01-01T10:00:02.000000000Z',
      '2030-01-01T10:00:02.100000000Z',
      '2030-01-01T10:00:02.500000000Z',
      '2030-01-01T10:00:03.000000000Z',
    ])
    expect(lines[1]).toEqual({stream: 'stderr', time: '2030-01-01T10:00:02.000000000Z', text: '[notice] 1#1: exiting'})

    const source = new SwarmGatewayAccessLog(log.docker, 'demo')
    expect(await source.next()).toEqual([access(1), access(2), access(3)])
    expect(log.requests.at(-1)).toMatchObject({
      service: 'demo_gateway',
      follow: false,
      tail: DEFAULT_MAX_LINES,
      timestamps: true,
    })
    source.close()
  })

  it('then follows from the last second it read, without repeating a line or losing one of that second', async () => {
    const log = manager()
    log.write({task: 'a', stream: 'stdout', time: '2030-01-01T10:00:01.100000000Z', text: access(1)})
    log.write({task: 'a', stream: 'stdout', time: '2030-01-01T10:00:02.200000000Z', text: access(2)})
    const source = new SwarmGatewayAccessLog(log.docker, 'demo')
    expect(await source.next()).toEqual([access(1), access(2)])
    // Same whole second as the last line read: the follow starts at 10:00:02 and must keep only this.
    log.write({task: 'a', stream: 'stdout', time: '2030-01-01T10:00:02.700000000Z', text: access(3)})
    expect(await source.next()).toEqual([])
    await settle()
    expect(log.requests.at(-1)).toMatchObject({follow: true, since: Date.parse('2030-01-01T10:00:02Z') / 1000})
    expect(await source.next()).toEqual([access(3)])
    log.write({task: 'a', stream: 'stderr', time: '2030-01-01T10:00:04.000000000Z', text: '[error] connect() failed'})
    log.write({task: 'a', stream: 'stdout', time: '2030-01-01T10:00:04.000000000Z', text: access(4)})
    await settle()
    expect(await source.next()).toEqual([access(4)])
    expect(await source.next()).toEqual([])
    expect(log.follows).toHaveLength(1)
    source.close()
    expect(log.follows[0]!.destroyed).toBe(true)
  })

  it('shows nothing while the gateway service is missing, and reads it once it exists', async () => {
    const log = manager({missing: true})
    log.write({task: 'a', stream: 'stdout', time: '2030-01-01T10:00:01.000000000Z', text: access(1)})
    const source = new SwarmGatewayAccessLog(log.docker, 'demo')
    expect(await source.next()).toEqual([])
    log.setMissing(false)
    expect(await source.next()).toEqual([access(1)])
    source.close()
  })

  it('names the service and the manager in the header', () => {
    const source = new SwarmGatewayAccessLog(manager().docker, 'demo', {endpoint: 'tcp://127.0.0.1:2375'})
    expect(source.description).toBe('swarm service demo_gateway stdout (tcp://127.0.0.1:2375)')
  })
})

describe('which stack top reads', () => {
  const localEngine = {} as LogEngine
  const connection = {docker: manager().docker, endpoint: 'tcp://127.0.0.1:2375'} as unknown as SwarmConnection

  it('a stack deployed to a swarm when the manager at --host / DOCKER_HOST holds one', async () => {
    const asked: Array<[string, string | undefined]> = []
    const source = await defaultSource('demo', 'tcp://127.0.0.1:2375', {
      findDeployedStack: async (namespace, host) => {
        asked.push([namespace, host])
        return connection
      },
      connectEngine: async () => {
        throw new Error('the one-host engine must not be used when a swarm stack exists')
      },
    })
    expect(asked).toEqual([['demo', 'tcp://127.0.0.1:2375']])
    expect(source).toBeInstanceOf(SwarmGatewayAccessLog)
    expect(source.description).toContain('demo_gateway')
  })

  it('otherwise the stack `up` started, through the gateway container', async () => {
    let connected = 0
    const source = await defaultSource('demo', undefined, {
      findDeployedStack: async () => undefined,
      connectEngine: async () => {
        connected += 1
        return localEngine
      },
    })
    expect(connected).toBe(1)
    expect(source).toBeInstanceOf(GatewayAccessLog)
    expect(source.description).toBe('gateway stdout')
  })
})
