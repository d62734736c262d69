import {describe, expect, it} from 'vitest'

import {ManifestError, UsageError} from '../../src/errors.js'
import {resolveAnswers, type Asker} from '../../src/manifest/answers.js'
import {buildManifest} from '../../src/manifest/from-answers.js'

const defaults = (flags: Record<string, string | string[]> = {}) =>
  resolveAnswers({dir: '/tmp/My_Project', flags, yes: true})

describe('init options', () => {
  it('--yes alone gives the documented defaults', async () => {
    const manifest = buildManifest(await defaults())
    expect(manifest.name).toBe('my-project')
    expect(manifest.routes).toEqual([
      {path: '/', service: 'web', auth: 'none'},
      {path: '/secure/', service: 'web', auth: 'basic'},
    ])
    expect(manifest.rateLimit).toEqual({rate: '10r/s', burst: 20, status: 503})
    expect(manifest.services.web).toMatchObject({kind: 'django', replicas: 2})
    expect(manifest.bind).toBe('127.0.0.1')
    expect(manifest.tls.mode).toBe('self-signed')
  })

  it('--cache PATH=TTL caches that route, and refuses an unknown route or a bad TTL naming the flag', async () => {
    const manifest = buildManifest(await defaults({cache: ['/=30s', '/secure/=5m']}))
    expect(manifest.routes).toEqual([
      {path: '/', service: 'web', auth: 'none', cache: {ttl: '30s', credentialed: 'bypass'}},
      {path: '/secure/', service: 'web', auth: 'basic', cache: {ttl: '5m', credentialed: 'bypass'}},
    ])
    expect(manifest.cache).toBeUndefined()
    await expect(defaults({cache: ['/nope/=30s']}).then((answers) => buildManifest(answers))).rejects.toThrow(
      /--cache.*no route "\/nope\/"/s,
    )
    for (const bad of ['/=30', '/=0s', '/=8d', '/=1e3s', '/=30s;', '30s', '/=$ttl'])
      await expect(defaults({cache: [bad]}), bad).rejects.toThrow(UsageError)
  })

  it('--metrics PORT turns the exporter on at 127.0.0.1:PORT, and refuses a bad or public port naming the flag', async () => {
    expect(buildManifest(await defaults()).metrics).toBeUndefined()
    const manifest = buildManifest(await defaults({metrics: '9113'}))
    expect(manifest.metrics).toEqual({enabled: true, port: 9113, bind: '127.0.0.1'})
    for (const bad of ['0', '70000', '0x2399', '9113.0', 'on', '9113;', ''])
      await expect(defaults({metrics: bad}), bad).rejects.toThrow(/^--metrics: must be a port number/)
    const clash = await defaults({metrics: '8443'})
      .then((answers) => buildManifest(answers))
      .catch((error) => error)
    expect(clash).toBeInstanceOf(ManifestError)
    expect(clash.message).toMatch(/--metrics \(metrics\.port\): must differ from the gateway's public ports/)
  })

  it('takes jwt as a route auth mode', async () => {
    const manifest = buildManifest(await defaults({route: ['/private/=web:jwt']}))
    expect(manifest.routes).toContainEqual({path: '/private/', service: 'web', auth: 'jwt'})
  })

  it('gives each extra service and external a /NAME/ route unless --route says otherwise', async () => {
    const manifest = buildManifest(
      await defaults({
        service: ['live-reading', 'student-api'],
        external: ['payment=https://pay.example.com'],
        route: ['/pay/=payment:api-key', '/secure/=student-api:basic'],
      }),
    )
    expect(manifest.routes).toEqual([
      {path: '/', service: 'web', auth: 'none'},
      {path: '/live-reading/', service: 'live-reading', auth: 'none'},
      {path: '/pay/', service: 'payment', auth: 'api-key'},
      {path: '/secure/', service: 'student-api', auth: 'basic'},
    ])
    expect(manifest.services.payment).toEqual({kind: 'external', url: 'https://pay.example.com'})
  })

  it.each([
    [{name: 'Bad_Name'}, /^--name: must be DNS-safe/],
    [{domain: 'a b'}, /^--domain: must be a host name/],
    [{'http-port': '0'}, /^--http-port: must be a port number from 1 to 65535/],
    [{'https-port': 'x'}, /^--https-port: must be a port number from 1 to 65535, in decimal digits/],
    [{rate: '10 per second'}, /^--rate: must look like 10r\/s/],
    [{burst: '-1'}, /^--burst: must be a whole number from 0 to 1000000, in decimal digits/],
    [{replicas: '0'}, /^--replicas: must be a whole number from 1 to 10/],
    [{replicas: '1.5'}, /^--replicas: must be a whole number from 1 to 10, in decimal digits/],
    [{tls: 'letsencrypt'}, /^--tls: must be one of self-signed, certbot, off/],
    [{external: ['payment=ftp://x.example.com']}, /^--external: must use http:\/\/ or https:\/\//],
    [{external: ['payment']}, /^--external: must be NAME=URL/],
    [{route: ['/x/=nope']}, /^--route \(routes\[2\]\.service\): no service named "nope"/],
    [{route: ['/x/=web:oauth']}, /^--route: auth must be one of none, basic, api-key, jwt \(got "\/x\/=web:oauth"\)/],
    [{route: ['/=web', '/=web']}, /^--route \(routes\[\d\]\.path\): duplicate path/],
    [{'http-port': '8443'}, /^--https-port \(ports\.https\): http and https must be different ports/],
    [{service: ['Web2']}, /^--service: must be DNS-safe/],
    [{service: ['gateway']}, /^--service \(services\.gateway\): "gateway" is reserved/],
    [{tls: 'certbot'}, /^--email: required with --tls certbot/],
  ])('rejects %o naming the flag', async (flags, expected) => {
    const error = await defaults(flags as Record<string, string>)
      .then(buildManifest)
      .then(
        () => undefined,
        (caught: unknown) => caught,
      )
    expect(error).toBeInstanceOf(UsageError)
    expect((error as UsageError).exitCode).toBe(2)
    const text =
      error instanceof ManifestError
        ? error.issues.map((issue) => `${issue.path}: ${issue.message}`).join('\n')
        : (error as Error).message
    expect(text).toMatch(expected)
  })

  it('without a terminal and without --yes, fails naming --yes instead of waiting', async () => {
    const error = await resolveAnswers({dir: '/tmp/x', flags: {name: 'x'}, yes: false}).catch(
      (caught: unknown) => caught,
    )
    expect(error).toBeInstanceOf(UsageError)
    expect((error as UsageError).message).toMatch(/--domain/)
    expect((error as UsageError).hint).toMatch(/--yes/)
  })

  it('asks only for what flags did not give, validating each answer with the schema', async () => {
    const asked: string[] = []
    const ask: Asker = {
      async input({message, default: fallback, validate}) {
        asked.push(message)
        if (message.startsWith('Rate limit')) {
          expect(validate('fast')).toMatch(/10r\/s/)
          return '5r/s'
        }

        return fallback ?? ''
      },
      async select({default: fallback}) {
        return fallback ?? ''
      },
    }
    const answers = await resolveAnswers({
      dir: '/tmp/demo',
      flags: {name: 'given', 'http-port': '9080'},
      yes: false,
      ask,
    })
    expect(answers.rate).toBe('5r/s')
    expect(answers.name).toBe('given')
    expect(asked.some((message) => message.startsWith('Project name'))).toBe(false)
    expect(asked.some((message) => message.startsWith('Host port for plain HTTP'))).toBe(false)
  })
})
