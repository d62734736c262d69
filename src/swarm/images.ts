import type {Progress} from '../util/progress.js'
import {readFile} from 'node:fs/promises'
import {request} from 'node:http'
import {join, resolve} from 'node:path'

import type Docker from 'dockerode'

import {OperationError, UsageError} from '../errors.js'
import {baseImages, buildImage, contextHash} from '../docker/images.js'
import {engineMessage} from '../docker/engine.js'
import type {StackSpec} from '../manifest/stack.js'
import type {SwarmConnection} from './connect.js'
import {imageReference} from './names.js'

/**
 * Service images for a swarm: built on the manager's engine (its base images are there), tagged
 * `REGISTRY/<project>/<service>:<content-id12>` and pushed, so every node pulls the same reference.
 */

const REGISTRY_TIMEOUT_MS = 5000

export function parseRegistry(registry: string | undefined): string {
  if (!registry)
    throw new UsageError('No registry: pass --registry HOST:PORT (or set REGISTRY), one every node can pull from.')
  const value = registry.replace(/^https?:\/\//, '').replace(/\/+$/, '')
  if (!/^[a-zA-Z0-9.-]+(:\d{1,5})?$/.test(value))
    throw new UsageError(`--registry ${registry}: expected HOST:PORT, e.g. 127.0.0.1:5000`)
  return value
}

/** One GET of /v2/ (any HTTP answer means a registry is there), bounded. */
export async function checkRegistry(registry: string): Promise<void> {
  const [host, port] = registry.split(':')
  const problem = await new Promise<string | undefined>((done) => {
    const req = request(
      {host, port: Number(port ?? 80), path: '/v2/', timeout: REGISTRY_TIMEOUT_MS, agent: false},
      (res) => {
        res.resume()
        done(undefined)
      },
    )
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REGISTRY_TIMEOUT_MS} ms`)))
    req.on('error', (error) => done(error.message))
    req.end()
  })
  if (problem)
    throw new OperationError(`Cannot reach the registry at ${registry}: ${problem}.`, {
      hint: 'Start it, or pass --registry HOST:PORT of one that every node can pull from.',
    })
}

async function pushImage(docker: Docker, ref: string): Promise<void> {
  // The engine requires an X-Registry-Auth header even for a registry without authentication.
  const stream = await docker.getImage(ref).push({authconfig: {}})
  await new Promise<void>((done, fail) => {
    docker.modem.followProgress(stream, (error: Error | null, events: Array<{error?: string}>) => {
      const failed = events?.find((event) => event.error)
      if (error) fail(error)
      else if (failed) fail(new Error(failed.error))
      else done()
    })
  })
}

/** Build (unless the manager already has it) and push each Django service's image; service -> reference. */
export async function buildAndPush(
  connection: SwarmConnection,
  dir: string,
  stack: StackSpec,
  registry: string,
  onProgress: Progress,
): Promise<Record<string, string>> {
  const images: Record<string, string> = {}
  for (const service of stack.services) {
    if (!service.build) continue
    const context = resolve(dir, service.build.context)
    const dockerfile = await readFile(join(context, service.build.dockerfile), 'utf8')
    const baseIds: Record<string, string> = {}
    for (const base of baseImages(dockerfile)) baseIds[base] = (await connection.engine.image(base))?.id ?? 'missing'
    const hash = await contextHash(context, service.build.dockerfile, baseIds)
    const ref = imageReference(registry, stack.project, service.service, hash)
    await buildImage(connection.engine, {
      service: service.service,
      context,
      dockerfile: service.build.dockerfile,
      tag: ref,
      labels: {'dev.create-gateway.project': stack.project},
      onProgress,
    })
    onProgress(`${service.service}: pushing ${ref}`)
    try {
      await pushImage(connection.docker, ref)
    } catch (error) {
      throw new OperationError(`Pushing ${ref} from ${connection.endpoint}: ${engineMessage(error)}`, {
        hint: `The manager's engine pushes: ${registry} must be reachable from it.`,
        cause: error,
      })
    }

    images[service.service] = ref
  }

  return images
}
