import fc from 'fast-check'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ManifestError, UsageError} from '../../src/errors.js'
import {resolveAnswers} from '../../src/manifest/answers.js'
import {parseManifest} from '../../src/manifest/load.js'
import {isLocalDomain} from '../../src/manifest/model.js'
import {buildManifest} from '../../src/manifest/from-answers.js'
import {AUTH_MODES, type Manifest, type ManifestInput} from '../../src/manifest/schema.js'
import {parseNginxConfig, variablesOf, walk, type Directive} from '../helpers/nginx-parse.js'
import {
  CANNOT_RUN_NGINX,
  canRunNginx,
  layOutGateway,
  nginxTest,
  prepareTree,
  removeSandboxes,
  type Tree,
} from '../helpers/nginx-sandbox.js'

/**
 * Manifests made from ordinary and hostile values (NGINX metacharacters, variables, dot segments,
 * prototype names, wrong types, numbers NGINX cannot hold, 5000-character strings), through
 * gateway.yaml's schema and through init's flags. For each, one of two things holds:
 *   - validation refuses it with a typed error (exit 2), whose text carries no terminal control
 *     character; or
 *   - the rendered configuration passes the host's `nginx -t` without a warning, holds no directive,
 *     and no variable in a directive, that the clean manifests below do not give (read with NGINX's
 *     own tokenizing rules), and NGINX reads back the route paths and server names we meant.
 * The seed is fixed so CI is repeatable; PROPERTY_SEED and PROPERTY_RUNS override it to explore, and
 * a failure prints the seed and the shrunk counterexample.
 */

const SEED = Number(process.env.PROPERTY_SEED ?? 9)
const RUNS = Number(process.env.PROPERTY_RUNS ?? 300)
/** Flags reach the same schema after their own parsers: fewer cases, as each accepted one costs an nginx -t. */
const FLAG_RUNS = Math.ceil((RUNS * 2) / 3)

if (!canRunNginx) console.warn(`nginx-property: skipped, ${CANNOT_RUN_NGINX}`)
afterAll(removeSandboxes)

// ---------------------------------------------------------------------------------------------------
// What the templates write: the directive shapes of clean manifests that reach every template branch.

const CLEAN: ManifestInput[] = [
  {
    version: 1,
    name: 'shop',
    domain: 'shop.example.com',
    rateLimit: {rate: '600r/m', burst: 5, status: 429},
    services: {
      web: {kind: 'django', replicas: 2},
      api: {kind: 'django', port: 8001},
      payment: {kind: 'external', url: 'https://pay.example.com:8443/api/'},
      reading: {kind: 'external', url: 'http://reading.example.com'},
    },
    routes: [
      {path: '/', service: 'web'},
      {path: '/secure/', service: 'web', auth: 'basic'},
      {path: '/keyed/', service: 'api', auth: 'api-key', rateLimit: {rate: '5r/s', burst: 0}},
      {path: '/private/', service: 'api', auth: 'jwt', rateLimit: {rate: '1r/s', burst: 3}},
      {path: '/payment/', service: 'payment', auth: 'api-key'},
      {path: '/reading/', service: 'reading', auth: 'jwt'},
    ],
  },
  {
    version: 1,
    name: 'plain',
    domain: 'localhost',
    tls: {mode: 'off'},
    rateLimit: {status: 401, burst: 0},
    services: {web: {kind: 'django'}, ext: {kind: 'external', url: 'https://ext.example.com'}},
    routes: [
      {path: '/a/', service: 'web', auth: 'basic'},
      {path: '/b/', service: 'web', auth: 'api-key'},
      {path: '/c/', service: 'web', auth: 'jwt'},
      {path: '/d/', service: 'ext'},
    ],
  },
  {
    version: 1,
    name: 'tokens',
    domain: '127.0.0.1',
    tls: {mode: 'certbot', email: 'ops@example.com'},
    rateLimit: {status: 502},
    services: {web: {kind: 'django'}},
    routes: [{path: '/x/', service: 'web'}],
  },
]

function blockLabel(directive: Directive): string {
  if (directive.name !== 'location') return directive.name
  const first = directive.args[0] ?? ''
  const kind = ['=', '~', '~*', '^~'].includes(first) ? first : first.startsWith('@') ? '@' : 'prefix'
  return `location(${kind})`
}

/**
 * One string per directive: its file, the blocks around it, its name, and for each argument the
 * variables it reads (`external_<service>` counted as one name). An injected directive, an extra
 * argument or a variable where the templates put a literal each make a string no clean config has.
 */
function shapes(files: Array<{path: string; content: string}>): Set<string> {
  const found = new Set<string>()
  for (const file of files) {
    if (!file.path.endsWith('.conf')) continue
    for (const {directive, parents} of walk(parseNginxConfig(file.content))) {
      const args = directive.args.map((arg) =>
        variablesOf(arg)
          .map((name) => name.replace(/^external_\w+$/, 'external_*'))
          .join(','),
      )
      found.add(`${file.path}|${[...parents.map(blockLabel), directive.name].join('>')}(${args.join('|')})`)
    }
  }

  return found
}

// ---------------------------------------------------------------------------------------------------
// Values.

const HOSTILE_TEXT = [
  '$host',
  '${host}',
  '$1',
  ';',
  'a;b',
  'x;}y',
  ';internal;',
  '{',
  '}',
  '"',
  "'",
  '\\',
  ' ',
  '\t',
  '\n',
  '\r\n',
  '\u0000',
  '\u001b[31m',
  '\u202e',
  '#',
  'é',
  '%0a',
  '.',
  '..',
  '/../',
  '/./',
  '//',
  '@',
  '?x=1',
  '#frag',
  ':0',
  ':99999',
  'constructor',
  '__proto__',
  'toString',
  '',
]
const LONG = 'a'.repeat(5000)

/** A hostile fragment put at some place in an ordinary value: `https://a;b.com`, `/x/$host/`. */
const spliced = (ordinary: fc.Arbitrary<string>) =>
  fc
    .tuple(ordinary, fc.constantFrom(...HOSTILE_TEXT), fc.nat())
    .map(
      ([text, fragment, at]) => text.slice(0, at % (text.length + 1)) + fragment + text.slice(at % (text.length + 1)),
    )

const hostileText = fc.oneof(
  fc.constantFrom(...HOSTILE_TEXT, LONG, `https://${LONG}.com`, `/${LONG}/`),
  fc.string({maxLength: 12}),
  fc.string({unit: 'binary', maxLength: 12}),
  fc.webUrl({withQueryParameters: true, withFragments: true}),
)

const hostileNumber = fc.oneof(
  fc.constantFrom<unknown>(true, false, null, [3], {}, '80', '0x50', '1e3', 1e21, -1, 1.5, 2 ** 53, 65_536, 1e20),
  fc.double(),
  fc.integer(),
)

const segment = fc.stringMatching(/^[A-Za-z0-9._~-]{1,10}$/)
const ordinaryPath = fc.array(segment, {maxLength: 3}).map((parts) => `/${parts.map((part) => `${part}/`).join('')}`)
const ordinaryName = fc.oneof(
  fc.constantFrom('web', 'api', 'student-api', 'payment', 'live-reading', 'constructor'),
  fc.stringMatching(/^[a-z][a-z0-9-]{0,8}[a-z0-9]$/),
)
const ordinaryHost = fc.oneof(
  fc.domain(),
  fc.ipV4(),
  fc.constantFrom('localhost', 'api.localhost', 'API.Example.COM', 'ec2-3-91-1-123.compute.amazonaws.com'),
)
const ordinaryDomain = fc.oneof(ordinaryHost, fc.ipV6())
const ordinaryUrl = fc
  .tuple(
    fc.constantFrom('http', 'https'),
    fc.oneof(
      ordinaryHost,
      fc.ipV6().map((ip) => `[${ip}]`),
    ),
    fc.option(fc.integer({min: 1, max: 65_535}), {nil: undefined}),
    fc.array(segment, {maxLength: 3}),
    fc.boolean(),
  )
  .map(
    ([scheme, host, port, parts, slash]) =>
      `${scheme}://${host}${port === undefined ? '' : `:${port}`}${parts.length > 0 ? `/${parts.join('/')}` : ''}${slash ? '/' : ''}`,
  )
const rate = fc
  .tuple(fc.integer({min: 1, max: 1_000_000}), fc.constantFrom('s', 'm'))
  .map(([count, unit]) => `${count}r/${unit}`)

/** An ordinary value, or in a hostile manifest now and then a hostile one. */
function pick<T>(hostile: boolean, ordinary: fc.Arbitrary<T>, bad: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return hostile ? fc.oneof({arbitrary: ordinary, weight: 4}, {arbitrary: bad, weight: 1}) : ordinary
}

const text = (hostile: boolean, ordinary: fc.Arbitrary<string>) =>
  pick(hostile, ordinary, fc.oneof(spliced(ordinary), hostileText, hostileNumber))
const number = (hostile: boolean, ordinary: fc.Arbitrary<number>) => pick(hostile, ordinary, hostileNumber)

/** gateway.yaml as a user (or an attacker who controls the file) might write it. */
const manifestInput: fc.Arbitrary<unknown> = fc.boolean().chain((hostile) => {
  const service = fc.oneof(
    fc.record(
      {
        kind: fc.constant('django'),
        replicas: number(hostile, fc.integer({min: 1, max: 3})),
        port: number(hostile, fc.integer({min: 1, max: 65_535})),
        path: text(
          hostile,
          ordinaryPath.map((path) => `services${path}`.replace(/\/$/, '')),
        ),
      },
      {requiredKeys: ['kind']},
    ),
    fc.record({kind: fc.constant('external'), url: text(hostile, ordinaryUrl)}),
  )
  const names = fc.uniqueArray(text(hostile, ordinaryName), {minLength: 0, maxLength: 3})
  return fc.tuple(names, fc.array(service, {minLength: 3, maxLength: 3})).chain(([extra, specs]) => {
    const services: Record<string, unknown> = {web: {kind: 'django', replicas: 1}}
    extra.forEach((name, index) => (services[String(name)] = specs[index]))
    const serviceName = fc.constantFrom(...Object.keys(services))
    const route = fc.record(
      {
        path: text(hostile, ordinaryPath),
        service: pick(hostile, serviceName, hostileText),
        auth: pick(hostile, fc.constantFrom(...AUTH_MODES), hostileText),
        rateLimit: fc.record({rate: text(hostile, rate), burst: number(hostile, fc.integer({min: 0, max: 50}))}),
      },
      {requiredKeys: ['path', 'service']},
    )
    return fc.record(
      {
        version: fc.constant(1),
        name: text(hostile, ordinaryName),
        domain: text(hostile, ordinaryDomain),
        bind: text(hostile, fc.oneof(fc.ipV4(), fc.ipV6())),
        ports: fc.record(
          {http: number(hostile, fc.integer({min: 1, max: 65_535})), https: number(hostile, fc.constant(8443))},
          {requiredKeys: []},
        ),
        tls: fc.record({mode: pick(hostile, fc.constantFrom('self-signed', 'off'), hostileText)}),
        rateLimit: fc.record(
          {
            rate: text(hostile, rate),
            burst: number(hostile, fc.integer({min: 0, max: 1_000_000})),
            status: number(hostile, fc.integer({min: 400, max: 599})),
          },
          {requiredKeys: []},
        ),
        services: fc.constant(services),
        routes: fc.array(route, {minLength: 1, maxLength: 5}),
      },
      {requiredKeys: ['version', 'name', 'domain', 'services', 'routes']},
    )
  })
})

/** init's flags, as a script (or a pasted command) might pass them: always text. */
const initFlags: fc.Arbitrary<unknown> = fc.boolean().chain((hostile) => {
  const flagText = (ordinary: fc.Arbitrary<string>) =>
    hostile
      ? fc.oneof({arbitrary: ordinary, weight: 4}, {arbitrary: fc.oneof(spliced(ordinary), hostileText), weight: 1})
      : ordinary
  const decimal = (min: number, max: number) =>
    pick(
      hostile,
      fc.integer({min, max}).map(String),
      fc.constantFrom('0x50', '1e21', '99999999999999999999', '+8', '08', '1.5', '-1', '', ' 80'),
    )
  const names = fc.uniqueArray(
    ordinaryName.filter((name) => name !== 'web'),
    {maxLength: 3},
  )
  return fc.tuple(names, fc.nat()).chain(([extra, split]) => {
    const services = extra.slice(0, split % (extra.length + 1))
    const externals = extra.slice(services.length)
    const target = fc.constantFrom('web', ...extra)
    return fc.record(
      {
        domain: flagText(ordinaryDomain),
        'http-port': decimal(1, 65_535),
        rate: flagText(rate),
        burst: decimal(0, 1_000_000),
        replicas: decimal(1, 10),
        service: fc.constant(services).chain((given) => fc.tuple(...given.map((name) => flagText(fc.constant(name))))),
        external: fc
          .constant(externals)
          .chain((given) =>
            fc.tuple(
              ...given.map((name) =>
                fc.tuple(flagText(fc.constant(name)), flagText(ordinaryUrl)).map(([n, url]) => `${n}=${url}`),
              ),
            ),
          ),
        route: fc.array(
          fc
            .tuple(flagText(ordinaryPath), flagText(target), fc.constantFrom('', ':basic', ':api-key', ':jwt'))
            .map(([path, service, auth]) => `${path}=${service}${auth}`),
          {maxLength: 2},
        ),
      },
      {requiredKeys: []},
    )
  })
})

// ---------------------------------------------------------------------------------------------------

describe.skipIf(!canRunNginx)('every manifest is refused, or renders to a config NGINX reads as we meant', () => {
  let tree: Tree
  let allowed: Set<string>
  let accepted = 0
  let refused = 0

  beforeAll(async () => {
    tree = await prepareTree()
    allowed = new Set()
    for (const input of CLEAN) {
      const files = await layOutGateway(tree, parseManifest(input))
      const result = await nginxTest(tree.dir)
      // The reference itself must be a config NGINX accepts, or the comparison means nothing.
      expect(result.ok, result.output).toBe(true)
      for (const shape of shapes(files)) allowed.add(shape)
    }
  })

  /** The second invariant, for a manifest validation accepted. */
  async function checkRendered(manifest: Manifest, input: unknown): Promise<void> {
    const files = await layOutGateway(tree, manifest)
    const result = await nginxTest(tree.dir)
    const context = `\ninput: ${JSON.stringify(input)}\nnginx -t: ${result.output}`
    if (!result.ok || /\[(warn|emerg|alert)\]/.test(result.output))
      throw new Error(`nginx -t did not pass cleanly${context}`)

    const extra = [...shapes(files)].filter((shape) => !allowed.has(shape))
    if (extra.length > 0) throw new Error(`directives the templates do not write: ${extra.join(', ')}${context}`)

    // NGINX reads back the values we meant: each route is one prefix location with its own path, and
    // server_name names the domain.
    const gateway = parseNginxConfig(files.find((file) => file.path.endsWith('/gateway.conf'))!.content)
    const routes = [...walk(gateway)]
      .filter(({directive}) => directive.name === 'set' && directive.args[0] === '$gateway_route')
      .filter(({parents}) => parents.at(-1)?.name === 'location')
      .map(({directive, parents}) => ({location: parents.at(-1)!.args, value: directive.args[1]}))
    const paths = manifest.routes.map((route) => route.path)
    expect(routes.map((route) => route.value)).toEqual(paths)
    expect(routes.map((route) => route.location)).toEqual(paths.map((path) => [path]))
    // The catch-all servers (`_`) refuse every other name; the others name the domain (and localhost
    // only for a local domain).
    const names = [...new Set([manifest.domain, ...(isLocalDomain(manifest.domain) ? ['localhost'] : [])])]
    const serverNames = [...walk(gateway)]
      .filter(({directive}) => directive.name === 'server_name')
      .map(({directive}) => directive.args)
    const tls = manifest.tls.mode !== 'off'
    expect(serverNames).toEqual([...(tls ? [['_'], ['_'], names, names] : [['_'], names])])
  }

  /** The first invariant: a typed refusal whose text is safe to print. */
  function checkRefused(error: unknown, input: unknown): void {
    if (!(error instanceof UsageError))
      throw new Error(`not a clean refusal: ${String(error)}\ninput: ${JSON.stringify(input)}`)
    expect(error.exitCode).toBe(2)
    const lines =
      error instanceof ManifestError ? error.issues.map((issue) => `${issue.path}: ${issue.message}`) : [error.message]
    for (const line of lines) expect(line, JSON.stringify(input)).not.toMatch(/[\p{Cc}\p{Cf}]/u)
  }

  async function holds(property: fc.IAsyncProperty<[unknown]>, numRuns: number): Promise<void> {
    try {
      await fc.assert(property, {seed: SEED, numRuns})
    } catch (error) {
      // fast-check keeps the property's own error as the cause: print it, it says which invariant broke.
      const {message, cause} = error as Error
      throw new Error(`property failed with seed ${SEED} (rerun: PROPERTY_SEED=${SEED}):\n${message}\n${String(cause)}`)
    }
  }

  it('the directive check is real: it sees what the old renderer wrote for the issue 9 URLs', async () => {
    const input = structuredClone(CLEAN[0]!)
    input.services.payment = {kind: 'external', url: 'http://pay.example.com:8000'}
    const files = await layOutGateway(tree, parseManifest(input))
    expect([...shapes(files)].filter((shape) => !allowed.has(shape))).toEqual([])
    // What the renderer wrote before the URL grammar: the host as the WHATWG parser let it through.
    for (const host of ['$host', 'a;b.com', 'h.example.com/x;internal;']) {
      const injected = files.map((file) => ({...file, content: file.content.replaceAll('pay.example.com', host)}))
      expect(
        [...shapes(injected)].filter((shape) => !allowed.has(shape)),
        host,
      ).not.toEqual([])
    }
  })

  it(`gateway.yaml: ${RUNS} generated manifests (seed ${SEED})`, async () => {
    await holds(
      fc.asyncProperty(manifestInput, async (input) => {
        let manifest: Manifest
        try {
          manifest = parseManifest(input)
        } catch (error) {
          refused++
          return checkRefused(error, input)
        }

        accepted++
        await checkRendered(manifest, input)
      }),
      RUNS,
    )
    console.log(`nginx-property (gateway.yaml, seed ${SEED}): ${accepted} accepted and checked, ${refused} refused`)
    // A generator that only makes refusals would prove nothing about the rendered configs.
    expect(accepted).toBeGreaterThan(RUNS / 5)
    expect(refused).toBeGreaterThan(RUNS / 5)
  }, 1_800_000)

  it(`init flags: ${FLAG_RUNS} generated command lines (seed ${SEED})`, async () => {
    let flagAccepted = 0
    let flagRefused = 0
    await holds(
      fc.asyncProperty(initFlags, async (flags) => {
        let manifest: Manifest
        try {
          const answers = await resolveAnswers({dir: '/tmp/prop', flags: flags as Record<string, string>, yes: true})
          manifest = buildManifest(answers)
        } catch (error) {
          flagRefused++
          return checkRefused(error, flags)
        }

        flagAccepted++
        await checkRendered(manifest, flags)
      }),
      FLAG_RUNS,
    )
    console.log(
      `nginx-property (init flags, seed ${SEED}): ${flagAccepted} accepted and checked, ${flagRefused} refused`,
    )
    expect(flagAccepted).toBeGreaterThan(FLAG_RUNS / 5)
    expect(flagRefused).toBeGreaterThan(FLAG_RUNS / 5)
  }, 1_800_000)
})
