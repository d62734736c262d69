import {cpSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {beforeAll, describe, expect, it} from 'vitest'
import {parse} from 'yaml'

import {composeNetworkHash, composeServiceHash, networkJson, serviceJson} from '../../src/docker/compose/hash.js'
import {normalizeProject} from '../../src/docker/compose/project.js'
import {
  composeProject,
  desiredContainers,
  desiredNetworks,
  readProjectEnv,
  resolveEnvironment,
  type ProjectContext,
} from '../../src/docker/spec.js'
import {loadManifest} from '../../src/manifest/load.js'
import {buildStackSpec} from '../../src/manifest/stack.js'
import {composeObject} from '../../src/render/compose.js'
import {runCliAsync, tempDir} from '../helpers/cli.js'
import {compose, ensureComposeV2} from '../helpers/compose.js'

/**
 * The config hash is Compose v2's, not an approximation: for generated projects and for a file with
 * the hardening settings (read_only, tmpfs, cap_drop, limits, logging, secrets, an internal network),
 * what create-gateway computes equals what the real `docker compose config` (v2.40) prints: the
 * normalized service JSON byte for byte, `--hash`, and the network hashes. No engine is needed.
 */

let version = ''

beforeAll(() => {
  version = ensureComposeV2()
}, 320_000)

/** `docker compose config --hash '*'`: `service hash` lines. */
async function composeHashes(dir: string): Promise<Record<string, string>> {
  const result = await compose(['config', '--hash', '*'], dir)
  expect(result.status, result.stderr).toBe(0)
  return Object.fromEntries(
    result.stdout
      .trim()
      .split('\n')
      .map((line) => line.split(' ') as [string, string]),
  )
}

/** `docker compose config --format json`, with Go's HTML-safe escaping put back for byte comparison. */
async function composeConfig(dir: string): Promise<{
  services: Record<string, unknown>
  networks: Record<string, unknown>
}> {
  const result = await compose(['config', '--format', 'json'], dir)
  expect(result.status, result.stderr).toBe(0)
  return JSON.parse(result.stdout) as {services: Record<string, unknown>; networks: Record<string, unknown>}
}

function goEscaped(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

async function projectContext(dir: string): Promise<ProjectContext> {
  const manifest = await loadManifest(dir)
  const stack = buildStackSpec(manifest)
  const dotenv = await readProjectEnv(dir)
  return {
    project: manifest.name,
    dir,
    network: stack.network,
    imageIds: {},
    environment: Object.fromEntries(stack.services.map((spec) => [spec.service, resolveEnvironment(spec, dotenv, {})])),
    compose: composeObject(manifest),
    variables: dotenv,
  }
}

describe(`the config hash of generated projects equals Compose v2's`, () => {
  it.each([
    ['the default project', []],
    [
      'several services, an external one, api-key and jwt routes',
      [
        '--service',
        'student-api',
        '--external',
        'payment=https://payment.example.com',
        '--route',
        '/payment/=payment:api-key',
        '--route',
        '/private/=web:jwt',
        '--replicas',
        '3',
      ],
    ],
    [
      'cached routes (the gateway gets a tmpfs for its cache)',
      ['--route', '/keyed/=web:api-key', '--cache', '/=30s', '--cache', '/keyed/=1m'],
    ],
    ['TLS off on other ports and another bind address', ['--tls', 'off', '--http-port', '8088', '--bind', '0.0.0.0']],
    [
      'the metrics profile (an exporter with a command, no healthcheck, a loopback port)',
      ['--metrics', '9113', '--bind', '0.0.0.0'],
    ],
  ])('%s', async (_what, flags) => {
    const dir = join(tempDir(), 'hash-check')
    const init = await runCliAsync(['init', dir, '--yes', ...flags])
    expect(init.status, init.stderr).toBe(0)
    // Compose reads .env from the project directory; an exported variable of the same name would win there.
    const context = await projectContext(dir)
    const stack = buildStackSpec(await loadManifest(dir))
    const ours = Object.fromEntries(
      desiredContainers(stack, context).map((container) => [container.service, container.hash]),
    )
    expect(ours).toEqual(await composeHashes(dir))

    const config = await composeConfig(dir)
    const project = composeProject(context)
    for (const [name, service] of Object.entries(project.services).filter(([name]) => name in config.services))
      expect(serviceJson(service), name).toBe(goEscaped(config.services[name]))
    for (const network of desiredNetworks(context, stack)) {
      expect(networkJson(project.networks[network.key]!)).toBe(goEscaped(config.networks[network.key]))
      expect(network.labels['com.docker.compose.config-hash']).toBe(composeNetworkHash(project.networks[network.key]!))
    }
  })
})

describe(`a hardened compose file (what issue 10 adds) hashes as Compose v2 does`, () => {
  it('read_only, tmpfs, cap_drop, security_opt, limits, logging, ulimits, secrets, an internal network', async () => {
    const dir = join(tempDir(), 'hardened')
    mkdirSync(join(dir, 'secrets'), {recursive: true})
    writeFileSync(join(dir, 'secrets/key.txt'), 'not-a-real-secret\n')
    cpSync(join(import.meta.dirname, 'fixtures/compose-hardened.yml'), join(dir, 'docker-compose.yml'))
    writeFileSync(join(dir, '.env'), 'COMPOSE_PROJECT_NAME=hardened\n')
    const project = normalizeProject(
      parse(readFileSync(join(dir, 'docker-compose.yml'), 'utf8')) as object as Record<string, unknown>,
      {
        project: 'hardened',
        dir,
      },
    )
    const hashes = await composeHashes(dir)
    const config = await composeConfig(dir)
    for (const [name, service] of Object.entries(project.services)) {
      expect(serviceJson(service), name).toBe(goEscaped(config.services[name]))
      expect(composeServiceHash(service), name).toBe(hashes[name])
    }

    for (const [key, network] of Object.entries(project.networks))
      expect(networkJson(network), key).toBe(goEscaped(config.networks[key]))
    expect(version).toMatch(/^2\.40\./)
  })
})
