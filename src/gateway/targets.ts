import {UsageError} from '../errors.js'
import {djangoServices} from '../manifest/model.js'
import {MAX_REPLICAS, type Manifest} from '../manifest/schema.js'

/** `web=3` -> {web: 3}; one entry per service, in the order given. */
export type ScaleTargets = Record<string, number>

/**
 * Parse `SERVICE=COUNT ...` against the manifest, all of it before anything is touched: every problem
 * is reported at once, and any problem means exit 2 with nothing changed.
 */
export function parseScaleTargets(args: string[], manifest: Manifest): ScaleTargets {
  const django = djangoServices(manifest).map((service) => service.name)
  const problems: string[] = []
  const targets: ScaleTargets = {}
  if (args.length === 0) problems.push(`nothing to scale: give SERVICE=COUNT, such as ${django[0] ?? 'web'}=3`)
  for (const arg of args) {
    const equals = arg.indexOf('=')
    if (equals === -1) {
      problems.push(`"${arg}": expected SERVICE=COUNT, such as ${django.includes(arg) ? arg : (django[0] ?? 'web')}=3`)
      continue
    }

    const name = arg.slice(0, equals)
    const count = arg.slice(equals + 1)
    // Own properties only: `constructor=3` must not find Object's constructor.
    const service = Object.hasOwn(manifest.services, name) ? manifest.services[name] : undefined
    if (name === '') {
      problems.push(`"${arg}": the service name is missing before "="`)
    } else if (!service) {
      problems.push(`"${arg}": gateway.yaml has no service "${name}" (services you can scale: ${django.join(', ')})`)
    } else if (service.kind !== 'django') {
      problems.push(`"${arg}": ${name} is an external service (${service.url}); it has no replicas here to scale`)
    } else if (Object.hasOwn(targets, name)) {
      problems.push(`"${arg}": ${name} is given more than once`)
    }

    let replicas: number | undefined
    if (!/^\d+$/.test(count)) {
      problems.push(`"${arg}": the count must be a whole number from 1 to ${MAX_REPLICAS}, not "${count}"`)
    } else {
      replicas = Number(count)
      if (replicas < 1)
        problems.push(`"${arg}": the count must be at least 1 (\`create-gateway down\` stops the whole stack)`)
      else if (replicas > MAX_REPLICAS)
        problems.push(`"${arg}": at most ${MAX_REPLICAS} replicas per service on one machine`)
    }

    if (service?.kind === 'django' && !Object.hasOwn(targets, name) && replicas !== undefined) targets[name] = replicas
  }

  if (problems.length > 0) {
    throw new UsageError(
      problems.length === 1
        ? problems[0]!
        : `${problems.length} problems with the arguments:\n  ${problems.join('\n  ')}`,
      {
        hint: 'Nothing was changed. Usage: create-gateway scale SERVICE=COUNT [SERVICE=COUNT ...]',
      },
    )
  }

  return targets
}

/** {web: 3} -> `web=3`, as the user wrote it. */
export function describeTargets(targets: ScaleTargets): string {
  return Object.entries(targets)
    .map(([service, count]) => `${service}=${count}`)
    .join(' ')
}
