import type {Manifest} from '../manifest/schema.js'
import type {StackServiceSpec, StackSpec} from '../manifest/stack.js'
import type {Clock} from '../util/retry.js'
import type {ContainerState, Engine} from './engine.js'
import {
  desiredContainer,
  LABELS,
  type ContainerAction,
  type ContainerPlan,
  type DesiredContainer,
  type PlannedContainer,
  type ProjectContext,
} from './spec.js'
import type {Progress} from '../util/progress.js'

/**
 * What `up` hands to a rolling update (the gateway layer's, behind a running gateway): which Django
 * replicas to keep, replace, create and retire, and the rows it reports back.
 */

/** One Django service's replica changes behind a running gateway, handed to a rolling update. */
export interface ReplicaChanges {
  spec: StackServiceSpec
  /** Running replicas that stay as they are. */
  keep: ContainerState[]
  /** Running replicas whose configuration or image changed, in number order: replaced one at a time. */
  replace: Array<{existing: ContainerState; desired: DesiredContainer}>
  /** Replica numbers the manifest adds. */
  create: DesiredContainer[]
  /** Running replicas beyond the manifest's count. */
  retire: ContainerState[]
  /** This service's container for any number, e.g. the extra replica that serves while one is replaced. */
  desiredFor: (number: number) => DesiredContainer
}

export interface RolloutRequest {
  engine: Engine
  dir: string
  manifest: Manifest
  gateway: ContainerState
  services: ReplicaChanges[]
  /** How long each new replica may take to become healthy. */
  timeoutMs: number
  clock: Clock
  signal?: AbortSignal
  onProgress: Progress
}

/** Returns what it did, in `up`'s report rows. */
export type Rollout = (request: RolloutRequest) => Promise<UpContainer[]>

export interface UpContainer {
  service: string
  name: string
  number: number
  action: ContainerAction | 'remove'
  id?: string
}

/**
 * The Django services whose replicas a rolling update changes: the gateway runs and stays, the
 * service already has running replicas, and every change to it is one a rolling update can make
 * (a stopped or foreign-named replica goes the plain way, with the rest of its service).
 */
export function rollingChanges(stack: StackSpec, plan: ContainerPlan, context: ProjectContext): ReplicaChanges[] {
  const gateway = plan.containers.find((item) => item.desired.role === 'gateway')
  if (gateway?.action !== 'keep') return []
  const changes: ReplicaChanges[] = []
  for (const spec of stack.services.filter((candidate) => candidate.role === 'django')) {
    const items = plan.containers.filter((item) => item.desired.service === spec.service)
    const extra = plan.remove.filter((container) => container.labels[LABELS.service] === spec.service)
    const rollable = (item: PlannedContainer) =>
      item.action === 'keep' ||
      item.action === 'create' ||
      (item.action === 'recreate' && item.existing!.running && item.existing!.name === item.desired.name)
    if (!items.every(rollable) || !extra.every((container) => container.running)) continue
    const change: ReplicaChanges = {
      spec,
      keep: items.filter((item) => item.action === 'keep').map((item) => item.existing!),
      replace: items
        .filter((item) => item.action === 'recreate')
        .map((item) => ({existing: item.existing!, desired: item.desired})),
      create: items.filter((item) => item.action === 'create').map((item) => item.desired),
      retire: extra,
      desiredFor: (number) => desiredContainer(spec, number, context),
    }
    const serving = change.keep.length + change.replace.length
    if (serving > 0 && change.replace.length + change.create.length + change.retire.length > 0) changes.push(change)
  }

  return changes
}
