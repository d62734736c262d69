import {readdir} from 'node:fs/promises'
import {join, posix} from 'node:path'

import {GatewayError, UsageError} from '../errors.js'
import {secretKeyVariable, type NamedDjangoService} from '../manifest/model.js'
import type {Manifest} from '../manifest/schema.js'
import {buildStackSpec, type HealthcheckSpec} from '../manifest/stack.js'
import {renderTemplate, TEMPLATES_DIR, type PlannedFile} from './plan.js'

/** templates/service mirrors a service folder: every file in it is rendered, `.ejs` stripped. */
const SERVICE_TEMPLATES = 'service'
/** Files that must be executable in the generated service (relative to the service folder). */
const EXECUTABLES = new Set(['manage.py'])

async function templateFiles(dir: string, prefix = ''): Promise<string[]> {
  const entries = await readdir(join(dir, prefix), {withFileTypes: true})
  const files: string[] = []
  for (const entry of entries) {
    const relative = prefix === '' ? entry.name : `${prefix}/${entry.name}`
    if (entry.isDirectory()) files.push(...(await templateFiles(dir, relative)))
    else if (entry.isFile()) files.push(relative)
  }

  return files.sort()
}

/** Dockerfile HEALTHCHECK options and exec-form command, from the same spec docker-compose.yml uses. */
function dockerHealthcheck(healthcheck: HealthcheckSpec): Record<string, string | number> {
  const [form, ...args] = healthcheck.test
  let command: string
  if (form === 'CMD') command = `[${args.map((part) => JSON.stringify(part)).join(', ')}]`
  else if (form === 'CMD-SHELL' && args.length === 1) command = args[0]!
  else
    throw new GatewayError(`cannot write healthcheck ${JSON.stringify(healthcheck.test)} as a Dockerfile HEALTHCHECK`)
  return {
    interval: `${healthcheck.intervalSeconds}s`,
    timeout: `${healthcheck.timeoutSeconds}s`,
    startPeriod: `${healthcheck.startPeriodSeconds}s`,
    retries: healthcheck.retries,
    command,
  }
}

/**
 * The files of one Django service (Dockerfile, gunicorn.conf.py, the `config` project...), with paths
 * under the service's folder, e.g. `services/web/Dockerfile`.
 */
export async function renderDjangoService(manifest: Manifest, service: NamedDjangoService): Promise<PlannedFile[]> {
  const spec = buildStackSpec(manifest).services.find(
    (candidate) => candidate.role === 'django' && candidate.service === service.name,
  )
  if (!spec) throw new UsageError(`no django service named "${service.name}" in the manifest`)

  const data = {
    manifest,
    service,
    image: manifest.images.python,
    secretKeyVariable: secretKeyVariable(service.name),
    // Every Django service has one (buildStackSpec); only the exporter goes without.
    healthcheck: dockerHealthcheck(spec.healthcheck!),
  }
  const root = posix.normalize(service.path).replace(/\/+$/, '')
  const templates = await templateFiles(join(TEMPLATES_DIR, SERVICE_TEMPLATES))
  const files: PlannedFile[] = []
  for (const template of templates) {
    const relative = template.replace(/\.ejs$/, '')
    const content = await renderTemplate(`${SERVICE_TEMPLATES}/${template}`, data)
    files.push({path: posix.join(root, relative), content, mode: EXECUTABLES.has(relative) ? 0o755 : 0o644})
  }

  return files
}
