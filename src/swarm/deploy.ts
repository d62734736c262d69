import type {Progress} from '../util/progress.js'
import {readFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import type Docker from 'dockerode'

import {engineMessage} from '../docker/engine.js'
import {readProjectEnv, resolveEnvironment} from '../docker/spec.js'
import {OperationError} from '../errors.js'
import type {Manifest} from '../manifest/schema.js'
import {buildStackSpec, secretFile, type StackSpec} from '../manifest/stack.js'
import {connectSwarm} from './connect.js'
import {waitConverged, type ServiceProgress} from './converge.js'
import {removeStack} from './down.js'
import {gatewayFiles} from './gateway-files.js'
import {buildAndPush, checkRegistry, parseRegistry} from './images.js'
import {ensureObjects, removeObjects, stackNetworks, stackObjects, stackServices, type StackObject} from './objects.js'
import {
  buildSwarmPlan,
  checkSwarmStack,
  gatewayConstraint,
  gatewayPublishNote,
  withObjectIds,
  type SwarmPlan,
} from './spec.js'

/**
 * `create-gateway deploy`: the project as one Swarm stack on the manager at --host / DOCKER_HOST.
 * Creates or updates; waits (bounded) until every service runs its replicas healthy; a first deploy
 * that fails is removed entirely, a failed update is rolled back by Swarm (update_config) and the
 * configs and secrets this run made are removed again.
 */

export const DEFAULT_DEPLOY_TIMEOUT_MS = 300_000

export interface DeployOptions {
  host?: string
  registry?: string
  timeoutMs?: number
  onProgress?: Progress
  signal?: AbortSignal
}

export interface DeployResult {
  namespace: string
  endpoint: string
  /** True when the stack did not exist before this run. */
  created: boolean
  images: Record<string, string>
  services: ServiceProgress[]
  /** Configs and secrets of earlier deploys that nothing uses any more, removed. */
  removedObjects: string[]
}

/** Create the stack's overlay networks that do not exist yet; returns the names of those created. */
async function ensureNetworks(docker: Docker, plan: SwarmPlan): Promise<string[]> {
  const existing = new Set((await stackNetworks(docker, plan.namespace)).map((network) => network.name))
  const created: string[] = []
  for (const network of plan.networks) {
    if (existing.has(network.name)) continue
    await docker.createNetwork({
      Name: network.name,
      Driver: 'overlay',
      Attachable: true,
      Internal: network.internal,
      Labels: network.labels,
      CheckDuplicate: true,
    })
    created.push(network.name)
  }

  return created
}

async function applyServices(docker: Docker, plan: SwarmPlan, ids: ReadonlyMap<string, string>): Promise<void> {
  const existing = new Map(
    (await stackServices(docker, plan.namespace)).map((service) => [service.Spec?.Name, service]),
  )
  for (const service of plan.services) {
    const spec = withObjectIds(service.spec, ids)
    const current = existing.get(service.name)
    try {
      if (current?.ID) {
        await docker.getService(current.ID).update({_query: {version: current.Version?.Index}, _body: spec})
      } else {
        await docker.createService(spec)
      }
    } catch (error) {
      throw new OperationError(
        `${current ? 'Updating' : 'Creating'} service ${service.name}: ${engineMessage(error)}`,
        {
          cause: error,
        },
      )
    }
  }
}

/** The project files of the services' Compose secrets (secrets/web-secret-key), read before anything is made. */
async function serviceSecrets(dir: string, stack: StackSpec): Promise<Record<string, Buffer>> {
  const secrets: Record<string, Buffer> = {}
  for (const key of new Set(stack.services.flatMap((spec) => spec.secrets))) {
    const path = join(resolve(dir), secretFile(key))
    try {
      secrets[key] = await readFile(path)
    } catch (error) {
      throw new OperationError(`Cannot read ${secretFile(key)} in the project: ${engineMessage(error)}`, {
        cause: error,
        hint: '`create-gateway render` writes the secret files a project is missing.',
      })
    }
  }

  return secrets
}

export async function deployStack(dir: string, manifest: Manifest, options: DeployOptions = {}): Promise<DeployResult> {
  const say = options.onProgress ?? (() => {})
  const registry = parseRegistry(options.registry)
  const stack = buildStackSpec(manifest)
  checkSwarmStack(stack)
  const publishNote = gatewayPublishNote(stack.services.find((spec) => spec.role === 'gateway')!)
  if (publishNote) say(publishNote)
  const connection = await connectSwarm(options.host)
  const {docker} = connection
  await checkRegistry(registry)

  const dotenv = await readProjectEnv(dir)
  const environment = Object.fromEntries(
    stack.services
      .filter((spec) => spec.role === 'django')
      .map((spec) => [spec.service, resolveEnvironment(spec, dotenv)]),
  )
  const gateway = stack.services.find((spec) => spec.role === 'gateway')!
  const files = await gatewayFiles(dir, manifest, gateway.mounts)
  const nodes = await docker.listNodes()
  const constraint = gatewayConstraint(nodes.map((node) => (node.Spec?.Labels ?? {}) as Record<string, string>))

  say(`building images on ${connection.endpoint} and pushing them to ${registry}`)
  const images = await buildAndPush(connection, dir, stack, registry, say)
  const plan = buildSwarmPlan({
    stack,
    images,
    environment,
    secrets: await serviceSecrets(dir, stack),
    gatewayFiles: files,
    gatewayConstraint: constraint,
  })

  const created = (await stackServices(docker, plan.namespace)).length === 0
  let made: StackObject[] = []
  try {
    const networks = await ensureNetworks(docker, plan)
    if (networks.length > 0) say(`overlay network(s) ${networks.join(', ')} created`)
    const objects = await ensureObjects(docker, plan.namespace, plan.objects)
    made = objects.created
    say(`${plan.objects.length} configs and secrets (${made.length} new)`)
    await applyServices(docker, plan, objects.ids)
    say(
      `${created ? 'created' : 'updated'} ${plan.services.map((service) => service.name).join(', ')}; waiting for them to converge`,
    )
    const services = await waitConverged(docker, plan.services, {
      timeoutMs: options.timeoutMs ?? DEFAULT_DEPLOY_TIMEOUT_MS,
      onProgress: say,
      ...(options.signal ? {signal: options.signal} : {}),
    })
    const wanted = new Set(plan.objects.map((object) => object.name))
    const stale = (await stackObjects(docker, plan.namespace)).filter((object) => !wanted.has(object.name))
    await removeObjects(docker, stale)
    return {
      namespace: plan.namespace,
      endpoint: connection.endpoint,
      created,
      images,
      services,
      removedObjects: stale.map((object) => object.name),
    }
  } catch (error) {
    if (created) {
      say(`deploy failed: removing stack ${plan.namespace} (${engineMessage(error)})`)
      await removeStack(docker, plan.namespace, {onProgress: say})
    } else {
      say(`update failed: Swarm rolls the services back; removing the ${made.length} configs and secrets this run made`)
      await removeObjects(docker, made)
    }

    throw error
  }
}
