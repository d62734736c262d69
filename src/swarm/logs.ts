import type Docker from 'dockerode'

import {Demuxer, LineSplitter} from '../docker/demux.js'
import type {Manifest} from '../manifest/schema.js'
import {djangoServices} from '../manifest/model.js'
import {UsageError} from '../errors.js'
import {serviceName} from './names.js'

/** `logs` on a swarm: each service's log through the manager (`docker service logs`), prefixed by service. */

export interface SwarmLogsOptions {
  service?: string
  follow?: boolean
  tail?: number
  write: (line: string) => void
}

export async function showSwarmLogs(docker: Docker, manifest: Manifest, options: SwarmLogsOptions): Promise<number> {
  const known = [...djangoServices(manifest).map((service) => service.name), 'gateway']
  if (options.service && !known.includes(options.service))
    throw new UsageError(`No service ${options.service} in the stack: one of ${known.join(', ')}`)
  const services = options.service ? [options.service] : known
  let lines = 0
  await Promise.all(
    services.map(async (service) => {
      const stream = (await docker.getService(serviceName(manifest.name, service)).logs({
        stdout: true,
        stderr: true,
        follow: options.follow ?? false,
        ...(options.tail === undefined ? {} : {tail: options.tail}),
        details: false,
      })) as unknown as NodeJS.ReadableStream | Buffer
      const demuxer = new Demuxer()
      const splitter = new LineSplitter()
      const emit = (entries: Array<{line: string}>) => {
        for (const entry of entries) {
          lines++
          options.write(`${service} | ${entry.line}`)
        }
      }

      if (Buffer.isBuffer(stream)) {
        for (const frame of demuxer.push(stream)) emit(splitter.push(frame))
        emit(splitter.flush())
        return
      }

      await new Promise<void>((done, fail) => {
        stream.on('data', (chunk: Buffer) => {
          for (const frame of demuxer.push(chunk)) emit(splitter.push(frame))
        })
        stream.on('end', () => {
          emit(splitter.flush())
          done()
        })
        stream.on('error', fail)
      })
    }),
  )
  return lines
}
