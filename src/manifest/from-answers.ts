import {ManifestError, type FieldIssue} from '../errors.js'
import {quoted} from './grammar.js'
import {zodIssues} from './load.js'
import {parseCache, parseExternal, parseRoute} from './option-values.js'
import {MAIN_SERVICE, flagForField, type InitAnswers} from './options.js'
import {MANIFEST_VERSION, ManifestSchema, type AuthMode, type Manifest, type ManifestInput} from './schema.js'

/**
 * Answers -> validated manifest. Default routes: `/` and `/secure/` (basic auth) to web, `/NAME/` to
 * each extra service; a `--route` replaces the default with the same path and any default for its service.
 */
export function buildManifest(answers: InitAnswers): Manifest {
  const services: ManifestInput['services'] = {
    [MAIN_SERVICE]: {kind: 'django', path: `services/${MAIN_SERVICE}`, replicas: answers.replicas, port: 8000},
  }
  const issues: FieldIssue[] = []
  const claim = (name: string, flag: string) => {
    if (Object.hasOwn(services, name)) issues.push({path: `--${flag}`, message: `service "${name}" is given twice`})
  }

  for (const name of answers.services) {
    claim(name, 'service')
    services[name] = {kind: 'django', path: `services/${name}`, replicas: 1, port: 8000}
  }

  for (const raw of answers.externals) {
    const {name, url} = parseExternal(raw)
    claim(name, 'external')
    services[name] = {kind: 'external', url}
  }

  const explicit = answers.routes.map((raw) => parseRoute(raw))
  const defaults = [
    {path: '/', service: MAIN_SERVICE, auth: 'none' as AuthMode},
    {path: '/secure/', service: MAIN_SERVICE, auth: 'basic' as AuthMode},
    ...[...answers.services, ...answers.externals.map((raw) => parseExternal(raw).name)].map((name) => ({
      path: `/${name}/`,
      service: name,
      auth: 'none' as AuthMode,
    })),
  ]
  const routes = [
    ...defaults.filter(
      (route) =>
        !explicit.some((given) => given.path === route.path) &&
        !(route.service !== MAIN_SERVICE && explicit.some((given) => given.service === route.service)),
    ),
    ...explicit,
  ]

  const caches = new Map<string, string>()
  for (const {path, ttl} of answers.caches.map((raw) => parseCache(raw))) {
    if (caches.has(path)) issues.push({path: '--cache', message: `route ${quoted(path)} is given twice`})
    else if (!routes.some((route) => route.path === path))
      issues.push({
        path: '--cache',
        message: `no route ${quoted(path)} (routes: ${routes.map((route) => route.path).join(', ')})`,
      })
    caches.set(path, ttl)
  }

  const cachedRoutes = routes.map((route) =>
    caches.has(route.path) ? {...route, cache: {ttl: caches.get(route.path)!}} : route,
  )

  const input: ManifestInput = {
    version: MANIFEST_VERSION,
    name: answers.name,
    domain: answers.domain,
    bind: answers.bind,
    ports: {http: answers.httpPort, https: answers.httpsPort},
    tls: answers.tls === 'certbot' ? {mode: 'certbot', email: answers.email} : {mode: answers.tls},
    rateLimit: {rate: answers.rate, burst: answers.burst, status: 503},
    services,
    routes: cachedRoutes,
    ...(answers.metricsPort === undefined ? {} : {metrics: {enabled: true, port: answers.metricsPort}}),
    images: {
      python: answers.pythonImage,
      nginx: answers.nginxImage,
      certbot: answers.certbotImage,
      exporter: answers.exporterImage,
    },
  }

  const result = ManifestSchema.safeParse(input)
  const externalNames = new Set(answers.externals.map((raw) => parseExternal(raw).name))
  const flagFor = (path: string): string | undefined => {
    // services.<name>...: the flag that created that service.
    const service = /^services\.([^.[]+)/.exec(path)?.[1]
    if (service && service !== MAIN_SERVICE) return `--${externalNames.has(service) ? 'external' : 'service'} (${path})`
    return flagForField(path)
  }

  if (!result.success)
    issues.push(...zodIssues(result.error).map((issue) => ({...issue, path: flagFor(issue.path) ?? issue.path})))
  if (issues.length > 0 || !result.success) throw new ManifestError(issues)
  return result.data
}
