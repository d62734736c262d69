import {describe, expect, it} from 'vitest'

import {parseManifest} from '../../src/manifest/load.js'
import {djangoServices, type NamedDjangoService} from '../../src/manifest/model.js'
import type {Manifest} from '../../src/manifest/schema.js'
import {buildStackSpec} from '../../src/manifest/stack.js'
import {renderDjangoService} from '../../src/render/django.js'
import type {PlannedFile} from '../../src/render/plan.js'

function manifest(overrides: Record<string, unknown> = {}): Manifest {
  return parseManifest({
    version: 1,
    name: 'my-api',
    domain: 'api.localhost',
    services: {
      web: {kind: 'django', replicas: 2, port: 8000},
      'student-api': {kind: 'django', path: 'apps/student/', port: 9001},
      payment: {kind: 'external', url: 'http://ec2-3-91-1-123.compute.amazonaws.com'},
    },
    routes: [
      {path: '/', service: 'web'},
      {path: '/secure/', service: 'web', auth: 'basic'},
      {path: '/student-api/', service: 'student-api'},
      {path: '/payment/', service: 'payment', auth: 'api-key'},
    ],
    images: {python: 'create-gateway-offline/python:forky'},
    ...overrides,
  })
}

function service(m: Manifest, name: string): NamedDjangoService {
  const found = djangoServices(m).find((candidate) => candidate.name === name)
  if (!found) throw new Error(`no service ${name}`)
  return found
}

function file(plan: PlannedFile[], path: string): string {
  const found = plan.find((candidate) => candidate.path === path)
  if (!found) throw new Error(`${path} not in plan: ${plan.map((f) => f.path).join(', ')}`)
  return String(found.content)
}

/** Dockerfile instructions as [keyword, rest] with continuation lines joined and comments dropped. */
function instructions(dockerfile: string): Array<[string, string]> {
  return dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/)
      return [keyword.toUpperCase(), rest.join(' ')]
    })
}

describe('renderDjangoService', () => {
  it('plans the Django project, Gunicorn and Docker files under the service folder', async () => {
    const m = manifest()
    const plan = await renderDjangoService(m, service(m, 'web'))
    expect(plan.map((f) => f.path).sort()).toEqual(
      [
        '.dockerignore',
        'Dockerfile',
        'config/__init__.py',
        'config/settings.py',
        'config/urls.py',
        'config/views.py',
        'config/wsgi.py',
        'gunicorn.conf.py',
        'manage.py',
        'requirements.txt',
      ].map((name) => `services/web/${name}`),
    )
    // Rendered output carries no ejs tags.
    for (const f of plan) expect(String(f.content), f.path).not.toMatch(/<%|%>/)
  })

  it('uses the path from the manifest, without a trailing slash', async () => {
    const m = manifest()
    const plan = await renderDjangoService(m, service(m, 'student-api'))
    expect(plan.every((f) => f.path.startsWith('apps/student/') && !f.path.includes('//'))).toBe(true)
  })

  it('makes manage.py executable and nothing else', async () => {
    const m = manifest()
    const plan = await renderDjangoService(m, service(m, 'web'))
    const modes = Object.fromEntries(plan.map((f) => [f.path, f.mode]))
    expect(modes['services/web/manage.py']).toBe(0o755)
    expect(file(plan, 'services/web/manage.py').startsWith('#!/usr/bin/env python3\n')).toBe(true)
    for (const [path, mode] of Object.entries(modes)) if (!path.endsWith('manage.py')) expect(mode, path).toBe(0o644)
  })

  it('builds the Dockerfile from the manifest python image and runs as a non-root user', async () => {
    const m = manifest({images: {python: 'registry.internal:5000/python:3.12-slim'}})
    const dockerfile = file(await renderDjangoService(m, service(m, 'student-api')), 'apps/student/Dockerfile')
    const steps = instructions(dockerfile)

    expect(steps[0]).toEqual(['FROM', 'registry.internal:5000/python:3.12-slim'])
    const users = steps.filter(([keyword]) => keyword === 'USER').map(([, user]) => user)
    expect(users.length).toBeGreaterThan(0)
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/)
    expect(steps.map(([keyword]) => keyword)).toContain('HEALTHCHECK')
    expect(steps).toContainEqual(['EXPOSE', '9001'])
    expect(dockerfile).toContain('GUNICORN_BIND=0.0.0.0:9001')
    expect(steps.at(-1)).toEqual(['CMD', '["gunicorn", "-c", "gunicorn.conf.py", "config.wsgi:application"]'])

    // Dependencies are installed before the code is copied, so code edits keep the pip layer cached.
    const copyRequirements = steps.findIndex(([k, rest]) => k === 'COPY' && rest.startsWith('requirements.txt'))
    const pip = steps.findIndex(
      ([k, rest]) => k === 'RUN' && /pip install --no-cache-dir -r requirements\.txt/.test(rest),
    )
    const copyAll = steps.findIndex(([k, rest]) => k === 'COPY' && rest === '. .')
    expect(copyRequirements).toBeGreaterThan(0)
    expect(pip).toBeGreaterThan(copyRequirements)
    expect(copyAll).toBeGreaterThan(pip)

    // The stand-in image may have only python3 on PATH.
    const commands = steps
      .filter(([k]) => ['RUN', 'CMD', 'HEALTHCHECK', 'ENTRYPOINT'].includes(k))
      .map(([, rest]) => rest)
    for (const command of commands) expect(command).not.toMatch(/(^|[\s"[])python(?=[\s"])/)
    expect(commands.some((command) => /(^|[\s"[])python3(?=[\s"])/.test(command))).toBe(true)
  })

  it('gives the Dockerfile the same healthcheck as the compose file', async () => {
    const m = manifest()
    const dockerfile = file(await renderDjangoService(m, service(m, 'student-api')), 'apps/student/Dockerfile')
    const spec = buildStackSpec(m).services.find((s) => s.service === 'student-api')!
    const check = spec.healthcheck!
    const healthcheck = instructions(dockerfile).find(([keyword]) => keyword === 'HEALTHCHECK')![1]
    const command = JSON.parse(healthcheck.slice(healthcheck.indexOf('CMD ') + 4)) as string[]
    expect(['CMD', ...command]).toEqual(check.test)
    expect(command.join(' ')).toContain('http://127.0.0.1:9001/healthz')
    expect(healthcheck).toContain(`--interval=${check.intervalSeconds}s`)
    expect(healthcheck).toContain(`--start-period=${check.startPeriodSeconds}s`)
  })

  it('reads every setting the stack passes from the environment, with no secret in the files', async () => {
    const m = manifest()
    const plan = await renderDjangoService(m, service(m, 'web'))
    const settings = file(plan, 'services/web/config/settings.py')
    const python = plan
      .filter((f) => f.path.endsWith('.py'))
      .map((f) => String(f.content))
      .join('\n')

    // Each variable docker-compose.yml sets is read by the generated code.
    const environment = buildStackSpec(m).services.find((s) => s.service === 'web')!.environment
    for (const name of Object.keys(environment)) expect(python, name).toMatch(new RegExp(`['"]${name}['"]`))

    expect(settings).toContain("SECRET_KEY = os.environ.get('DJANGO_SECRET_KEY', '')")
    expect(settings).toMatch(/if not SECRET_KEY:\s+raise ImproperlyConfigured\(/)
    expect(settings).toContain("DEBUG = env_bool('DJANGO_DEBUG', False)")
    expect(settings).toContain("ALLOWED_HOSTS = env_list('DJANGO_ALLOWED_HOSTS')")
    expect(settings).toContain("CSRF_TRUSTED_ORIGINS = env_list('DJANGO_CSRF_TRUSTED_ORIGINS')")
    expect(settings).toContain("SECURE_PROXY_SSL_HEADER = ('HTTP_X_FORWARDED_PROTO', 'https')")
    expect(settings).toContain("SECURE_REDIRECT_EXEMPT = [r'^healthz$']")
    expect(settings).toContain("X_FRAME_OPTIONS = 'DENY'")
    // The error names the .env variable that holds this service's key.
    expect(settings).toContain('WEB_SECRET_KEY in the project .env')
    expect(settings).not.toMatch(/django-insecure/)
    expect(settings).not.toMatch(/^(USE_L10N|STATICFILES_STORAGE) =/m)
  })

  it('configures Gunicorn from the environment with the service port as default bind', async () => {
    const m = manifest()
    const conf = file(await renderDjangoService(m, service(m, 'student-api')), 'apps/student/gunicorn.conf.py')
    expect(conf).toContain("bind = os.environ.get('GUNICORN_BIND', '0.0.0.0:9001')")
    // Forwarding headers are believed from the gateway's (internal) network only, never from anyone.
    expect(conf).not.toContain("forwarded_allow_ips = '*'")
    expect(conf).toContain(
      "forwarded_allow_ips = os.environ.get('GUNICORN_FORWARDED_ALLOW_IPS') or gateway_addresses()",
    )
    expect(conf).toMatch(/^graceful_timeout = 20$/m)
    expect(conf).toMatch(/^keepalive = 5$/m)
    expect(conf).toContain('%({x-request-id}i)s')
  })

  it('answers the API under any route prefix, since the gateway forwards paths unchanged', async () => {
    const m = manifest()
    const urls = file(await renderDjangoService(m, service(m, 'web')), 'services/web/config/urls.py')
    expect(urls).toContain("path('healthz', views.healthz)")
    expect(urls).toContain("re_path(r'^(?:[\\w.~-]+/)*api/$', views.api)")
    expect(urls).toContain("re_path(r'', views.catch_all)")
  })

  it('asks for Django 5.2 LTS and Gunicorn 23 or later, which both Debian forky and PyPI satisfy', async () => {
    const m = manifest()
    const requirements = file(await renderDjangoService(m, service(m, 'web')), 'services/web/requirements.txt')
    const lines = requirements.split('\n').filter((line) => line !== '' && !line.startsWith('#'))
    expect(lines).toEqual(['Django>=5.2,<6', 'gunicorn>=23,<27'])
  })

  it('keeps secrets and caches out of the build context', async () => {
    const m = manifest()
    const ignore = file(await renderDjangoService(m, service(m, 'web')), 'services/web/.dockerignore').split('\n')
    for (const entry of ['__pycache__/', '*.py[cod]', '.env', '.git/']) expect(ignore).toContain(entry)
  })

  it('renders the same output for the same manifest', async () => {
    const m = manifest()
    const first = await renderDjangoService(m, service(m, 'web'))
    const second = await renderDjangoService(m, service(m, 'web'))
    expect(second).toEqual(first)
  })
})
