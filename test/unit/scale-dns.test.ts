import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {describe, expect, it} from 'vitest'

import {OperationError} from '../../src/errors.js'
import {aliasesWith} from '../../src/gateway/dns-upstream.js'
import {markUpstreamMembership} from '../../src/gateway/upstreams.js'
import {scaleServices} from '../../src/gateway/scale.js'
import {loadManifest} from '../../src/manifest/load.js'
import {rejectionOf} from '../helpers/errors.js'
import {runningStack, UPSTREAMS} from '../helpers/fake-nginx.js'

/** The scale path of the resolve form: replicas join and leave the upstream by the service name's DNS alias. */

const webAliases = (engine: Awaited<ReturnType<typeof runningStack>>['engine'], name: string) => {
  const container = engine.names().includes(name) ? engine.byName(name) : undefined
  return Object.values(engine.endpointsOf.get(container?.id ?? '') ?? {}).map((endpoint) => endpoint.aliases)
}

describe('scale on the resolve form (no reload)', () => {
  it('up: new replicas start without the name, get it once healthy, the gateway DNS answer holds them; no nginx command', async () => {
    const {engine, dir, manifest, options} = await runningStack(1, 'dns')
    const before = readFileSync(join(dir, UPSTREAMS))
    const result = await scaleServices(dir, manifest, {web: 3}, options())
    expect(engine.calls.filter((call) => call.includes('nginx'))).toEqual([])
    expect(readFileSync(join(dir, UPSTREAMS)).equals(before)).toBe(true)
    // Created without `web`, then taken off the network and joined again with Compose's aliases.
    const web2 = engine.byName('demo-web-2').id
    expect(engine.calls).toContain(`network disconnect demo_internal ${web2}`)
    expect(engine.calls.indexOf(`start demo-web-2`)).toBeLessThan(
      engine.calls.indexOf(`network disconnect demo_internal ${web2}`),
    )
    for (const name of ['demo-web-1', 'demo-web-2', 'demo-web-3'])
      expect(webAliases(engine, name)).toEqual([[name, 'web']])
    expect(result).toMatchObject({
      reloaded: false,
      services: [{service: 'web', from: 1, to: 3, added: ['demo-web-2', 'demo-web-3']}],
    })
    expect((await loadManifest(dir)).services.web).toMatchObject({replicas: 3})
  })

  it('down: the leaving replica loses the name before it is stopped, highest number first', async () => {
    const {engine, dir, manifest, options} = await runningStack(3, 'dns')
    const ids = ['demo-web-3', 'demo-web-2'].map((name) => engine.byName(name).id)
    await scaleServices(dir, manifest, {web: 1}, options())
    const at = (call: string) => engine.calls.indexOf(call)
    expect(at(`network disconnect demo_internal ${ids[0]}`)).toBeGreaterThanOrEqual(0)
    expect(at(`network disconnect demo_internal ${ids[0]}`)).toBeLessThan(at('stop demo-web-3'))
    expect(at(`network disconnect demo_internal ${ids[1]}`)).toBeLessThan(at('stop demo-web-3'))
    expect(at('stop demo-web-3')).toBeLessThan(at('stop demo-web-2'))
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1'])
    expect(engine.calls.filter((call) => call.includes('nginx'))).toEqual([])
  })

  it('a failure before the DNS answer is confirmed gives the name back and removes what it created', async () => {
    const {engine, dir, manifest, options} = await runningStack(2, 'dns')
    const yaml = readFileSync(join(dir, 'gateway.yaml'))
    // The gateway's DNS never drops demo-web-2: the wait for the answer times out.
    const getent = engine.exec.bind(engine)
    const web2 = engine.byName('demo-web-2')
    const address = Object.values(engine.endpointsOf.get(web2.id)!)[0]!.ipv4
    engine.exec = async (id, cmd = []) =>
      cmd[0] === 'getent' ? {exitCode: 0, stdout: `${address} STREAM web\n`, stderr: ''} : getent(id, cmd)
    const error = await rejectionOf(scaleServices(dir, manifest, {web: 1}, options({})), OperationError)
    expect(error.message).toContain('Gave demo-web-2 the service name back')
    expect(webAliases(engine, 'demo-web-2')).toEqual([['demo-web-2', 'web']])
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1', 'demo-web-2'])
    expect(readFileSync(join(dir, 'gateway.yaml')).equals(yaml)).toBe(true)
  })

  it('an unhealthy kept replica loses the name and keeps running; a later scale gives it back once healthy', async () => {
    const {engine, dir, manifest, options} = await runningStack(3, 'dns')
    engine.byName('demo-web-2').health = 'unhealthy'
    const first = await scaleServices(dir, manifest, {web: 3}, options())
    expect(webAliases(engine, 'demo-web-2')).toEqual([['demo-web-2']])
    expect(webAliases(engine, 'demo-web-1')).toEqual([['demo-web-1', 'web']])
    expect(engine.names()).toContain('demo-web-2')
    expect(first.warnings.join('\n')).toContain('demo-web-2 is unhealthy: it keeps running without the name web')
    expect(first.services[0]?.upstream).toEqual(['demo-web-1', 'demo-web-3'])
    expect(engine.calls.filter((call) => call.startsWith('stop') || call.includes('nginx'))).toEqual([])

    engine.byName('demo-web-2').health = 'healthy'
    const second = await scaleServices(dir, manifest, {web: 3}, options())
    expect(webAliases(engine, 'demo-web-2')).toEqual([['demo-web-2', 'web']])
    expect(second.services[0]?.upstream).toEqual(['demo-web-1', 'demo-web-2', 'demo-web-3'])
  })

  it('every kept replica unhealthy and none new: refused, no name moved, nothing created', async () => {
    const {engine, dir, manifest, options} = await runningStack(2, 'dns')
    const yaml = readFileSync(join(dir, 'gateway.yaml'))
    for (const name of ['demo-web-1', 'demo-web-2']) engine.byName(name).health = 'unhealthy'
    const error = await rejectionOf(scaleServices(dir, manifest, {web: 1}, options()), OperationError)
    expect(error.message).toContain('No replica of web would take requests')
    for (const name of ['demo-web-1', 'demo-web-2']) expect(webAliases(engine, name)).toEqual([[name, 'web']])
    expect(engine.names()).toEqual(['demo-gateway-1', 'demo-web-1', 'demo-web-2'])
    expect(engine.calls.filter((call) => call.startsWith('network') || call.startsWith('stop'))).toEqual([])
    expect(readFileSync(join(dir, 'gateway.yaml')).equals(yaml)).toBe(true)
  })

  it('status on the resolve form: a replica is in the upstream when it runs and holds the service name', async () => {
    const {engine, dir, manifest} = await runningStack(2, 'dns')
    const web2 = engine.byName('demo-web-2').id
    for (const endpoint of Object.values(engine.endpointsOf.get(web2)!))
      endpoint.aliases = endpoint.aliases.filter((alias) => alias !== 'web')
    const row = (
      service: string,
      name: string,
      state = 'running',
    ): {service: string; name: string; state: string; inUpstream?: boolean} => ({service, name, state})
    const rows = await markUpstreamMembership(
      dir,
      manifest,
      [row('web', 'demo-web-1'), row('web', 'demo-web-2'), row('gateway', 'demo-gateway-1')],
      engine,
    )
    expect(rows.map((item) => item.inUpstream)).toEqual([true, false, undefined])
    // A stopped replica keeps its alias settings but gets no requests.
    const stopped = await markUpstreamMembership(dir, manifest, [row('web', 'demo-web-1', 'exited')], engine)
    expect(stopped[0]?.inUpstream).toBe(false)
  })

  it('a kept replica left without the name (a run stopped half-way) gets it back', async () => {
    const {engine, dir, manifest, options} = await runningStack(2, 'dns')
    const web2 = engine.byName('demo-web-2').id
    for (const endpoint of Object.values(engine.endpointsOf.get(web2)!))
      endpoint.aliases = endpoint.aliases.filter((alias) => alias !== 'web')
    const result = await scaleServices(dir, manifest, {web: 2}, options())
    expect(webAliases(engine, 'demo-web-2')).toEqual([['demo-web-2', 'web']])
    expect(result.changed).toBe(true)
    expect(engine.calls.filter((call) => call.startsWith('create') || call.startsWith('stop'))).toEqual([])
  })

  it('aliasesWith: Compose order [container, service, ...], without the engine-added short ID', () => {
    const id = 'abcdef0123456789'
    expect(aliasesWith(['demo-web-2', 'abcdef012345'], id, 'web', true)).toEqual(['demo-web-2', 'web'])
    expect(aliasesWith(['demo-web-2', 'web', 'extra', 'abcdef012345'], id, 'web', false)).toEqual([
      'demo-web-2',
      'extra',
    ])
    expect(aliasesWith(['demo-web-2', 'extra'], id, 'web', true)).toEqual(['demo-web-2', 'web', 'extra'])
  })
})
