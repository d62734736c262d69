import {rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {describe, expect, it} from 'vitest'

import {describeUpPlan} from '../../src/docker/describe.js'
import {upStack} from '../../src/docker/up.js'
import {planUp} from '../../src/docker/up-plan.js'
import {UsageError} from '../../src/errors.js'
import {rejectionOf} from '../helpers/errors.js'
import {fakeClock, FakeEngine} from '../helpers/fake-engine.js'
import {testManifest, testProject} from '../helpers/stack-fixture.js'

const IMAGES = ['create-gateway-offline/python:forky', 'create-gateway-offline/nginx:forky']

function setup(manifest = testManifest()) {
  const engine = new FakeEngine(IMAGES)
  const dir = testProject(manifest)
  const up = (m = manifest) => upStack(dir, m, {engine, clock: fakeClock(), env: {}, timeoutMs: 60_000})
  const plan = (m = manifest) => planUp(dir, m, {engine, env: {}})
  return {engine, dir, manifest, up, plan}
}

describe('up --dry-run (planUp)', () => {
  it('on a new project: the build, both networks and every container to create, and the engine untouched', async () => {
    const {engine, plan} = setup()
    const planned = await plan()
    expect(engine.calls).toEqual([])
    expect(planned.changes).toBe(true)
    expect(planned.images).toEqual([
      expect.objectContaining({service: 'web', image: 'demo-web:latest', action: 'build'}),
      expect.objectContaining({service: 'gateway', image: 'create-gateway-offline/nginx:forky', action: 'use'}),
    ])
    expect(planned.networks).toEqual([
      {name: 'demo_internal', action: 'create'},
      {name: 'demo_default', action: 'create'},
    ])
    expect(planned.containers.map((container) => [container.name, container.action])).toEqual([
      ['demo-web-1', 'create'],
      ['demo-web-2', 'create'],
      ['demo-gateway-1', 'create'],
    ])
    expect(describeUpPlan(planned)).toMatch(/^Dry run: up would change demo:\n {2}build image demo-web:latest \(web\)/)
  })

  it('after up: nothing to change, as the next up finds', async () => {
    const {engine, up, plan} = setup()
    await up()
    engine.calls.length = 0
    const planned = await plan()
    expect(engine.calls).toEqual([])
    expect(planned.changes).toBe(false)
    expect(new Set(planned.containers.map((container) => container.action))).toEqual(new Set(['keep']))
    expect(describeUpPlan(planned)).toBe(
      'Dry run: demo is up to date: up would build, create or remove nothing (3 container(s) kept).',
    )
    // The real up agrees.
    expect((await up()).changed).toBe(false)
  })

  it('a changed source file: the build, and every web replica recreated; the gateway kept', async () => {
    const {dir, up, plan} = setup()
    await up()
    writeFileSync(join(dir, 'services', 'web', 'views.py'), '# changed\n')
    const planned = await plan()
    expect(planned.images[0]).toMatchObject({service: 'web', action: 'build'})
    expect(planned.images[0]!.why).toContain('changed since demo-web:latest was built')
    expect(Object.fromEntries(planned.containers.map((container) => [container.name, container.action]))).toEqual({
      'demo-web-1': 'recreate',
      'demo-web-2': 'recreate',
      'demo-gateway-1': 'keep',
    })
  })

  it('fewer replicas in gateway.yaml: the extra one is listed for removal', async () => {
    const {up, plan} = setup()
    await up()
    const planned = await plan(testManifest({services: {web: {kind: 'django', replicas: 1}}}))
    expect(planned.remove).toEqual(['demo-web-2'])
    expect(describeUpPlan(planned)).toContain('  remove (not in gateway.yaml): demo-web-2')
  })

  it('refuses, as up does, when a secret file is missing, before asking the engine', async () => {
    const {engine, dir, plan} = setup()
    rmSync(join(dir, 'secrets', 'web-secret-key'))
    const error = await rejectionOf(plan(), UsageError)
    expect(error.message).toBe('secrets/web-secret-key is missing: the container that reads it cannot start')
    expect(engine.calls).toEqual([])
  })
})
