import {relative} from 'node:path'

import {usesAuth} from '../manifest/model.js'
import {PROJECT_PATHS} from '../manifest/stack.js'
import type {CreatedProject} from './create-project.js'

/** What init prints: where things went, the credentials (once), and the next command. */
export function describeProject(project: CreatedProject, options: {dryRun?: boolean} = {}): string {
  const {manifest, secrets} = project
  const files = [...project.written, ...project.certificates]
  const lines: string[] = []
  if (options.dryRun) {
    lines.push(`Dry run: would write ${files.length} files to ${project.dir}:`, ...files.map((file) => `  ${file}`))
    return lines.join('\n')
  }

  const relativeDir = relative(process.cwd(), project.dir)
  const where = relativeDir === '' ? '.' : relativeDir.startsWith('..') ? project.dir : relativeDir
  lines.push(`Created ${manifest.name} in ${project.dir} (${files.length} files).`, '', 'Routes:')
  for (const route of manifest.routes) lines.push(`  ${route.path.padEnd(20)} -> ${route.service}${route.auth === 'none' ? '' : ` (${route.auth})`}`)
  if (usesAuth(manifest, 'basic') || usesAuth(manifest, 'api-key')) {
    lines.push('', 'Credentials (shown once; kept in secrets/, mode 0600):')
    if (usesAuth(manifest, 'basic')) lines.push(`  basic auth  ${secrets.basicAuth.user}:${secrets.basicAuth.password}   (${PROJECT_PATHS.basicAuth})`)
    if (usesAuth(manifest, 'api-key')) lines.push(`  X-API-Key   ${secrets.apiKeys[0]}   (${PROJECT_PATHS.apiKeys})`)
  }

  const scheme = manifest.tls.mode === 'off' ? 'http' : 'https'
  const port = manifest.tls.mode === 'off' ? manifest.ports.http : manifest.ports.https
  lines.push('', 'Next:', `  cd ${where}`, '  create-gateway up        # build and start the stack', '  create-gateway verify    # prove it works', '', `The gateway will answer on ${scheme}://${manifest.domain}:${port}/ (listening on ${manifest.bind}).`)
  return lines.join('\n')
}
