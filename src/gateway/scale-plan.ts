import {isNotOneOff, replicaNumber} from '../docker/containers.js'
import {connectEngine, type ContainerState, type Engine} from '../docker/engine.js'
import {LABELS} from '../docker/spec.js'
import {projectReplicaName} from '../manifest/model.js'
import type {Manifest} from '../manifest/schema.js'
import {buildStackSpec, type StackServiceSpec} from '../manifest/stack.js'
import type {ScaleTargets} from './targets.js'

export interface ServicePlan {
  spec: StackServiceSpec
  target: number
  existing: ContainerState[]
  keep: ContainerState[]
  /** Numbers to create; a stopped container with the number is replaced. */
  create: number[]
  replace: ContainerState[]
  leave: ContainerState[]
}

/** What to do with one service's replicas: keep 1..N that run, create the missing numbers, let the rest go. */
export function planService(
  spec: StackServiceSpec,
  target: number,
  containers: ContainerState[],
  project: string,
): ServicePlan {
  const existing = containers
    .filter((container) => container.labels[LABELS.service] === spec.service)
    .sort((a, b) => replicaNumber(a) - replicaNumber(b))
  const keep: ContainerState[] = []
  const replace: ContainerState[] = []
  const leave: ContainerState[] = []
  const create: number[] = []
  for (let number = 1; number <= target; number++) {
    const candidates = existing.filter((container) => replicaNumber(container) === number)
    // Two containers with one number (ours and one Compose v1 made): keep the running one with our name.
    const name = projectReplicaName(project, spec.service, number)
    const chosen = candidates
      .filter((container) => container.running)
      .sort((a, b) => Number(b.name === name) - Number(a.name === name))[0]
    if (chosen) keep.push(chosen)
    else create.push(number)
    for (const other of candidates) {
      if (other === chosen) continue
      if (other.running) leave.push(other)
      else replace.push(other)
    }
  }

  for (const container of existing)
    if (replicaNumber(container) > target || replicaNumber(container) < 1) leave.push(container)
  return {spec, target, existing, keep, create, replace, leave}
}

export interface PlannedScale {
  project: string
  dryRun: true
  services: Array<{service: string; from: number; to: number; start: string[]; remove: string[]}>
}

/** What `scale --dry-run` reports: the replicas a scale would start and remove, from the running stack. */
export async function planScale(
  manifest: Manifest,
  targets: ScaleTargets,
  options: {engine?: Engine} = {},
): Promise<PlannedScale> {
  const stack = buildStackSpec(manifest)
  const engine = options.engine ?? (await connectEngine())
  const containers = (await engine.containers({[LABELS.project]: stack.project})).filter(isNotOneOff)
  const services = stack.services
    .filter((spec) => Object.hasOwn(targets, spec.service))
    .map((spec) => {
      const plan = planService(spec, targets[spec.service]!, containers, stack.project)
      return {
        service: spec.service,
        from: plan.existing.filter((container) => container.running).length,
        to: plan.target,
        start: plan.create.map((number) => projectReplicaName(stack.project, spec.service, number)),
        remove: [...plan.leave, ...plan.replace].map((container) => container.name),
      }
    })
  return {project: stack.project, dryRun: true, services}
}

export function describePlannedScale(plan: PlannedScale): string {
  const lines = [`Dry run: nothing started, stopped or reloaded in ${plan.project}.`]
  for (const service of plan.services) {
    const changes = [
      ...(service.start.length > 0 ? [`would start ${service.start.join(', ')}`] : []),
      ...(service.remove.length > 0 ? [`would remove ${service.remove.join(', ')}`] : []),
    ]
    lines.push(
      `  ${service.service}: ${service.from} -> ${service.to}${changes.length > 0 ? `; ${changes.join('; ')}` : ' (no change)'}`,
    )
  }

  return lines.join('\n')
}
