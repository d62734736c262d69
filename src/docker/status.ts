import type {Manifest} from '../manifest/schema.js'
import {buildStackSpec} from '../manifest/stack.js'
import {isNotOneOff, replicaNumber} from './containers.js'
import {connectEngine, type StackOptions} from './engine.js'
import {LABELS} from './spec.js'

export interface StatusRow {
  service: string
  name: string
  number: number
  /** created | running | restarting | exited | ... */
  state: string
  /** healthy | starting | unhealthy | none */
  health: string
  ports: string[]
  image: string
  /** Whether the gateway's upstream lists this replica (filled in by the scale feature). */
  inUpstream?: boolean
}

/** One row per long-running container of the project, in start order then replica number. */
export async function stackStatus(manifest: Manifest, options: StackOptions = {}): Promise<StatusRow[]> {
  const stack = buildStackSpec(manifest)
  const engine = options.engine ?? (await connectEngine())
  // One-off containers (certbot runs, `docker compose run`) are left out, as `docker compose ps` does.
  const containers = (await engine.containers({[LABELS.project]: stack.project})).filter(isNotOneOff)
  const order = stack.services.map((spec) => spec.service)
  const rank = (service: string) => (order.includes(service) ? order.indexOf(service) : order.length)
  return containers
    .map((container) => ({
      service: container.labels[LABELS.service] ?? '?',
      name: container.name,
      number: replicaNumber(container),
      state: container.status,
      health: container.health ?? 'none',
      ports: container.ports,
      image: container.image,
    }))
    .sort((a, b) => rank(a.service) - rank(b.service) || a.service.localeCompare(b.service) || a.number - b.number)
}
