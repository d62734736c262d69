import {describe, expect, it} from 'vitest'

import type {ContainerState} from '../../src/docker/engine.js'
import {
  desiredContainers,
  interpolate,
  LABELS,
  planContainers,
  resolveEnvironment,
  startWaves,
  type DesiredContainer,
  type ProjectContext,
} from '../../src/docker/spec.js'
import {UsageError} from '../../src/errors.js'
import {buildStackSpec} from '../../src/manifest/stack.js'
import {runningContainer} from '../helpers/fake-engine.js'
import {testManifest} from '../helpers/stack-fixture.js'

function context(overrides: Partial<ProjectContext> = {}): ProjectContext {
  const stack = buildStackSpec(testManifest())
  return {
    project: 'demo',
    dir: '/srv/demo',
    network: 'demo_default',
    imageIds: {web: 'sha256:web1', gateway: 'sha256:nginx1'},
    environment: Object.fromEntries(
      stack.services.map((spec) => [spec.service, resolveEnvironment(spec, {WEB_SECRET_KEY: 'k'}, {})]),
    ),
    ...overrides,
  }
}

function desired(overrides: Partial<ProjectContext> = {}, manifest = testManifest()): DesiredContainer[] {
  return desiredContainers(buildStackSpec(manifest), context(overrides))
}

function running(want: DesiredContainer, extra: Partial<ContainerState> = {}): ContainerState {
  return runningContainer({
    id: `id-${want.name}`,
    name: want.name,
    labels: {...want.options.Labels},
    image: want.options.Image!,
    imageId: 'x',
    ...extra,
  })
}

describe('${VAR} interpolation from .env, as Compose does it', () => {
  const vars = {KEY: 'abc', EMPTY: ''}
  it('resolves ${VAR}, $VAR, defaults and $$', () => {
    expect(interpolate('${KEY}-$KEY', vars, 'x')).toBe('abc-abc')
    expect(interpolate('${MISSING:-dflt} ${EMPTY:-e} ${EMPTY-f}', vars, 'x')).toBe('dflt e ')
    expect(interpolate('${KEY:+set}${MISSING:+no}', vars, 'x')).toBe('set')
    expect(interpolate('cost: $$5 and $${KEY}', vars, 'x')).toBe('cost: $5 and ${KEY}')
  })

  it('fails with a UsageError naming the variable and the field', () => {
    const error = (() => {
      try {
        interpolate('${WEB_SECRET_KEY}', {}, 'services.web.environment.DJANGO_SECRET_KEY')
      } catch (error_) {
        return error_ as UsageError
      }
    })()
    expect(error).toBeInstanceOf(UsageError)
    expect(error?.message).toBe(
      'services.web.environment.DJANGO_SECRET_KEY uses ${WEB_SECRET_KEY}, but .env does not set WEB_SECRET_KEY',
    )
    expect(() => interpolate('${X:?is required}', {}, 'f')).toThrow('f: variable X is not set: is required')
  })

  it('lets the shell win over .env, like Compose', () => {
    const spec = {...buildStackSpec(testManifest()).services[0]!, environment: {DJANGO_SECRET_KEY: '${WEB_SECRET_KEY}'}}
    expect(
      resolveEnvironment(spec, {WEB_SECRET_KEY: 'from-file'}, {WEB_SECRET_KEY: 'from-shell'}).DJANGO_SECRET_KEY,
    ).toBe('from-shell')
    expect(resolveEnvironment(spec, {WEB_SECRET_KEY: 'from-file'}, {}).DJANGO_SECRET_KEY).toBe('from-file')
  })
})

describe('container definitions', () => {
  it('names replicas then the gateway like the upstreams file, with exactly the labels Compose v2 sets', () => {
    const containers = desired({runId: 'run-42'})
    expect(containers.map((container) => container.name)).toEqual(['demo-web-1', 'demo-web-2', 'demo-gateway-1'])
    const web2 = containers[1]!
    expect(web2.options.Labels).toEqual({
      'com.docker.compose.project': 'demo',
      'com.docker.compose.service': 'web',
      'com.docker.compose.container-number': '2',
      'com.docker.compose.oneoff': 'False',
      'com.docker.compose.config-hash': web2.hash,
      'com.docker.compose.image': 'sha256:web1',
      'com.docker.compose.depends_on': '',
      'com.docker.compose.project.working_dir': '/srv/demo',
      'com.docker.compose.project.config_files': '/srv/demo/docker-compose.yml',
      'com.docker.compose.version': '2.40.3',
      'dev.create-gateway.run-id': 'run-42',
    })
    const gateway = containers[2]!
    expect(gateway.options.Labels?.['com.docker.compose.depends_on']).toBe('web:service_healthy:true')
    // Compose's aliases: the container name first, then the service name.
    // The services sit on the internal network only; the gateway joins it after its public one.
    expect(web2.options.NetworkingConfig?.EndpointsConfig?.demo_internal?.Aliases).toEqual(['demo-web-2', 'web'])
    expect(Object.keys(gateway.options.NetworkingConfig?.EndpointsConfig ?? {})).toEqual(['demo_default'])
    expect(gateway.extraNetworks.map((network) => network.name)).toEqual(['demo_internal'])
    // SECRET_KEY reaches Django as a file (a read-only bind of the project's secret), not in Env.
    expect(web2.options.Env).toContain('DJANGO_SECRET_KEY_FILE=/run/secrets/web-secret-key')
    expect(web2.options.Env?.some((entry) => entry.startsWith('DJANGO_SECRET_KEY='))).toBe(false)
    expect(web2.options.HostConfig?.Mounts).toContainEqual(
      expect.objectContaining({
        Source: '/srv/demo/secrets/web-secret-key',
        Target: '/run/secrets/web-secret-key',
        ReadOnly: true,
      }),
    )
    // Locked down: read-only root with a tmpfs, no capabilities, no new privileges, limits, capped logs.
    expect(web2.options.HostConfig).toMatchObject({
      ReadonlyRootfs: true,
      Tmpfs: {'/tmp': 'size=64m'},
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      Memory: 512 * 1024 ** 2,
      NanoCpus: 1_000_000_000,
      LogConfig: {Type: 'json-file', Config: {'max-size': '10m', 'max-file': '3'}},
    })
    expect(web2.options.Env).toContain('GUNICORN_WORKERS=3')
    expect(gateway.options.HostConfig).toMatchObject({
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      CapAdd: ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_NET_BIND_SERVICE', 'CAP_SETGID', 'CAP_SETUID'],
      SecurityOpt: ['no-new-privileges:true'],
      Memory: 256 * 1024 ** 2,
      LogConfig: {Type: 'json-file', Config: {'max-size': '10m', 'max-file': '3'}},
    })
    // Without a cached route the gateway has only its scratch tmpfs.
    expect(gateway.options.HostConfig?.Tmpfs).toEqual({'/tmp': 'size=64m'})
    expect(web2.options.HostConfig?.PortBindings).toEqual({})
    expect(web2.options.HostConfig?.RestartPolicy).toEqual({Name: 'unless-stopped', MaximumRetryCount: 0})
    expect(web2.options.Healthcheck?.Interval).toBe(5_000_000_000)
    expect(web2.options).toMatchObject({AttachStdout: true, AttachStderr: true, AttachStdin: false, Tty: false})
  })

  it('publishes only the gateway, on the bind address, mounts project files by absolute path, logs to its output', () => {
    const gateway = desired().find((container) => container.service === 'gateway')!
    expect(gateway.options.HostConfig?.PortBindings).toEqual({
      '80/tcp': [{HostIp: '127.0.0.1', HostPort: '18080'}],
      '443/tcp': [{HostIp: '127.0.0.1', HostPort: '18443'}],
    })
    expect(gateway.options.HostConfig?.Binds).toContain('/srv/demo/gateway/conf.d:/etc/nginx/conf.d:ro')
    // NGINX logs to the container's output, which the engine caps: nothing of the project is writable to it.
    expect(gateway.options.HostConfig?.Binds?.filter((bind) => !bind.endsWith(':ro'))).toEqual([])
    expect(gateway.options.HostConfig?.LogConfig).toEqual({
      Type: 'json-file',
      Config: {'max-size': '10m', 'max-file': '3'},
    })
    expect(gateway.options.StopSignal).toBe('SIGQUIT')
    expect(gateway.options.StopTimeout).toBe(15)
  })

  it('mounts the njs script and the JWT key map read-only only when a route uses jwt', () => {
    const binds = (manifest = testManifest()) =>
      desired({}, manifest).find((container) => container.service === 'gateway')!.options.HostConfig?.Binds ?? []
    expect(binds().some((bind) => /jwt|njs/.test(bind))).toBe(false)
    const jwt = binds(testManifest({routes: [{path: '/', service: 'web', auth: 'jwt'}]}))
    expect(jwt).toContain('/srv/demo/secrets/jwt-secret.map:/etc/nginx/secrets/jwt-secret.map:ro')
    expect(jwt).toContain('/srv/demo/gateway/njs:/etc/nginx/njs:ro')
  })

  it('hashes the same configuration the same way, whatever the run id', () => {
    expect(desired({runId: 'a'}).map((c) => c.hash)).toEqual(desired({runId: 'b'}).map((c) => c.hash))
    expect(desired().map((c) => c.hash)).toEqual(desired().map((c) => c.hash))
  })

  it('changes the hash when the environment or the ports change, and the image label when the image does', () => {
    const [base] = desired()
    const newImage = desired({imageIds: {web: 'sha256:web2', gateway: 'sha256:nginx1'}})[0]!
    // Compose leaves the image out of the config hash and compares its image label instead.
    expect(newImage.hash).toBe(base!.hash)
    expect(newImage.options.Labels?.['com.docker.compose.image']).toBe('sha256:web2')
    expect(desired({environment: {web: {DJANGO_SECRET_KEY: 'other'}}})[0]!.hash).not.toBe(base!.hash)
    const gateway = (manifest = testManifest()) => desired({}, manifest).find((c) => c.service === 'gateway')!.hash
    expect(gateway(testManifest({ports: {http: 18081, https: 18443}}))).not.toBe(gateway())
  })

  it('does not change the hash with the replica count (Compose leaves deploy.replicas out)', () => {
    const web = (replicas: number) => desired({}, testManifest({services: {web: {kind: 'django', replicas}}}))[0]!.hash
    expect(web(3)).toBe(web(2))
  })

  it('adds the NGINX exporter with metrics on: locked down, published only on loopback, scraping the gateway', () => {
    const manifest = testManifest({
      metrics: {enabled: true, port: 19113},
      images: {python: 'p:1', nginx: 'n:1', exporter: 'create-gateway-offline/exporter:forky'},
    })
    const containers = desired({}, manifest)
    expect(containers.map((container) => container.name)).toEqual([
      'demo-web-1',
      'demo-web-2',
      'demo-gateway-1',
      'demo-nginx-exporter-1',
    ])
    const exporter = containers[3]!
    expect(exporter.options.Image).toBe('create-gateway-offline/exporter:forky')
    expect(exporter.options.Cmd).toEqual([
      '--nginx.scrape-uri=http://gateway:8082/nginx_status',
      '--web.listen-address=:9113',
    ])
    expect(exporter.options.HostConfig?.PortBindings).toEqual({'9113/tcp': [{HostIp: '127.0.0.1', HostPort: '19113'}]})
    expect(exporter.options.HostConfig).toMatchObject({
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      Memory: 64 * 1024 ** 2,
      NanoCpus: 250_000_000,
      LogConfig: {Type: 'json-file', Config: {'max-size': '10m', 'max-file': '3'}},
    })
    expect(exporter.options.HostConfig?.CapAdd ?? []).toEqual([])
    // The public network only: it reaches the gateway there, and no Django service.
    expect(Object.keys(exporter.options.NetworkingConfig?.EndpointsConfig ?? {})).toEqual(['demo_default'])
    expect(exporter.extraNetworks).toEqual([])
    expect(exporter.options.Labels?.['com.docker.compose.depends_on']).toBe('gateway:service_healthy:true')
    // Nothing to probe with in the official image (FROM scratch): no healthcheck at all.
    expect(exporter.options.Healthcheck).toBeUndefined()
    // The gateway's public ports are unchanged by the profile.
    const gateway = containers[2]!
    expect(Object.keys(gateway.options.HostConfig?.PortBindings ?? {})).toEqual(['80/tcp', '443/tcp'])
    // Started after the gateway it scrapes.
    expect(startWaves(buildStackSpec(manifest)).map((wave) => wave.map((spec) => spec.service))).toEqual([
      ['web'],
      ['gateway'],
      ['nginx-exporter'],
    ])
    // Off: no exporter.
    expect(desired({}, testManifest({metrics: {enabled: false}})).map((c) => c.service)).not.toContain('nginx-exporter')
  })

  it('starts the Django services before the gateway that depends on them', () => {
    const waves = startWaves(
      buildStackSpec(
        testManifest({services: {web: {kind: 'django'}, api: {kind: 'django'}}, routes: [{path: '/', service: 'web'}]}),
      ),
    )
    expect(waves.map((wave) => wave.map((spec) => spec.service))).toEqual([['web', 'api'], ['gateway']])
  })
})

describe('planContainers', () => {
  it('keeps running containers with the same hash: a second up changes nothing', () => {
    const want = desired()
    const plan = planContainers(
      want,
      want.map((container) => running(container)),
    )
    expect(plan.containers.map((item) => item.action)).toEqual(['keep', 'keep', 'keep'])
    expect(plan.remove).toEqual([])
  })

  it('recreates a container whose image label is not the current image, as Compose does', () => {
    const want = desired()
    const plan = planContainers(
      want,
      want.map((container, index) =>
        index === 0
          ? running(container, {labels: {...container.options.Labels, [LABELS.image]: 'sha256:older'}})
          : running(container),
      ),
    )
    expect(plan.containers.map((item) => item.action)).toEqual(['recreate', 'keep', 'keep'])
  })

  it('creates missing replicas, recreates changed ones, starts stopped ones, removes extras', () => {
    const want = desired()
    const existing = [
      running(want[0]!, {labels: {...want[0]!.options.Labels, [LABELS.configHash]: 'old'}}),
      running(want[2]!, {status: 'exited', running: false}),
      running({
        ...want[1]!,
        name: 'demo-web-3',
        options: {...want[1]!.options, Labels: {...want[1]!.options.Labels, [LABELS.number]: '3'}},
      }),
    ]
    const plan = planContainers(want, existing)
    expect(plan.containers.map((item) => `${item.desired.name}:${item.action}`)).toEqual([
      'demo-web-1:recreate',
      'demo-web-2:create',
      'demo-gateway-1:start',
    ])
    expect(plan.remove.map((container) => container.name)).toEqual(['demo-web-3'])
  })

  it('adopts containers that Compose v1 named demo_web_1 and replaces them under our names', () => {
    const want = desired()
    const plan = planContainers(want, [running(want[0]!, {name: 'demo_web_1'})])
    expect(plan.containers[0]).toMatchObject({action: 'recreate', existing: {name: 'demo_web_1'}})
    expect(plan.remove).toEqual([])
  })

  it('leaves one-off containers (docker compose run) alone', () => {
    const want = desired()
    const oneoff = running(want[0]!, {
      id: 'oneoff',
      name: 'demo-web-run-1',
      labels: {...want[0]!.options.Labels, [LABELS.oneoff]: 'True'},
    })
    const plan = planContainers(want, [oneoff])
    expect(plan.containers[0]!.action).toBe('create')
    expect(plan.remove).toEqual([])
  })
})

describe('the gateway of a project with a cached route', () => {
  it('gets the cache tmpfs, size-capped, next to its scratch tmpfs on the read-only root', () => {
    const manifest = testManifest({
      routes: [{path: '/', service: 'web', cache: {ttl: '30s'}}],
      cache: {keys: '1m', size: '8m'},
    })
    const gateway = desired({}, manifest).find((container) => container.service === 'gateway')!
    expect(gateway.options.HostConfig?.ReadonlyRootfs).toBe(true)
    // 8 MB of max_size plus a quarter, in whole megabytes.
    expect(gateway.options.HostConfig?.Tmpfs).toEqual({'/tmp': 'size=64m', '/var/cache/gateway': 'size=10485760'})
  })
})
