import type Docker from 'dockerode'
import {describe, expect, it} from 'vitest'

import {parseManifest} from '../../src/manifest/load.js'
import type {ManifestInput} from '../../src/manifest/schema.js'
import {buildStackSpec, cacheTmpfsBytes} from '../../src/manifest/stack.js'
import {renderGateway} from '../../src/render/gateway.js'
import {dockerOptions, managerProblem} from '../../src/swarm/connect.js'
import {converged, describeProgress, serviceProgress, type TaskView} from '../../src/swarm/converge.js'
import {
  fileKind,
  swarmFileContent,
  swarmGatewayConf,
  swarmUpstreams,
  type SwarmFile,
} from '../../src/swarm/gateway-files.js'
import {parseRegistry} from '../../src/swarm/images.js'
import {imageReference, objectName} from '../../src/swarm/names.js'
import {tmpfsMount} from '../../src/swarm/runtime.js'
import {
  buildSwarmPlan,
  checkSwarmStack,
  gatewayConstraint,
  gatewayPublishNote,
  withObjectIds,
} from '../../src/swarm/spec.js'
import {taskRows} from '../../src/swarm/status.js'

const base: ManifestInput = {
  version: 1,
  name: 'my-api',
  domain: 'api.example.com',
  services: {
    web: {kind: 'django', replicas: 3},
    api: {kind: 'django', replicas: 1, port: 8001},
    payment: {kind: 'external', url: 'https://payments.example.com'},
  },
  routes: [
    {path: '/', service: 'web'},
    {path: '/secure/', service: 'web', auth: 'basic'},
    {path: '/api2/', service: 'api', auth: 'api-key'},
    {path: '/payment/', service: 'payment'},
  ],
}
const manifest = parseManifest(base)
const SECOND = 1_000_000_000

function files(): SwarmFile[] {
  return [
    {source: 'gateway/nginx.conf', target: '/etc/nginx/nginx.conf', kind: 'config', content: Buffer.from('n')},
    {
      source: 'certs/privkey.pem',
      target: '/etc/nginx/certs/privkey.pem',
      kind: 'secret',
      content: Buffer.from('k'),
      mode: 0o400,
    },
  ]
}

const SECRETS = {'web-secret-key': Buffer.from('web-key'), 'api-secret-key': Buffer.from('api-key')}

function plan(constraint = 'node.role==manager', source = manifest) {
  const stack = buildStackSpec(source)
  return buildSwarmPlan({
    stack,
    images: {web: 'reg:5000/my-api/web:aaaaaaaaaaaa', api: 'reg:5000/my-api/api:bbbbbbbbbbbb'},
    // As deploy resolves it from the stack spec and .env; a stray DJANGO_SECRET_KEY must not reach Env.
    environment: Object.fromEntries(
      stack.services
        .filter((spec) => spec.role === 'django')
        .map((spec) => [spec.service, {...spec.environment, DJANGO_SECRET_KEY: 'stray'}]),
    ),
    secrets: SECRETS,
    gatewayFiles: files(),
    gatewayConstraint: constraint,
  })
}

function container(spec: Docker.ServiceSpec): Docker.ContainerSpec {
  return (spec.TaskTemplate as Docker.ContainerTaskSpec).ContainerSpec!
}

describe('swarm names', () => {
  it('names configs and secrets after the stack, the file and a hash of the content', () => {
    const name = objectName('my-api', 'gateway/conf.d/gateway.conf', 'a')
    expect(name).toMatch(/^my-api_gateway_conf\.d_gateway\.conf-[0-9a-f]{10}$/)
    expect(objectName('my-api', 'gateway/conf.d/gateway.conf', 'a')).toBe(name)
    expect(objectName('my-api', 'gateway/conf.d/gateway.conf', 'b')).not.toBe(name)
  })

  it('keeps names within Swarm limits (64 characters of [a-zA-Z0-9_.-]) for long paths', () => {
    const name = objectName('a-rather-long-project-name', 'gateway/conf.d/snippets/some/very/deep/file name.conf', 'x')
    expect(name.length).toBeLessThanOrEqual(64)
    expect(name).toMatch(/^[a-zA-Z0-9_.-]+$/)
    expect(name.startsWith('a-rather-long-project-name_')).toBe(true)
  })

  it('tags images REGISTRY/<project>/<service>:<content-id12>', () => {
    expect(imageReference('127.0.0.1:5000/', 'my-api', 'web', 'abcdef0123456789')).toBe(
      '127.0.0.1:5000/my-api/web:abcdef012345',
    )
    expect(parseRegistry('http://127.0.0.1:5000/')).toBe('127.0.0.1:5000')
    expect(() => parseRegistry(undefined)).toThrow(/--registry/)
    expect(() => parseRegistry('not a registry')).toThrow(/HOST:PORT/)
  })
})

describe('buildSwarmPlan', () => {
  it('labels every service, object and network with the stack namespace: <ns>_default, and <ns>_internal with no way out', () => {
    const result = plan()
    const labels = {'com.docker.stack.namespace': 'my-api'}
    expect(result.networks).toEqual([
      {name: 'my-api_default', labels, internal: false},
      {name: 'my-api_internal', labels, internal: true},
    ])
    for (const service of result.services) {
      expect(service.spec.Labels?.['com.docker.stack.namespace']).toBe('my-api')
      expect(container(service.spec).Labels?.['com.docker.stack.namespace']).toBe('my-api')
    }

    for (const object of result.objects) expect(object.labels['com.docker.stack.namespace']).toBe('my-api')
    expect(result.services.map((service) => service.name)).toEqual(['my-api_web', 'my-api_api', 'my-api_gateway'])
  })

  it('Django services: dnsrr, the manifest replicas, health-gated start-first updates that roll back, limits', () => {
    const web = plan().services.find((service) => service.service === 'web')!.spec
    expect(web.Mode).toEqual({Replicated: {Replicas: 3}})
    expect(web.EndpointSpec).toEqual({Mode: 'dnsrr'})
    expect(web.UpdateConfig).toMatchObject({Order: 'start-first', FailureAction: 'rollback', Parallelism: 1})
    const template = web.TaskTemplate as Docker.ContainerTaskSpec
    expect(template.RestartPolicy?.Condition).toBe('on-failure')
    expect(template.Resources?.Limits?.MemoryBytes).toBeGreaterThanOrEqual(256 * 1024 * 1024)
    // Only the internal network, as in the compose stack: a Django replica has no route out.
    expect(template.Networks).toEqual([{Target: 'my-api_internal', Aliases: ['web']}])
    const spec = container(web)
    expect(spec.Image).toBe('reg:5000/my-api/web:aaaaaaaaaaaa')
    expect(spec.HealthCheck?.StartPeriod).toBeGreaterThanOrEqual(60 * SECOND)
    expect(spec.HealthCheck?.Test?.join(' ')).toContain('http://127.0.0.1:8000/healthz')
    expect(spec.Env).toContain('GUNICORN_WORKERS=3')
  })

  it("Django services get the compose stack's lockdown: read-only root, no capabilities, a /tmp tmpfs, limits, bounded logs", () => {
    const web = plan().services.find((service) => service.service === 'web')!.spec
    const template = web.TaskTemplate as Docker.ContainerTaskSpec
    expect(template.Resources?.Limits).toEqual({MemoryBytes: 512 * 1024 ** 2, NanoCPUs: 1_000_000_000})
    expect(template.LogDriver).toEqual({Name: 'json-file', Options: {'max-size': '10m', 'max-file': '3'}})
    const spec = container(web)
    expect(spec.ReadOnly).toBe(true)
    expect(spec.CapabilityDrop).toEqual(['ALL'])
    expect(spec.CapabilityAdd).toBeUndefined()
    expect(spec.Mounts).toEqual([
      {Type: 'tmpfs', Source: '', Target: '/tmp', TmpfsOptions: {SizeBytes: 64 * 1024 ** 2, Mode: 0o1777}},
    ])
  })

  it("the gateway keeps only NGINX's capabilities, both networks, and a size-capped cache tmpfs when a route caches", () => {
    const gatewayOf = (result: ReturnType<typeof plan>) =>
      result.services.find((service) => service.role === 'gateway')!.spec
    const plain = gatewayOf(plan())
    const spec = container(plain)
    expect(spec.ReadOnly).toBe(true)
    expect(spec.CapabilityDrop).toEqual(['ALL'])
    expect(spec.CapabilityAdd).toEqual([
      'CAP_CHOWN',
      'CAP_DAC_OVERRIDE',
      'CAP_NET_BIND_SERVICE',
      'CAP_SETGID',
      'CAP_SETUID',
    ])
    expect(spec.Mounts?.map((mount) => mount.Target)).toEqual(['/tmp'])
    expect((plain.TaskTemplate as Docker.ContainerTaskSpec).Networks).toEqual([
      {Target: 'my-api_default', Aliases: ['gateway']},
      {Target: 'my-api_internal', Aliases: ['gateway']},
    ])
    expect((plain.TaskTemplate as Docker.ContainerTaskSpec).Resources?.Limits?.MemoryBytes).toBe(256 * 1024 ** 2)

    const caching = parseManifest({
      ...base,
      routes: [{path: '/', service: 'web', cache: {ttl: '30s'}}, ...base.routes!.slice(1)],
    })
    const cached = container(gatewayOf(plan('node.role==manager', caching)))
    expect(cached.Mounts?.find((mount) => mount.Target === '/var/cache/gateway')?.TmpfsOptions?.SizeBytes).toBe(
      cacheTmpfsBytes(caching),
    )
  })

  it('reads tmpfs entries in Compose short form and refuses anything else', () => {
    expect(tmpfsMount('/tmp:size=64m').TmpfsOptions).toEqual({SizeBytes: 64 * 1024 ** 2, Mode: 0o1777})
    expect(tmpfsMount('/var/cache/gateway:size=83886080').TmpfsOptions?.SizeBytes).toBe(83_886_080)
    expect(tmpfsMount('/run').TmpfsOptions?.SizeBytes).toBe(0)
    expect(() => tmpfsMount('/tmp:mode=777')).toThrow(/PATH:size=N/)
    expect(() => tmpfsMount('relative')).toThrow(/PATH:size=N/)
  })

  it('keeps the Django secret key out of the environment: a swarm secret at the path compose uses, for the app user', () => {
    const result = plan()
    const spec = container(result.services.find((service) => service.service === 'web')!.spec)
    expect(spec.Env?.some((line) => line.startsWith('DJANGO_SECRET_KEY='))).toBe(false)
    expect(spec.Env).toContain('DJANGO_SECRET_KEY_FILE=/run/secrets/web-secret-key')
    expect(spec.Secrets).toHaveLength(1)
    expect(spec.Secrets?.[0]?.File).toEqual({
      Name: '/run/secrets/web-secret-key',
      UID: '10001',
      GID: '10001',
      Mode: 0o400,
    })
    const key = result.objects.find((object) => object.name === spec.Secrets?.[0]?.SecretName)!
    expect(key.kind).toBe('secret')
    expect(key.data.toString()).toBe('web-key')
  })

  it('the gateway: placed by constraint, 80/443 in host mode, stop-first, its files as configs and secrets', () => {
    const gateway = plan('node.labels.edge==true').services.find((service) => service.role === 'gateway')!.spec
    const template = gateway.TaskTemplate as Docker.ContainerTaskSpec
    expect(template.Placement?.Constraints).toEqual(['node.labels.edge==true'])
    expect(gateway.EndpointSpec?.Ports?.map((port) => [port.TargetPort, port.PublishedPort, port.PublishMode])).toEqual(
      [
        [80, 80, 'host'],
        [443, 443, 'host'],
      ],
    )
    expect(gateway.UpdateConfig).toMatchObject({Order: 'stop-first', FailureAction: 'rollback'})
    const spec = container(gateway)
    expect(spec.Configs?.map((ref) => ref.File?.Name)).toEqual(['/etc/nginx/nginx.conf'])
    expect(spec.Secrets?.map((ref) => [ref.File?.Name, ref.File?.Mode])).toEqual([
      ['/etc/nginx/certs/privkey.pem', 0o400],
    ])
  })

  it('a changed file gets a new object name, so the service spec changes and Swarm rolls onto it', () => {
    const before = plan()
    const changed = buildSwarmPlan({
      stack: buildStackSpec(manifest),
      images: {web: 'w', api: 'a'},
      environment: {web: {}, api: {}},
      secrets: SECRETS,
      gatewayFiles: [{...files()[0]!, content: Buffer.from('changed')}, files()[1]!],
      gatewayConstraint: 'node.role==manager',
    })
    const config = (result: typeof before) =>
      container(result.services.find((service) => service.role === 'gateway')!.spec).Configs?.[0]?.ConfigName
    expect(config(changed)).not.toBe(config(before))
  })

  it('fills in object IDs by name, and refuses a name it has no ID for', () => {
    const gateway = plan().services.find((service) => service.role === 'gateway')!
    const ids = new Map(plan().objects.map((object, index) => [object.name, `id${index}`]))
    const spec = container(withObjectIds(gateway.spec, ids))
    expect(spec.Configs?.every((ref) => ref.ConfigID?.startsWith('id'))).toBe(true)
    expect(spec.Secrets?.every((ref) => ref.SecretID?.startsWith('id'))).toBe(true)
    expect(() => withObjectIds(gateway.spec, new Map())).toThrow(/no ID/)
  })

  it('places the gateway on nodes labelled edge=true when there are any, else on the manager', () => {
    expect(gatewayConstraint([{}, {edge: 'true'}])).toBe('node.labels.edge==true')
    expect(gatewayConstraint([{}, {edge: 'false'}])).toBe('node.role==manager')
  })
})

describe('the metrics profile on a swarm', () => {
  const withMetrics = (bind?: string) =>
    parseManifest({
      ...base,
      metrics: {enabled: true, port: 9200, ...(bind ? {bind} : {})},
      images: {exporter: 'create-gateway-offline/exporter:forky'},
    })
  const exporterOf = (result: ReturnType<typeof plan>) => result.services.find((service) => service.role === 'exporter')

  it('adds <ns>_nginx-exporter: the compose image and command, on the public overlay beside the gateway, locked down', () => {
    const result = plan('node.labels.edge==true', withMetrics())
    expect(exporterOf(plan())).toBeUndefined()
    const exporter = exporterOf(result)!
    expect(exporter.name).toBe('my-api_nginx-exporter')
    expect(result.services.map((service) => service.role)).toEqual(['django', 'django', 'gateway', 'exporter'])
    const template = exporter.spec.TaskTemplate as Docker.ContainerTaskSpec
    const spec = container(exporter.spec)
    expect(spec.Image).toBe('create-gateway-offline/exporter:forky')
    // The gateway's stub_status listener by its alias on the overlay network, never published.
    expect(spec.Args).toEqual(['--nginx.scrape-uri=http://gateway:8082/nginx_status', '--web.listen-address=:9113'])
    expect(spec.HealthCheck).toBeUndefined()
    expect(spec.ReadOnly).toBe(true)
    expect(spec.CapabilityDrop).toEqual(['ALL'])
    expect(spec.CapabilityAdd).toBeUndefined()
    expect(template.Resources?.Limits).toEqual({MemoryBytes: 64 * 1024 ** 2, NanoCPUs: 250_000_000})
    expect(template.Networks).toEqual([{Target: 'my-api_default', Aliases: ['nginx-exporter']}])
    expect(template.Placement?.Constraints).toEqual(['node.labels.edge==true'])
    expect(exporter.spec.Labels?.['com.docker.stack.namespace']).toBe('my-api')
    // The gateway, on that same network, is reachable as `gateway` there.
    const gateway = result.services.find((service) => service.role === 'gateway')!
    expect((gateway.spec.TaskTemplate as Docker.ContainerTaskSpec).Networks?.[0]).toEqual({
      Target: 'my-api_default',
      Aliases: ['gateway'],
    })
  })

  it('does not publish /metrics on the default loopback bind; publishes it in host mode only on 0.0.0.0', () => {
    expect(exporterOf(plan(undefined, withMetrics()))!.spec.EndpointSpec).toEqual({Mode: 'dnsrr', Ports: []})
    expect(exporterOf(plan(undefined, withMetrics('0.0.0.0')))!.spec.EndpointSpec?.Ports).toEqual([
      {Protocol: 'tcp', TargetPort: 9113, PublishedPort: 9200, PublishMode: 'host'},
    ])
  })

  it('refuses any other bind address before anything is built, and says why', () => {
    const stack = buildStackSpec(withMetrics('10.0.0.5'))
    expect(() => checkSwarmStack(stack)).toThrow(
      /metrics\.bind 10\.0\.0\.5: a swarm cannot publish a port on one address/,
    )
    expect(() => plan(undefined, withMetrics('10.0.0.5'))).toThrow(/metrics\.bind 10\.0\.0\.5/)
    expect(() => checkSwarmStack(buildStackSpec(withMetrics()))).not.toThrow()
    expect(() => checkSwarmStack(buildStackSpec(withMetrics('0.0.0.0')))).not.toThrow()
  })

  it("says the gateway's default loopback bind cannot hold on a swarm, stays quiet on 0.0.0.0, refuses one address", () => {
    const gatewayOf = (input: ManifestInput) =>
      buildStackSpec(parseManifest(input)).services.find((spec) => spec.role === 'gateway')!
    expect(gatewayPublishNote(gatewayOf(base))).toMatch(
      /bind 127\.0\.0\.1 applies on one host only: on a swarm the gateway is published on ports 80 and 443 of every address/,
    )
    expect(gatewayPublishNote(gatewayOf({...base, bind: '0.0.0.0'}))).toBeUndefined()
    expect(() => checkSwarmStack(buildStackSpec(parseManifest({...base, bind: '10.0.0.5'})))).toThrow(
      /bind 10\.0\.0\.5: a swarm cannot publish the gateway on one address of a node/,
    )
    expect(() => checkSwarmStack(buildStackSpec(manifest))).not.toThrow()
  })

  it("the gateway's files carry the stub_status listener the exporter scrapes, and no port of the node leads to it", async () => {
    const metrics = withMetrics()
    const rendered = Object.fromEntries((await renderGateway(metrics)).map((file) => [file.path, String(file.content)]))
    const gateway = swarmGatewayConf(rendered['gateway/conf.d/gateway.conf']!, metrics)
    expect(gateway).toMatch(/listen 8082;[\s\S]*location = \/nginx_status \{\s+stub_status;/)
    const published = plan(undefined, metrics).services.flatMap(
      (service) => service.spec.EndpointSpec?.Ports?.map((port) => port.PublishedPort) ?? [],
    )
    expect(published).toEqual([80, 443])
  })
})

describe('gateway files on a swarm', () => {
  it('resolves each Django service through the engine DNS at run time, with no static upstream', async () => {
    const rendered = Object.fromEntries(
      (await renderGateway(manifest)).map((file) => [file.path, String(file.content)]),
    )
    const upstreams = swarmUpstreams(manifest)
    expect(upstreams).toContain('resolver 127.0.0.11 valid=5s ipv6=off;')
    expect(upstreams).toMatch(/map \$host \$web_upstream \{\s+default web:8000;/)
    expect(upstreams).toMatch(/map \$host \$api_upstream \{\s+default api:8001;/)
    expect(upstreams).not.toMatch(/^\s*upstream /m)

    const gateway = swarmGatewayConf(rendered['gateway/conf.d/gateway.conf']!, manifest)
    expect(gateway).not.toContain('proxy_pass http://web_upstream;')
    expect(gateway).toContain('proxy_pass http://$web_upstream;')
    expect(gateway).toContain('proxy_pass http://$api_upstream;')
    expect(gateway).toContain('payments.example.com')
    expect(() => swarmGatewayConf('server {}', manifest)).toThrow(/re-render/)
  })

  it('logs to stdout and stderr, and keeps certs and secrets as Swarm secrets', async () => {
    const rendered = Object.fromEntries(
      (await renderGateway(manifest)).map((file) => [file.path, String(file.content)]),
    )
    // nginx.conf goes unchanged: it logs to the container's stdout and stderr on one host too.
    const nginx = swarmFileContent(
      'gateway/nginx.conf',
      Buffer.from(rendered['gateway/nginx.conf']!),
      manifest,
    ).toString()
    expect(nginx).toBe(rendered['gateway/nginx.conf'])
    expect(nginx).toMatch(/^\s*access_log \/dev\/stdout gateway_json;/m)
    expect(nginx).toMatch(/^error_log stderr warn;/m)
    expect(nginx).not.toContain('/var/log/nginx/')
    expect(swarmFileContent('gateway/conf.d/limits.conf', Buffer.from('x'), manifest).toString()).toBe('x')
    expect(fileKind('certs/privkey.pem')).toBe('secret')
    expect(fileKind('secrets/htpasswd')).toBe('secret')
    expect(fileKind('gateway/conf.d/gateway.conf')).toBe('config')
  })
})

describe('convergence and status', () => {
  const task = (state: string, extra: Partial<TaskView> = {}): TaskView => ({
    id: `t-${state}`,
    nodeId: 'n1',
    state,
    desiredState: 'running',
    ...extra,
  })

  it('counts running tasks, lists the others by state, and ignores tasks being shut down', () => {
    const progress = serviceProgress('web', 3, [
      task('running'),
      task('starting'),
      task('preparing'),
      task('running', {desiredState: 'shutdown'}),
    ])
    expect(progress).toMatchObject({running: 1, pending: {starting: 1, preparing: 1}})
    expect(converged(progress)).toBe(false)
    expect(describeProgress(progress)).toBe('web: 1/3 running (1 starting, 1 preparing)')
    expect(converged(serviceProgress('web', 1, [task('running')], 'completed'))).toBe(true)
    expect(converged(serviceProgress('web', 1, [task('running')], 'updating'))).toBe(false)
  })

  it('a rolled-back update is a failure that names the last task error', () => {
    const progress = serviceProgress(
      'web',
      1,
      [task('running'), task('failed', {desiredState: 'shutdown', error: 'task: non-zero exit (1)'})],
      'rollback_completed',
    )
    expect(() => converged(progress)).toThrow(
      /web: the update failed and Swarm rolled it back \(last task error: task: non-zero exit \(1\)\)/,
    )
  })

  it('status rows: the tasks meant to run, by slot, with node hostnames', () => {
    const rows = taskRows(
      'web',
      [
        task('running', {slot: 2, nodeId: 'b'}),
        task('running', {slot: 1, nodeId: 'a'}),
        task('shutdown', {desiredState: 'shutdown'}),
      ],
      new Map([
        ['a', 'worker1'],
        ['b', 'worker2'],
      ]),
    )
    expect(rows).toEqual([
      {service: 'web', task: 'web.1', node: 'worker1', state: 'running'},
      {service: 'web', task: 'web.2', node: 'worker2', state: 'running'},
    ])
  })
})

describe('connecting to a manager', () => {
  it('judges docker info: a manager, a worker, no swarm', () => {
    expect(managerProblem({Swarm: {LocalNodeState: 'active', ControlAvailable: true}})).toBeUndefined()
    expect(managerProblem({Swarm: {LocalNodeState: 'active', ControlAvailable: false}})).toMatch(/worker/)
    expect(managerProblem({Swarm: {LocalNodeState: 'inactive'}})).toMatch(/not part of a swarm/)
  })

  it('reads --host as tcp://HOST:PORT or a unix socket', () => {
    expect(dockerOptions('tcp://127.0.0.1:2375')).toEqual({host: '127.0.0.1', port: 2375, protocol: 'http'})
    // An explicit host: undefined, so a DOCKER_HOST in the environment does not win over --host.
    expect(dockerOptions('unix:///var/run/docker.sock')).toStrictEqual({
      socketPath: '/var/run/docker.sock',
      host: undefined,
    })
    expect(() => dockerOptions('ftp://x')).toThrow(/tcp:\/\/HOST:PORT/)
  })
})
