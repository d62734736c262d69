import {describe, expect, it} from 'vitest'

import {describePlannedScale, planScale} from '../../src/gateway/scale-plan.js'
import {runningStack} from '../helpers/fake-nginx.js'

describe('scale --dry-run', () => {
  it('names the replicas a scale would start or remove, and touches nothing', async () => {
    const {engine, manifest} = await runningStack(2, 'replicas')
    const before = engine.names()
    engine.calls.length = 0
    const up = await planScale(manifest, {web: 4}, {engine})
    expect(up).toEqual({
      project: 'demo',
      dryRun: true,
      services: [{service: 'web', from: 2, to: 4, start: ['demo-web-3', 'demo-web-4'], remove: []}],
    })
    const down = await planScale(manifest, {web: 1}, {engine})
    expect(down.services).toEqual([{service: 'web', from: 2, to: 1, start: [], remove: ['demo-web-2']}])
    expect(describePlannedScale(down)).toBe(
      'Dry run: nothing started, stopped or reloaded in demo.\n  web: 2 -> 1; would remove demo-web-2',
    )
    expect(engine.calls).toEqual([])
    expect(engine.names()).toEqual(before)
  })
})
