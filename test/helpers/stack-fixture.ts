import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {parseManifest} from '../../src/manifest/load.js'
import type {Manifest} from '../../src/manifest/schema.js'
import {tempDir} from './cli.js'

/** A small valid manifest for unit tests of src/docker/ (no files needed). */
export function testManifest(overrides: Record<string, unknown> = {}): Manifest {
  return parseManifest({
    version: 1,
    name: 'demo',
    domain: 'api.localhost',
    ports: {http: 18080, https: 18443},
    services: {web: {kind: 'django', replicas: 2}},
    routes: [{path: '/', service: 'web'}],
    images: {python: 'create-gateway-offline/python:forky', nginx: 'create-gateway-offline/nginx:forky'},
    ...overrides,
  })
}

/** A project folder with just what `up` reads itself: `.env`, the SECRET_KEY files and each service's build context. */
export function testProject(manifest: Manifest, env = 'WEB_SECRET_KEY=s3cret\n'): string {
  const dir = tempDir('cg-docker-')
  writeFileSync(join(dir, '.env'), env)
  mkdirSync(join(dir, 'secrets'), {recursive: true})
  for (const [name, service] of Object.entries(manifest.services)) {
    if (service.kind !== 'django') continue
    writeFileSync(join(dir, 'secrets', `${name}-secret-key`), 's3cret\n', {mode: 0o640})
    const context = join(dir, service.path ?? `services/${name}`)
    mkdirSync(context, {recursive: true})
    writeFileSync(join(context, 'Dockerfile'), `FROM ${manifest.images.python}\nCOPY . /app\n`)
    writeFileSync(join(context, 'app.py'), 'print("hi")\n')
  }

  return dir
}
