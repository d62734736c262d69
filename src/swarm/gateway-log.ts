import type Docker from 'dockerode'

import {Demuxer, LineSplitter} from '../docker/demux.js'
import {splitTimestamp, timeKey, type LogLine} from '../docker/gateway-log.js'
import {serviceName} from './names.js'

/**
 * A swarm service's log through the manager's Engine API (`docker service logs`): the lines of every
 * task of the service, wherever it runs, each with the engine's time stamp. On a swarm the gateway's
 * NGINX logs to stdout (access, JSON) and stderr (errors) as on one host, so `top` follows the gateway
 * service's log the way it follows the gateway container's there.
 */

/** What the service-log readers ask of the manager. */
export type ServiceLogDocker = Pick<Docker, 'getService'>

export interface ServiceLogOptions {
  follow: boolean
  /** Lines from the end of each task's log; all of them when absent. */
  tail?: number
  /** Whole seconds since the epoch: only lines at or after it. */
  since?: number
}

/** The engine's answer when the service does not exist (the stack has no gateway, or is gone). */
export function isMissingService(error: unknown): boolean {
  return (error as {statusCode?: number}).statusCode === 404
}

/**
 * Every line of `<namespace>_<service>`'s log, demultiplexed (stdout and stderr), oldest first within
 * a task. Without follow the engine answers with the whole body; with follow the stream stays open
 * for new lines until the signal aborts or the engine ends it.
 */
export async function* serviceLines(
  docker: ServiceLogDocker,
  namespace: string,
  service: string,
  options: ServiceLogOptions,
  signal?: AbortSignal,
): AsyncGenerator<LogLine> {
  const answer = (await docker.getService(serviceName(namespace, service)).logs({
    stdout: true,
    stderr: true,
    timestamps: true,
    details: false,
    follow: options.follow,
    ...(options.tail === undefined ? {} : {tail: options.tail}),
    ...(options.since === undefined ? {} : {since: options.since}),
  } as Docker.ContainerLogsOptions)) as unknown as (NodeJS.ReadableStream & {destroy?: () => void}) | Buffer | string
  const demuxer = new Demuxer()
  const splitter = new LineSplitter()
  function* parse(chunk: Buffer): Generator<LogLine> {
    for (const frame of demuxer.push(chunk)) {
      for (const {stream, line} of splitter.push(frame)) yield {stream, ...splitTimestamp(line)}
    }
  }

  function* flush(): Generator<LogLine> {
    for (const {stream, line} of splitter.flush()) yield {stream, ...splitTimestamp(line)}
  }

  if (typeof answer === 'string' || Buffer.isBuffer(answer)) {
    yield* parse(Buffer.isBuffer(answer) ? answer : Buffer.from(answer))
    yield* flush()
    return
  }

  // Ends a follow that is waiting for the next line (Ctrl-C, top quitting).
  const stop = () => answer.destroy?.()
  if (signal?.aborted) stop()
  signal?.addEventListener('abort', stop, {once: true})
  try {
    for await (const chunk of answer as AsyncIterable<Buffer | string>)
      yield* parse(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))
    yield* flush()
  } catch (error) {
    if (!signal?.aborted) throw error
  } finally {
    signal?.removeEventListener('abort', stop)
    // A consumer that stops early closes the connection.
    stop()
  }
}

/**
 * The newest `tail` lines of each of the service's tasks, in time order: a service that replaced its
 * task (an update, a restart) has the old task's lines and the new one's, which the engine may send
 * task by task. Sorting is stable, so lines of one time stamp keep their order.
 */
export async function readServiceLines(
  docker: ServiceLogDocker,
  namespace: string,
  service: string,
  tail: number,
): Promise<LogLine[]> {
  const keyed: Array<{key: string; line: LogLine}> = []
  for await (const line of serviceLines(docker, namespace, service, {follow: false, tail}))
    keyed.push({key: timeKey(line.time), line})
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  return keyed.map((entry) => entry.line)
}
