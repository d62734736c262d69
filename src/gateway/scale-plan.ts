import {connectEngine, type Engine} from '../docker/engine.js'
import {LABELS} from '../docker/spec.js'
import type {Manifest} from '../manifest/schema.js'
import {buildStackSpec} from '../manifest/stack.js'
import {planService} from './scale.js'
import type {ScaleTargets} from './targets.js'

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
  const containers = (await engine.containers({[LABELS.project]: stack.project})).filter(
    (container) => container.labels[LABELS.oneoff] !== 'True',
  )
  const services = stack.services
    .filter((spec) => Object.hasOwn(targets, spec.service))
    .map((spec) => {
      const plan = planService(spec, targets[spec.service]!, containers, stack.project)
      return {
        service: spec.service,
        from: plan.existing.filter((container) => container.running).length,
        to: plan.target,
        start: plan.create.map((number) => `${stack.project}-${spec.service}-${number}`),
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
