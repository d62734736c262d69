import {mkdirSync, readdirSync, symlinkSync} from 'node:fs'
import {join} from 'node:path'

import {describe, expect, it} from 'vitest'

import {UsageError} from '../../src/errors.js'
import {rerenderProject} from '../../src/project/rerender.js'
import {parseScaleTargets} from '../../src/gateway/targets.js'
import {renderUpstreamsWith} from '../../src/gateway/upstreams.js'
import {
  durationSeconds,
  GENERATED_TOP_LEVEL,
  parseDecimal,
  parseUpstreamUrl,
  quoted,
  routePathProblem,
  servicePathProblem,
  sizeBytes,
} from '../../src/manifest/grammar.js'
import {resolveAnswers} from '../../src/manifest/answers.js'
import {loadManifest, parseManifest} from '../../src/manifest/load.js'
import {PROJECT_PATHS} from '../../src/manifest/stack.js'
import {createProject} from '../../src/project/create-project.js'
import {renderUpstreams} from '../../src/render/gateway.js'
import {projectFile, writePlan} from '../../src/util/files.js'
import {tempDir} from '../helpers/cli.js'
import {rejectionOf} from '../helpers/errors.js'
import {FakeEngine} from '../helpers/fake-engine.js'

describe('parseUpstreamUrl', () => {
  it.each([
    ['https://pay.example.com', {scheme: 'https', host: 'pay.example.com', path: '/'}],
    ['https://Pay.Example.COM:443/', {scheme: 'https', host: 'pay.example.com', path: '/'}],
    ['http://10.0.0.5:8000/api/v1.0', {scheme: 'http', host: '10.0.0.5', port: 8000, path: '/api/v1.0/'}],
    ['http://[::1]:8080/a%20b/', {scheme: 'http', host: '[::1]', port: 8080, path: '/a%20b/'}],
  ])('reads %s', (text, expected) => {
    expect(parseUpstreamUrl(text)).toEqual({url: expected})
  })

  it.each([
    // What the WHATWG parser lets through and NGINX would read as syntax or a variable.
    ['http://$host:8000', /must name a host .*"\$host"/],
    ['https://a;b.com', /must name a host/],
    ['https://x;}y.com', /must name a host/],
    ["https://a'b.com", /must name a host/],
    ['https://a"b.com', /must name a host/],
    ['https://h.example.com/x;internal;', /must have a path of letters/],
    ['https://h.example.com/${x}', /must have a path of letters/],
    ['https://h.example.com/a b', /must have a path of letters/],
    ['https://h.example.com/a/../b', /without "\." or "\.\." segments/],
    ['https://h.example.com//a', /between single "\/"/],
    ['x.com', /must be a URL such as/],
    ['', /must be a URL such as/],
    ['ftp://x.example.com', /must use http:\/\/ or https:\/\//],
    ['HTTPS://x.example.com', /must use http:\/\/ or https:\/\//],
    ['https://user:pw@x.example.com', /credentials, a query or a fragment/],
    ['https://x.example.com/?a=1', /credentials, a query or a fragment/],
    ['https://x.example.com:0', /must have a port from 1 to 65535/],
    ['https://x.example.com:0x50', /must have a port from 1 to 65535/],
    ['https://x.example.com:65536', /must have a port from 1 to 65535/],
    ['https://[fe80::1%eth0]', /must name a host/],
    ['https://bücher.example', /must name a host/],
    [`https://${'a'.repeat(5000)}.com`, /at most 2048 characters/],
  ])('refuses %j', (text, expected) => {
    const parsed = parseUpstreamUrl(text)
    expect('problem' in parsed && parsed.problem).toMatch(expected)
  })
})

describe('route and service paths', () => {
  it.each(['/', '/api/', '/v1.0/', '/a-b/c_d/~e/'])('%s is a route path', (path) => {
    expect(routePathProblem(path)).toBeUndefined()
  })

  it.each([
    ['/../', /"\." or "\.\." segments/],
    ['/./', /"\." or "\.\." segments/],
    ['/a/../', /"\." or "\.\." segments/],
    ['/a//', /must start and end with/],
    ['/a', /must start and end with/],
    ['/$host/', /must start and end with/],
    ['/a;b/', /must start and end with/],
    ['/a b/', /must start and end with/],
    [`/${'a'.repeat(300)}/`, /at most 256 characters/],
  ])('%j is not', (path, expected) => {
    expect(routePathProblem(path)).toMatch(expected)
  })

  it.each(['services/web', 'services/web/', 'apps/api.v2', 'code'])('%s is a service folder', (path) => {
    expect(servicePathProblem(path)).toBeUndefined()
  })

  it.each([
    ['../../outside/evil', /must stay inside the project/],
    ['services/../../x', /must stay inside the project/],
    ['/etc/x', /must stay inside the project/],
    ['.', /no segment starting with "\."/],
    ['services/./web', /no segment starting with "\."/],
    ['.git/hooks', /no segment starting with "\."/],
    ['services//web', /letters, digits/],
    ['a\\b', /letters, digits/],
    ['gateway/conf.d', /must not be inside gateway/],
    ['secrets', /must not be inside secrets/],
    ['docker-compose.yml', /must not be inside docker-compose\.yml/],
  ])('%j is not', (path, expected) => {
    expect(servicePathProblem(path)).toMatch(expected)
  })

  it('GENERATED_TOP_LEVEL covers every folder the project paths name', () => {
    const tops = new Set(Object.values(PROJECT_PATHS).map((path) => path.split('/')[0]!))
    tops.delete('.env') // a file: no service folder can be named .env (no leading ".")
    for (const top of tops) expect(GENERATED_TOP_LEVEL, top).toContain(top)
  })
})

describe('numbers and quoting', () => {
  it('reads decimal digits only', () => {
    expect(parseDecimal('8080')).toBe(8080)
    expect(parseDecimal('0')).toBe(0)
    for (const text of ['0x50', '1e3', '+8', ' 8', '8 ', '08', '1.0', '', '-1', '9'.repeat(16)])
      expect(parseDecimal(text), text).toBeUndefined()
  })

  it('quotes a value for an error with controls and bidi overrides escaped, clipped', () => {
    expect(quoted('a\u001b[2Jb"\\')).toBe('"a\\u{1b}[2Jb\\"\\\\"')
    expect(quoted('x\u202ey\u0085')).toBe('"x\\u{202e}y\\u{85}"')
    expect(quoted('a'.repeat(100))).toBe(`"${'a'.repeat(57)}..."`)
  })
})

describe('gateway.yaml types are not coerced', () => {
  const base = () => ({
    version: 1,
    name: 'demo',
    domain: 'api.localhost',
    services: {web: {kind: 'django'}} as Record<string, unknown>,
    routes: [{path: '/', service: 'web'}],
  })
  const issue = (mutate: (m: ReturnType<typeof base> & Record<string, unknown>) => void) => {
    const input = base() as ReturnType<typeof base> & Record<string, unknown>
    mutate(input)
    try {
      parseManifest(input)
    } catch (error) {
      return (error as Error).message
    }

    return 'accepted'
  }

  it.each([
    ['http: true', (m: Record<string, unknown>) => (m.ports = {http: true}), /ports\.http: .* not true/],
    ['burst: null', (m: Record<string, unknown>) => (m.rateLimit = {burst: null}), /rateLimit\.burst: .* not null/],
    [
      'replicas: [3]',
      (m: Record<string, unknown>) => ((m.services as Record<string, unknown>).web = {kind: 'django', replicas: [3]}),
      /services\.web\.replicas: .* not a list/,
    ],
    ['port: "80"', (m: Record<string, unknown>) => (m.ports = {http: '80'}), /ports\.http: .* not text "80"/],
    ['status: 503.5', (m: Record<string, unknown>) => (m.rateLimit = {status: 503.5}), /rateLimit\.status: must be/],
    ['burst: 1e21', (m: Record<string, unknown>) => (m.rateLimit = {burst: 1e21}), /rateLimit\.burst: must be/],
    ['rate 2000000r/s', (m: Record<string, unknown>) => (m.rateLimit = {rate: '2000000r/s'}), /at most 1000000/],
  ])('%s is an error naming the field', (_what, mutate, expected) => {
    expect(issue(mutate)).toMatch(expected)
  })

  it('caps the number of routes', () => {
    const routes = Array.from({length: 101}, (_, index) => ({path: `/r${index}/`, service: 'web'}))
    expect(issue((m) => (m.routes = routes))).toMatch(/routes: at most 100 routes/)
  })

  it('refuses two services in one folder', () => {
    expect(issue((m) => (m.services.api = {kind: 'django', path: 'services/web/'}))).toMatch(
      /services\.api\.path: services\/web is already the folder of service "web"/,
    )
  })
})

describe('a service named constructor (own-property lookups)', () => {
  const manifest = parseManifest({
    version: 1,
    name: 'demo',
    domain: 'api.localhost',
    services: {web: {kind: 'django'}, constructor: {kind: 'django', replicas: 2}},
    routes: [
      {path: '/', service: 'web'},
      {path: '/c/', service: 'constructor'},
    ],
  })

  it('is scaled, listed and rendered like any other', async () => {
    expect(parseScaleTargets(['constructor=3'], manifest)).toEqual({constructor: 3})
    expect(await renderUpstreams(manifest)).toMatch(/upstream constructor_upstream \{[^}]*server constructor:8000/)
    const text = await renderUpstreamsWith(manifest, {web: ['demo-web-1']}, {})
    expect(text).toContain('server demo-web-1:8000')
    expect(text).toContain('server constructor:8000')
  })

  it('is not found in a manifest that lacks it, nor is toString', () => {
    const plain = parseManifest({...manifest, services: {web: {kind: 'django'}}, routes: [{path: '/', service: 'web'}]})
    for (const name of ['constructor', 'toString', '__proto__'])
      expect(() => parseScaleTargets([`${name}=2`], plain)).toThrow(new RegExp(`has no service "${name}"`))
  })
})

describe('projectFile: the one guard of every writer', () => {
  it('resolves a path inside the project', async () => {
    const root = tempDir()
    expect(await projectFile(root, 'services/web/Dockerfile')).toBe(join(root, 'services/web/Dockerfile'))
  })

  it.each(['../x', '../../outside/evil/Dockerfile', '/etc/passwd', 'a/../../x', '.', ''])(
    'refuses %j',
    async (path) => {
      const error = await rejectionOf(projectFile(tempDir(), path), UsageError)
      expect(error.message).toMatch(/refusing to write outside the project/)
    },
  )

  it('refuses a folder that is a symbolic link out of the project', async () => {
    const root = tempDir()
    const elsewhere = tempDir()
    mkdirSync(join(root, 'services'))
    symlinkSync(elsewhere, join(root, 'services/web'))
    const error = await rejectionOf(projectFile(root, 'services/web/Dockerfile'), UsageError)
    expect(error.message).toMatch(/services\/web leads to/)
  })

  it('render checks every path before writing any, whatever built the manifest', async () => {
    const dir = join(tempDir(), 'demo')
    await createProject({dir, answers: await resolveAnswers({dir, yes: true, flags: {}})})
    const manifest = await loadManifest(dir)
    // As if the schema had let it through: the guard still holds.
    manifest.services.web = {
      kind: 'django',
      replicas: 1,
      port: 8000,
      path: '../evil',
      limits: {memory: '512m', cpus: 1},
    }
    const before = readdirSync(dir).sort()
    const error = await rejectionOf(rerenderProject(dir, manifest, {engine: new FakeEngine()}), UsageError)
    expect(error.message).toMatch(/refusing to write outside the project .*: \.\.\/evil\//)
    expect(readdirSync(join(dir, '..')).sort()).toEqual(['demo'])
    expect(readdirSync(dir).sort()).toEqual(before)
  })

  it('writePlan checks every path before writing any: nothing written', async () => {
    const root = join(tempDir(), 'p')
    const plan = [
      {path: 'README.md', content: 'x'},
      {path: '../escaped.txt', content: 'x'},
    ]
    await rejectionOf(writePlan(root, plan), UsageError)
    expect(() => readdirSync(root)).toThrow()
  })
})

describe('cache values', () => {
  const minimal = {
    version: 1,
    name: 'demo',
    domain: 'api.localhost',
    services: {web: {kind: 'django'}},
    routes: [{path: '/', service: 'web'}],
  }
  it('reads NGINX times up to a week and sizes from 1m to 4g, nothing else', () => {
    expect(durationSeconds('30s')).toBe(30)
    expect(durationSeconds('5m')).toBe(300)
    expect(durationSeconds('7d')).toBe(604_800)
    for (const bad of ['8d', '0s', '30', '1.5m', '1e3s', ' 30s', '30s;', '-1s', '30S'])
      expect(durationSeconds(bad), bad).toBeUndefined()
    expect(sizeBytes('10m')).toBe(10 * 1024 ** 2)
    for (const bad of ['10', '10M', '0m', '1t', '10mb']) expect(sizeBytes(bad), bad).toBeUndefined()
    expect(() => parseManifest({...minimal, cache: {size: '512k'}})).toThrow(/cache\.size/)
    expect(() => parseManifest({...minimal, cache: {keys: '5g'}})).toThrow(/cache\.keys/)
    expect(() =>
      parseManifest({...minimal, routes: [{path: '/', service: 'web', cache: {ttl: '30s', credentialed: 'always'}}]}),
    ).toThrow(/credentialed/)
  })
})
