import {createHash} from 'node:crypto'

import {describe, expect, it} from 'vitest'

import {composeContainer, effectiveCapabilities} from '../../src/docker/compose/container.js'
import {goDuration, goFloat32} from '../../src/docker/compose/go-json.js'
import {composeServiceHash, serviceJson} from '../../src/docker/compose/hash.js'
import {normalizeProject} from '../../src/docker/compose/project.js'
import {parseBytes, parseDuration} from '../../src/docker/compose/read.js'
import {normalizeService} from '../../src/docker/compose/service.js'
import {UsageError} from '../../src/errors.js'

/**
 * The Go-side formats the config hash depends on. Whole files are checked against the real
 * `docker compose config` in test/integration/compose-v2.test.ts; these pin the pieces without it.
 */

const options = {project: 'demo', dir: '/srv/demo'}

describe("Go's formats, as Compose marshals the service config", () => {
  it('writes durations as time.Duration.String()', () => {
    const s = 1_000_000_000
    expect([0, 5 * s, 90 * s, 3600 * s, 500_000_000, 1_500, 2 * s + 500_000_000].map(goDuration)).toEqual([
      '0s',
      '5s',
      '1m30s',
      '1h0m0s',
      '500ms',
      '1.5µs',
      '2.5s',
    ])
    expect(parseDuration('1m30s', 'x')).toBe(90 * s)
    expect(parseDuration('1h', 'x')).toBe(3600 * s)
    expect(() => parseDuration('5 seconds', 'x')).toThrow(UsageError)
  })

  it('writes float32 the shortest way that reads back, and byte sizes in binary units', () => {
    expect([0.5, 0.1, 1, 1.25, 1 / 3].map(goFloat32)).toEqual(['0.5', '0.1', '1', '1.25', '0.33333334'])
    expect(parseBytes('256m', 'x')).toBe(268_435_456)
    expect(parseBytes('1g', 'x')).toBe(1_073_741_824)
    expect(parseBytes('128M', 'x')).toBe(134_217_728)
  })

  it("escapes <, > and & as Go's encoding/json does, and sorts map keys", () => {
    const service = normalizeService('web', {image: 'x', environment: {B: 'a<b&c>', A: '1'}}, options)
    expect(serviceJson(service)).toBe(
      '{"command":null,"entrypoint":null,"environment":{"A":"1","B":"a\\u003cb\\u0026c\\u003e"},"image":"x","networks":{"default":null}}',
    )
    expect(composeServiceHash(service)).toBe(createHash('sha256').update(serviceJson(service)).digest('hex'))
  })
})

describe('normalization', () => {
  it('expands short syntax the way compose-go does (ports, binds, depends_on)', () => {
    const service = normalizeService(
      'gateway',
      {
        image: 'nginx',
        ports: ['127.0.0.1:8080:80', '[::1]:8443:443/tcp'],
        volumes: ['./conf:/etc/nginx/conf.d/:ro'],
        depends_on: ['web'],
      },
      options,
    )
    expect(service.ports).toEqual([
      {mode: 'ingress', host_ip: '127.0.0.1', target: 80, published: '8080', protocol: 'tcp'},
      {mode: 'ingress', host_ip: '::1', target: 443, published: '8443', protocol: 'tcp'},
    ])
    expect(service.volumes).toEqual([
      {
        type: 'bind',
        source: '/srv/demo/conf',
        target: '/etc/nginx/conf.d',
        read_only: true,
        bind: {create_host_path: true},
      },
    ])
    expect(service.depends_on).toEqual({web: {condition: 'service_started', required: true}})
  })

  it('leaves replicas, build and depends_on out of the hash, as Compose does', () => {
    const base = normalizeService('web', {image: 'x', deploy: {replicas: 2}}, options)
    const other = normalizeService(
      'web',
      {image: 'x', deploy: {replicas: 5}, build: {context: '.'}, depends_on: {db: {condition: 'service_healthy'}}},
      options,
    )
    expect(composeServiceHash(other)).toBe(composeServiceHash(base))
    expect(composeServiceHash(normalizeService('web', {image: 'y', deploy: {replicas: 2}}, options))).not.toBe(
      composeServiceHash(base),
    )
  })

  it('refuses a key it does not model instead of hashing it differently from Compose', () => {
    expect(() => normalizeService('web', {image: 'x', blkio_config: {weight: 10}}, options)).toThrow(
      /services\.web\.blkio_config: not modelled/,
    )
  })
})

describe('create options, as Compose v2 sends them', () => {
  it("normalizes capabilities as docker/cli's EffectiveCapAddCapDrop does (Compose's containers show CAP_ names)", () => {
    expect(effectiveCapabilities(['setuid', 'CHOWN', 'cap_kill'], ['ALL'])).toEqual({
      add: ['CAP_CHOWN', 'CAP_KILL', 'CAP_SETUID'],
      drop: ['ALL'],
    })
    // ALL on one side replaces the rest of it; a name on both sides cancels out.
    expect(effectiveCapabilities(['ALL', 'CHOWN'], ['NET_RAW', 'CAP_MKNOD', 'ALL'])).toEqual({add: [], drop: []})
    expect(effectiveCapabilities(['NET_ADMIN'], ['net_admin', 'MKNOD'])).toEqual({add: [], drop: ['CAP_MKNOD']})
  })

  it('maps the hardening settings: read-only root, tmpfs, capabilities, limits, logging, secrets as files', () => {
    const project = normalizeProject(
      {
        services: {
          web: {
            image: 'app',
            read_only: true,
            tmpfs: ['/tmp:size=16m'],
            cap_drop: ['ALL'],
            security_opt: ['no-new-privileges:true'],
            mem_limit: '256m',
            cpus: 0.5,
            pids_limit: 128,
            logging: {driver: 'json-file', options: {'max-size': '10m'}},
            secrets: ['key'],
            networks: ['internal', 'default'],
          },
        },
        networks: {internal: {internal: true}},
        secrets: {key: {file: './secrets/key.txt'}},
      },
      options,
    )
    const {options: create, extraNetworks} = composeContainer(project.services.web!, {
      project,
      configFile: '/srv/demo/docker-compose.yml',
      number: 1,
      imageId: 'sha256:1',
    })
    expect(create.HostConfig).toMatchObject({
      ReadonlyRootfs: true,
      Tmpfs: {'/tmp': 'size=16m'},
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      Memory: 268_435_456,
      NanoCpus: 500_000_000,
      PidsLimit: 128,
      LogConfig: {Type: 'json-file', Config: {'max-size': '10m'}},
      Mounts: [
        {
          Type: 'bind',
          Source: '/srv/demo/secrets/key.txt',
          Target: '/run/secrets/key',
          ReadOnly: true,
          BindOptions: {},
        },
      ],
      NetworkMode: 'demo_default',
    })
    expect(extraNetworks).toEqual([{name: 'demo_internal', endpoint: {Aliases: ['demo-web-1', 'web']}}])
  })
})
