import {describe, expect, it} from 'vitest'

import {ManifestError} from '../../src/errors.js'
import {parseManifest, serializeManifest} from '../../src/manifest/load.js'
import {gunicornWorkers} from '../../src/manifest/stack.js'
import {parse} from 'yaml'

const valid = () => ({
  version: 1,
  name: 'my-api',
  domain: 'api.localhost',
  bind: '127.0.0.1',
  ports: {http: 8080, https: 8443},
  tls: {mode: 'self-signed'},
  rateLimit: {rate: '10r/s', burst: 20, status: 503},
  services: {
    web: {kind: 'django', path: 'services/web', replicas: 2, port: 8000},
    payment: {kind: 'external', url: 'http://ec2-3-91-1-123.compute.amazonaws.com'},
  },
  routes: [
    {path: '/', service: 'web'},
    {path: '/secure/', service: 'web', auth: 'basic'},
    {path: '/payment/', service: 'payment', auth: 'api-key', rateLimit: {rate: '5r/s', burst: 10}},
  ],
  images: {python: 'python:3.12-slim', nginx: 'nginx:1.30'},
})

function issuesOf(mutate: (input: any) => void): string[] {
  const input = valid()
  mutate(input)
  try {
    parseManifest(input)
  } catch (error) {
    expect(error).toBeInstanceOf(ManifestError)
    expect((error as ManifestError).exitCode).toBe(2)
    return (error as ManifestError).issues.map((issue) => `${issue.path}: ${issue.message}`)
  }

  throw new Error('expected the manifest to be rejected')
}

describe('manifest schema', () => {
  it('accepts a full example manifest and fills defaults', () => {
    const input: any = valid()
    delete input.bind
    delete input.images
    delete input.rateLimit
    const manifest = parseManifest(input)
    expect(manifest.bind).toBe('127.0.0.1')
    expect(manifest.rateLimit).toEqual({rate: '10r/s', burst: 20, status: 503})
    expect(manifest.images).toEqual({
      python: 'python:3.12-slim',
      nginx: 'nginx:1.30',
      certbot: 'certbot/certbot:v5.1.0',
      exporter: 'nginx/nginx-prometheus-exporter:1.5.3',
    })
    // The metrics profile is off unless asked for.
    expect(manifest.metrics).toBeUndefined()
    expect(manifest.routes[0]!.auth).toBe('none')
    // The hardening knobs: no trusted proxy, NGINX's 1m body limit, sane container limits.
    expect(manifest.trustedProxies).toEqual([])
    expect(manifest.clientMaxBodySize).toBe('1m')
    expect(manifest.services.web).toMatchObject({limits: {memory: '512m', cpus: 1}})
    expect(manifest.gateway).toEqual({limits: {memory: '256m', cpus: 1}})
  })

  it("fills the metrics profile's defaults: the exporter on 127.0.0.1:9113", () => {
    const manifest = parseManifest({...valid(), metrics: {enabled: true}})
    expect(manifest.metrics).toEqual({enabled: true, port: 9113, bind: '127.0.0.1'})
    // Off, the port may be anything: nothing listens there.
    expect(parseManifest({...valid(), metrics: {enabled: false, port: 8080}}).metrics?.enabled).toBe(false)
  })

  it('derives Gunicorn workers from the limits: 2 x CPUs + 1, as memory allows, at most 8', () => {
    expect(gunicornWorkers({memory: '512m', cpus: 1})).toBe(3)
    expect(gunicornWorkers({memory: '512m', cpus: 0.5})).toBe(2)
    expect(gunicornWorkers({memory: '128m', cpus: 4})).toBe(1)
    expect(gunicornWorkers({memory: '4g', cpus: 16})).toBe(8)
  })

  it('round-trips through YAML', () => {
    const manifest = parseManifest(valid())
    const text = serializeManifest(manifest)
    expect(text).toMatch(/^# create-gateway manifest/)
    expect(parseManifest(parse(text))).toEqual(manifest)
  })

  it.each([
    ['name not DNS-safe', (m: any) => (m.name = 'My_API'), /^name: must be DNS-safe/],
    ['domain with spaces', (m: any) => (m.domain = 'api example.com'), /^domain: must be a host name/],
    ['port out of range', (m: any) => (m.ports.http = 70000), /^ports\.http: must be a port number from 1 to 65535/],
    ['http == https', (m: any) => (m.ports.https = 8080), /^ports\.https: http and https must be different ports/],
    ['rate not like 10r/s', (m: any) => (m.rateLimit.rate = '10/s'), /^rateLimit\.rate: must look like 10r\/s/],
    ['burst < 0', (m: any) => (m.rateLimit.burst = -1), /^rateLimit\.burst: must be a whole number from 0 to 1000000/],
    [
      'route to an unknown service',
      (m: any) => (m.routes[2].service = 'pay'),
      /^routes\[2\]\.service: no service named "pay"/,
    ],
    ['duplicate route paths', (m: any) => (m.routes[1].path = '/'), /^routes\[1\]\.path: duplicate path "\/"/],
    [
      'unknown auth',
      (m: any) => (m.routes[1].auth = 'oauth'),
      /^routes\[1\]\.auth: must be one of none, basic, api-key/,
    ],
    [
      'replicas < 1',
      (m: any) => (m.services.web.replicas = 0),
      /^services\.web\.replicas: must be a whole number from 1 to 10/,
    ],
    [
      'external URL not http/https',
      (m: any) => (m.services.payment.url = 'ftp://files.example.com'),
      /^services\.payment\.url: must use http:\/\/ or https:\/\//,
    ],
    [
      'route path without trailing slash',
      (m: any) => (m.routes[2].path = '/payment'),
      /^routes\[2\]\.path: must start and end with "\/"/,
    ],
    [
      'per-route rate',
      (m: any) => (m.routes[2].rateLimit.rate = 'fast'),
      /^routes\[2\]\.rateLimit\.rate: must look like/,
    ],
    [
      'unknown kind',
      (m: any) => (m.services.payment.kind = 'lambda'),
      /^services\.payment\.kind: kind must be django or external/,
    ],
    [
      'reserved service name',
      (m: any) => (m.services.gateway = {kind: 'django'}),
      /^services\.gateway: "gateway" is reserved/,
    ],
    [
      "the exporter's service name",
      (m: any) => (m.services['nginx-exporter'] = {kind: 'django'}),
      /^services\.nginx-exporter: "nginx-exporter" is reserved/,
    ],
    [
      'metrics on a public port',
      (m: any) => (m.metrics = {enabled: true, port: 8443}),
      /^metrics\.port: must differ from the gateway's public ports \(8080, 8443\)/,
    ],
    [
      'metrics switched on with text',
      (m: any) => (m.metrics = {enabled: 'yes'}),
      /^metrics\.enabled: must be true or false/,
    ],
    [
      'a metrics port as text',
      (m: any) => (m.metrics = {enabled: true, port: '9113'}),
      /^metrics\.port: must be a port/,
    ],
    [
      'a metrics bind that is not an address',
      (m: any) => (m.metrics = {enabled: true, bind: 'localhost; rm -rf /'}),
      /^metrics\.bind: must be an IP address/,
    ],
    ['an unknown metrics field', (m: any) => (m.metrics = {enabled: true, path: '/x'}), /^metrics: Unrecognized key/],
    ['certbot without email', (m: any) => (m.tls = {mode: 'certbot'}), /^tls\.email: is required/],
    ['unknown field', (m: any) => (m.extra = true), /Unrecognized key/],
    [
      'reserved route path',
      (m: any) => (m.routes[2].path = '/_gateway/'),
      /^routes\[2\]\.path: \/_gateway\/ is reserved/,
    ],
    ['wrong version', (m: any) => (m.version = 2), /^version: must be 1/],
    [
      'a trusted proxy that is not a network',
      (m: any) => (m.trustedProxies = ['10.0.0.0/33']),
      /^trustedProxies\[0\]: must have a prefix length from 0 to 32/,
    ],
    [
      'a trusted proxy with NGINX syntax in it',
      (m: any) => (m.trustedProxies = ['10.0.0.0/8; deny all']),
      /^trustedProxies\[0\]: must be an address or network/,
    ],
    ['a body size of 0 (unlimited)', (m: any) => (m.clientMaxBodySize = '0'), /^clientMaxBodySize: must be a size/],
    [
      'a memory limit without a unit',
      (m: any) => (m.services.web.limits = {memory: '512'}),
      /^services\.web\.limits\.memory: must be a size such as 256m/,
    ],
    [
      'a memory limit too small to run',
      (m: any) => (m.gateway = {limits: {memory: '8m'}}),
      /^gateway\.limits\.memory: must be at least 32m/,
    ],
    [
      'CPUs as text',
      (m: any) => (m.services.web.limits = {cpus: '2'}),
      /^services\.web\.limits\.cpus: must be a number of CPUs/,
    ],
    [
      'CPUs with three decimals',
      (m: any) => (m.services.web.limits = {cpus: 0.125}),
      /^services\.web\.limits\.cpus: must have at most two decimals/,
    ],
  ])('rejects %s, naming the field', (_name, mutate, expected) => {
    expect(issuesOf(mutate)).toEqual(expect.arrayContaining([expect.stringMatching(expected)]))
  })

  it('reports every bad field at once', () => {
    const issues = issuesOf((m) => {
      m.name = 'Bad Name'
      m.routes[0].service = 'nope'
    })
    expect(issues).toHaveLength(2)
  })
})
