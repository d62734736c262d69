import {relative} from 'node:path'

import {usesAuth} from '../manifest/model.js'
import {PROJECT_PATHS} from '../manifest/stack.js'
import type {CreatedProject} from './create-project.js'
import {MINT_ONE_LINER} from '../render/jwt-mint.js'

/**
 * What init prints: where things went, the credentials (once, and only to a terminal: `showSecrets`;
 * otherwise the files that hold them, so CI logs never keep a password), and the next command.
 */
export function describeProject(
  project: CreatedProject,
  options: {dryRun?: boolean; showSecrets?: boolean} = {},
): string {
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
  for (const route of manifest.routes)
    lines.push(`  ${route.path.padEnd(20)} -> ${route.service}${route.auth === 'none' ? '' : ` (${route.auth})`}`)
  if (usesAuth(manifest, 'basic') || usesAuth(manifest, 'api-key') || usesAuth(manifest, 'jwt')) {
    const show = options.showSecrets ?? false
    lines.push(
      '',
      show
        ? 'Credentials (shown once; kept in secrets/, mode 0600):'
        : 'Credentials (not printed: the output is not a terminal; each is in its file, mode 0600):',
    )
    if (usesAuth(manifest, 'basic'))
      lines.push(
        show
          ? `  basic auth  ${secrets.basicAuth.user}:${secrets.basicAuth.password}   (${PROJECT_PATHS.basicAuth})`
          : `  basic auth  user ${secrets.basicAuth.user}, password in ${PROJECT_PATHS.basicAuth}`,
      )
    if (usesAuth(manifest, 'api-key'))
      lines.push(
        show
          ? `  X-API-Key   ${secrets.apiKeys[0]}   (${PROJECT_PATHS.apiKeys})`
          : `  X-API-Key   in ${PROJECT_PATHS.apiKeys}`,
      )
    // The key itself stays in its file: tokens are minted from it, not typed.
    if (usesAuth(manifest, 'jwt')) {
      lines.push(
        `  JWT         HS256 key in ${PROJECT_PATHS.jwtSecret}; send \`Authorization: Bearer <token>\` (exp required). Mint a token:`,
        `              node -e "${MINT_ONE_LINER}" "$(cat ${PROJECT_PATHS.jwtSecret})"`,
      )
    }
  }

  const scheme = manifest.tls.mode === 'off' ? 'http' : 'https'
  const port = manifest.tls.mode === 'off' ? manifest.ports.http : manifest.ports.https
  lines.push(
    '',
    'Next:',
    `  cd ${where}`,
    '  create-gateway up        # build and start the stack',
    '  create-gateway verify    # prove it works',
    '',
    `The gateway will answer on ${scheme}://${manifest.domain}:${port}/ (listening on ${manifest.bind}).`,
  )
  return lines.join('\n')
}
