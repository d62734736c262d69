import {createServer} from 'node:net'

import {OperationError} from '../errors.js'
import type {Manifest} from '../manifest/schema.js'
import type {StackServiceSpec, StackSpec} from '../manifest/stack.js'
import {engineFailure, engineMessage, type ContainerState, type Engine} from './engine.js'

/** The ports `up` publishes: taken ones fail before anything is built, with the gateway.yaml field. */

function portField(manifest: Manifest, host: number): string {
  if (manifest.metrics?.enabled && host === manifest.metrics.port) return 'metrics.port'
  return host === manifest.ports.https ? 'ports.https' : 'ports.http'
}

function portInUse(manifest: Manifest, bind: string, port: number, cause?: unknown): OperationError {
  const field = portField(manifest, port)
  return new OperationError(
    `Port ${bind}:${port} (${field} in gateway.yaml) is already in use by another program or container`,
    {
      hint: `Stop what listens there (\`ss -ltnp 'sport = :${port}'\` shows it), or choose another ${field} in gateway.yaml and run \`create-gateway render\`, then \`create-gateway up\`.`,
      cause,
    },
  )
}

/** Is something already listening there? Only meaningful when the engine runs on this machine. */
async function portTaken(bind: string, port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const server = createServer()
    server.once('error', (error: NodeJS.ErrnoException) => resolvePromise(error.code === 'EADDRINUSE'))
    server.listen({host: bind, port, exclusive: true}, () => server.close(() => resolvePromise(false)))
  })
}

/**
 * Fail before building anything when a published port is taken by someone else. Ports that one
 * of the project's own containers publishes are skipped: `up` replaces or keeps that container.
 */
export async function checkPorts(
  manifest: Manifest,
  stack: StackSpec,
  existing: ContainerState[],
  engine: Engine,
): Promise<void> {
  if (!engine.endpoint.startsWith('unix://')) return
  const ours = new Set(
    existing.flatMap((container) => container.ports.map((port) => port.replace(/->.*$/, '').replace(/^.*:/, ''))),
  )
  for (const spec of stack.services) {
    for (const port of spec.ports) {
      if (!ours.has(String(port.host)) && (await portTaken(port.bind, port.host)))
        throw portInUse(manifest, port.bind, port.host)
    }
  }
}

export function startError(manifest: Manifest, spec: StackServiceSpec, name: string, error: unknown): Error {
  const message = engineMessage(error)
  if (/address already in use|port is already allocated/i.test(message)) {
    const port = spec.ports.find((candidate) => new RegExp(`:${candidate.host}\\b`).test(message)) ?? spec.ports[0]
    if (port) return portInUse(manifest, port.bind, port.host, error)
  }

  return engineFailure(`Starting ${name}`, error)
}
