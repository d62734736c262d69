import type {DownResult} from './down.js'
import type {StatusRow} from './status.js'
import type {UpResult} from './up.js'
import type {UpPlan} from './up-plan.js'
import {formatTable} from '../util/table.js'

/** What `up`, `down` and `status` print; `--json` prints the same results as data. */

export function describeUp(result: UpResult): string {
  const seconds = (result.durationMs / 1000).toFixed(1)
  const lines: string[] = []
  if (result.changed) {
    const counts = new Map<string, number>()
    for (const container of result.containers) counts.set(container.action, (counts.get(container.action) ?? 0) + 1)
    const built = result.images.filter((image) => image.built).length
    const parts = [
      ...(built > 0 ? [`${built} image(s) built`] : []),
      ...['create', 'recreate', 'start', 'remove', 'keep'].flatMap((action) => {
        const count = counts.get(action)
        return count
          ? [
              `${count} ${{create: 'created', recreate: 'recreated', start: 'started', remove: 'removed', keep: 'unchanged'}[action]}`,
            ]
          : []
      }),
    ]
    lines.push(`${result.project} is up (${seconds} s): ${parts.join(', ')}.`)
    if (result.rolled.length > 0)
      lines.push(
        `Rolling update of ${result.rolled.join(', ')}: one replica at a time behind the running gateway, which kept serving.`,
      )
  } else {
    lines.push(`${result.project} is up to date: nothing changed (${seconds} s).`)
  }

  lines.push('', 'Gateway:', ...result.urls.map((url) => `  ${url}`), '', 'Try it:', `  ${result.curl}`)
  return lines.join('\n')
}

export function describeDown(result: DownResult): string {
  if (result.containers.length === 0 && result.networks.length === 0 && result.volumes.length === 0) {
    return `${result.project}: nothing to remove (no containers or networks with its label).`
  }

  const parts = [`${result.containers.length} container(s)`, `${result.networks.length} network(s)`]
  if (result.volumes.length > 0) parts.push(`${result.volumes.length} volume(s)`)
  if (result.dryRun)
    return [
      `Dry run: down would remove ${parts.join(', ')} of ${result.project}:`,
      ...[...result.containers, ...result.networks, ...result.volumes].map((name) => `  ${name}`),
    ].join('\n')
  return `${result.project} is down: removed ${parts.join(', ')}. The project's files are unchanged.`
}

const CONTAINER_VERBS: Record<UpPlan['containers'][number]['action'], string> = {
  create: 'create',
  recreate: 'recreate (configuration or image changed)',
  start: 'start (stopped)',
  keep: 'keep (up to date)',
}

/** `up --dry-run`: one line per image, network and container, each with what up would do to it. */
export function describeUpPlan(plan: UpPlan): string {
  if (!plan.changes)
    return `Dry run: ${plan.project} is up to date: up would build, create or remove nothing (${plan.containers.length} container(s) kept).`
  const images = plan.images.map((image) =>
    image.action === 'use'
      ? `  use image ${image.image} (${image.service}): ${image.why}`
      : `  ${image.action} image ${image.image} (${image.service}): ${image.why}`,
  )
  const networks = plan.networks
    .filter((network) => network.action === 'create')
    .map((network) => `  create network ${network.name}`)
  const containers = plan.containers.map((container) => `  ${CONTAINER_VERBS[container.action]}: ${container.name}`)
  const remove = plan.remove.map((name) => `  remove (not in gateway.yaml): ${name}`)
  return [`Dry run: up would change ${plan.project}:`, ...images, ...networks, ...containers, ...remove].join('\n')
}

/** Left-aligned columns; the header is the column names in capitals. */
function statusTable(columns: string[], rows: string[][]): string {
  return formatTable(
    columns.map((column) => column.toUpperCase()),
    rows,
  ).join('\n')
}

export function describeStatus(project: string, rows: StatusRow[]): string {
  if (rows.length === 0) return `${project}: no containers. Start the stack with \`create-gateway up\`.`
  // The UPSTREAM column (is the replica in the gateway's upstreams.conf?) appears once `status` fills it in.
  if (rows.some((row) => row.inUpstream !== undefined)) {
    return statusTable(
      ['service', 'name', 'state', 'health', 'upstream', 'ports', 'image'],
      rows.map((row) => [
        row.service,
        row.name,
        row.state,
        row.health,
        row.inUpstream === undefined ? '-' : row.inUpstream ? 'yes' : 'no',
        row.ports.join(', ') || '-',
        row.image,
      ]),
    )
  }

  return statusTable(
    ['service', 'name', 'state', 'health', 'ports', 'image'],
    rows.map((row) => [row.service, row.name, row.state, row.health, row.ports.join(', ') || '-', row.image]),
  )
}
