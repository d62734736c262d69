import {existsSync} from 'node:fs'
import {join, resolve} from 'node:path'

import {UsageError} from '../errors.js'

import type {Manifest} from '../manifest/schema.js'
import {buildStackSpec, secretFile, type StackSpec} from '../manifest/stack.js'
import {composeObject} from '../render/compose.js'
import {connectEngine, type Engine} from './engine.js'
import {decideBuild} from './images.js'
import {
  desiredContainers,
  desiredNetworks,
  LABELS,
  planContainers,
  readProjectEnv,
  resolveEnvironment,
  runId,
  type ContainerAction,
  type ProjectContext,
} from './spec.js'

/** What `up` would do, found by reading the project and the engine only (`up --dry-run`). */
export interface UpPlan {
  project: string
  dryRun: true
  images: Array<{service: string; image: string; action: 'use' | 'build' | 'pull'; why: string}>
  networks: Array<{name: string; action: 'create' | 'keep'}>
  containers: Array<{name: string; service: string; action: ContainerAction}>
  /** Containers with the project's label that the manifest no longer describes. */
  remove: string[]
  /** True when up would build, pull, create, start, recreate or remove something. */
  changes: boolean
}

/**
 * Compose secrets (each Django service's SECRET_KEY) are files of the project: Compose refuses to
 * start without them, and so does `up` (and its dry run), before the engine is touched.
 */
export function requireSecretFiles(root: string, stack: StackSpec): void {
  for (const secret of new Set(stack.services.flatMap((spec) => spec.secrets))) {
    if (!existsSync(join(root, secretFile(secret))))
      throw new UsageError(`${secretFile(secret)} is missing: the container that reads it cannot start`, {
        hint: '`create-gateway render` writes it again from .env (the key is kept).',
      })
  }
}

/**
 * The image ID a container would get from an image that does not exist yet (built or pulled by the
 * real `up`): it matches no running container, so each replica of that service is planned as
 * recreated, which is what the new image causes.
 */
const NEW_IMAGE = 'sha256:(new image)'

/**
 * Plan `up` as it would run now: which images it would build or pull, which networks it would create,
 * and for every container whether it is created, recreated (configuration or image changed), started,
 * kept or removed. The same decisions as `up` (the context hash for builds, Compose's config hash and
 * image label for containers); nothing is built, pulled, created or removed.
 */
export async function planUp(
  dir: string,
  manifest: Manifest,
  options: {engine?: Engine; env?: NodeJS.ProcessEnv} = {},
): Promise<UpPlan> {
  const root = resolve(dir)
  const env = options.env ?? process.env
  const stack = buildStackSpec(manifest)
  const dotenv = await readProjectEnv(root)
  const environment = Object.fromEntries(
    stack.services.map((spec) => [spec.service, resolveEnvironment(spec, dotenv, env)]),
  )
  requireSecretFiles(root, stack)
  const engine = options.engine ?? (await connectEngine())

  const images: UpPlan['images'] = []
  const imageIds: Record<string, string> = {}
  for (const spec of stack.services) {
    if (spec.build) {
      const decision = await decideBuild(engine, {
        service: spec.service,
        context: resolve(root, spec.build.context),
        dockerfile: spec.build.dockerfile,
        tag: spec.image,
        labels: {[LABELS.project]: stack.project, [LABELS.service]: spec.service},
      })
      images.push({
        service: spec.service,
        image: spec.image,
        action: decision.build ? 'build' : 'use',
        why: decision.build ? decision.reason : decision.note,
      })
      imageIds[spec.service] = decision.build ? NEW_IMAGE : decision.id
    } else {
      const local = await engine.image(spec.image)
      images.push({
        service: spec.service,
        image: spec.image,
        action: local ? 'use' : 'pull',
        why: local ? 'on this machine' : 'not on this machine',
      })
      imageIds[spec.service] = local?.id ?? NEW_IMAGE
    }
  }

  const context: ProjectContext = {
    project: stack.project,
    dir: root,
    network: stack.network,
    imageIds,
    environment,
    runId: runId(env),
    compose: composeObject(manifest),
    variables: {...dotenv, ...env},
  }
  const networks: UpPlan['networks'] = []
  for (const network of desiredNetworks(context, stack))
    networks.push({name: network.name, action: (await engine.network(network.name)) ? 'keep' : 'create'})

  const existing = await engine.containers({[LABELS.project]: stack.project})
  const plan = planContainers(desiredContainers(stack, context), existing)
  const containers = plan.containers.map((item) => ({
    name: item.desired.name,
    service: item.desired.service,
    action: item.action,
  }))
  const remove = plan.remove.map((container) => container.name)
  const changes =
    images.some((image) => image.action !== 'use') ||
    networks.some((network) => network.action === 'create') ||
    containers.some((container) => container.action !== 'keep') ||
    remove.length > 0
  return {project: stack.project, dryRun: true, images, networks, containers, remove, changes}
}
