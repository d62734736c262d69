import {MANIFEST_FILE} from '../manifest/load.js'
import {PROJECT_PATHS} from '../manifest/stack.js'
import type {DrainResult, ReloadResult} from './nginx.js'

/** What `scale` did, for --json, and its human summary. */

export interface ServiceScale {
  service: string
  /** Running replicas before. */
  from: number
  to: number
  added: string[]
  removed: string[]
  /** Host names the upstream lists afterwards. */
  upstream: string[]
}

export interface ScaleResult {
  project: string
  /** False when every service already ran the asked count and the upstream listed them. */
  changed: boolean
  manifestOnly: boolean
  services: ServiceScale[]
  reloaded: boolean
  reload?: Omit<ReloadResult, 'master'>
  drain?: DrainResult
  warnings: string[]
  durationMs: number
}

/** Human summary of a scale result, the command's output without --json. */
export function describeScale(result: ScaleResult): string {
  const seconds = (result.durationMs / 1000).toFixed(1)
  if (result.manifestOnly) {
    return `${result.project}: saved ${result.services.map((service) => `${service.service}=${service.to}`).join(' ')} in ${MANIFEST_FILE} and ${PROJECT_PATHS.upstreams}. The stack is not running; \`create-gateway up\` starts that many replicas.`
  }

  const lines: string[] = []
  if (!result.changed) {
    lines.push(
      `${result.project}: already at ${result.services.map((service) => `${service.service}=${service.to}`).join(' ')}; nothing changed (${seconds} s).`,
    )
  } else {
    lines.push(`${result.project} scaled in ${seconds} s:`)
    for (const service of result.services) {
      const parts = [`${service.from} -> ${service.to} replica(s)`]
      if (service.added.length > 0) parts.push(`added ${service.added.join(', ')}`)
      if (service.removed.length > 0) parts.push(`removed ${service.removed.join(', ')}`)
      lines.push(`  ${service.service}: ${parts.join('; ')}`)
      lines.push(`    upstream: ${service.upstream.join(', ')}`)
    }

    if (result.reload)
      lines.push(
        `  NGINX reloaded (${result.reload.ms} ms); ${result.drain ? `old workers ${result.drain.drained ? `finished in ${result.drain.ms} ms` : 'still finishing'}` : 'no replica left the upstream'}`,
      )
  }

  for (const warning of result.warnings) lines.push(`Warning: ${warning}`)
  return lines.join('\n')
}
