import {parse} from 'yaml'
import {describe, expect, it} from 'vitest'

import {UsageError} from '../../src/errors.js'
import {clusterTarget} from '../../src/export/kubernetes/export.js'
import type {ExportContext, SecretMaterial} from '../../src/export/kubernetes/model.js'
import {kubernetesOptions} from '../../src/export/kubernetes/options.js'
import {buildResources, RESOURCE_BUILDERS, renderKubernetes} from '../../src/export/kubernetes/registry.js'
import {parseManifest} from '../../src/manifest/load.js'
import type {ManifestInput} from '../../src/manifest/schema.js'
import {renderGateway} from '../../src/render/gateway.js'
import {validateAgainstSchema} from '../helpers/kubernetes.js'

// The project: an extra Django service, an external one, every auth mode.
const base: ManifestInput = {
  version: 1,
  name: 'my-api',
  domain: 'api.example.com',
  services: {
    web: {kind: 'django', replicas: 3},
    'student-api': {kind: 'django', port: 8001},
    payment: {kind: 'external', url: 'https://payments.example.com/v1'},
  },
  routes: [
    {path: '/', service: 'web'},
    {path: '/secure/', service: 'web', auth: 'basic'},
    {path: '/student-api/', service: 'student-api', auth: 'jwt'},
    {path: '/payment/', service: 'payment', auth: 'api-key'},
  ],
}

const SECRETS: SecretMaterial = {
  secretKeys: {web: 'web-secret-key-0123456789', 'student-api': 'student-secret-key-9876543210'},
  gatewayAuth: {
    htpasswd: 'gateway:$6$salt$hash\n',
    'api-keys.map': '"key-abcdef" 1;\n',
    'jwt-secret.map': 'default "jwt-key-0123456789abcdef0123456789abcdef";\n',
  },
  certificate: {chain: '-----BEGIN CERTIFICATE-----\nchain\n', key: '-----BEGIN PRIVATE KEY-----\nkey\n'},
}

async function exportContext(
  overrides: Partial<ManifestInput> = {},
  flags: {namespace?: string; registry?: string; resolver?: string} = {},
  secrets: SecretMaterial = SECRETS,
): Promise<ExportContext> {
  const manifest = parseManifest({...base, ...overrides})
  const options = kubernetesOptions(manifest, flags)
  const cluster = clusterTarget(manifest, options)
  return {manifest, options, secrets, gatewayFiles: await renderGateway(manifest, cluster)}
}

// Documents are read back as plain YAML.
type Doc = any

async function documents(...args: Parameters<typeof exportContext>): Promise<Doc[]> {
  return buildResources(await exportContext(...args)).map((resource) => resource.document)
}

function find(docs: Doc[], kind: string, name: string): Doc {
  const doc = docs.find((entry) => entry.kind === kind && entry.metadata.name === name)
  if (!doc) throw new Error(`no ${kind} ${name}`)
  return doc
}

const decode = (value: string) => Buffer.from(value, 'base64').toString('utf8')

describe('export kubernetes: resources', () => {
  it('every document validates against the Kubernetes API schemas, in every tls mode', async () => {
    for (const tls of [{mode: 'self-signed'}, {mode: 'off'}, {mode: 'certbot', email: 'ops@example.com'}] as const) {
      const docs = await documents({tls})
      expect(docs.length).toBeGreaterThan(10)
      for (const doc of docs) expect(() => validateAgainstSchema(doc), `${doc.kind} ${doc.metadata.name}`).not.toThrow()
    }
  })

  it('the schema check is real: a Deployment without a selector or with text replicas is refused', async () => {
    const deployment = find(await documents(), 'Deployment', 'web')
    expect(() => validateAgainstSchema({...deployment, spec: {...deployment.spec, selector: undefined}})).toThrow(
      /selector/,
    )
    expect(() => validateAgainstSchema({...deployment, spec: {...deployment.spec, replicas: 'three'}})).toThrow(
      /replicas/,
    )
  })

  it('a Django Deployment per service: replicas, probes on /healthz, limits, non-root, read-only root with /tmp', async () => {
    const docs = await documents()
    for (const [name, replicas, port] of [
      ['web', 3, 8000],
      ['student-api', 1, 8001],
    ] as const) {
      const deployment = find(docs, 'Deployment', name)
      expect(deployment.spec.replicas).toBe(replicas)
      const pod = deployment.spec.template.spec
      expect(pod.securityContext).toMatchObject({
        runAsNonRoot: true,
        runAsUser: 10001,
        seccompProfile: {type: 'RuntimeDefault'},
      })
      expect(pod.automountServiceAccountToken).toBe(false)
      const [container] = pod.containers
      expect(container.image).toBe(`my-api-${name}:latest`)
      expect(container.ports).toEqual([{name: 'http', containerPort: port, protocol: 'TCP'}])
      for (const probe of [container.readinessProbe, container.livenessProbe]) {
        expect(probe.httpGet).toEqual({
          path: '/healthz',
          port: 'http',
          httpHeaders: [{name: 'Host', value: 'localhost'}],
        })
      }

      expect(container.resources.requests).toEqual({cpu: expect.any(String), memory: expect.any(String)})
      expect(container.resources.limits).toEqual({cpu: expect.any(String), memory: expect.any(String)})
      expect(container.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: {drop: ['ALL']},
      })
      expect(container.volumeMounts).toEqual([{name: 'tmp', mountPath: '/tmp'}])
      expect(pod.volumes).toEqual([{name: 'tmp', emptyDir: {}}])
      expect(container.env).toContainEqual({
        name: 'DJANGO_SECRET_KEY',
        valueFrom: {secretKeyRef: {name: `${name}-django`, key: 'DJANGO_SECRET_KEY'}},
      })

      const service = find(docs, 'Service', name)
      expect(service.spec.clusterIP).toBe('None')
      expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels)
      expect(service.spec.ports).toEqual([{name: 'http', port, targetPort: 'http', protocol: 'TCP'}])
    }
  })

  it('the gateway: 2 replicas spread over nodes, the same NGINX config from a ConfigMap, a LoadBalancer with Local traffic', async () => {
    const docs = await documents()
    const gateway = find(docs, 'Deployment', 'gateway')
    expect(gateway.spec.replicas).toBe(2)
    const pod = gateway.spec.template.spec
    expect(pod.topologySpreadConstraints[0]).toMatchObject({
      topologyKey: 'kubernetes.io/hostname',
      whenUnsatisfiable: 'DoNotSchedule',
      labelSelector: {matchLabels: gateway.spec.selector.matchLabels},
    })
    expect(pod.securityContext).toMatchObject({runAsNonRoot: true, runAsUser: 101})
    const [nginx] = pod.containers
    expect(nginx.image).toBe('nginx:1.30')
    expect(nginx.readinessProbe.httpGet).toEqual({path: '/healthz', port: 'status'})
    expect(nginx.livenessProbe.httpGet).toEqual({path: '/healthz', port: 'status'})
    expect(nginx.securityContext.readOnlyRootFilesystem).toBe(true)
    expect(nginx.resources.limits).toBeDefined()

    const config = find(docs, 'ConfigMap', 'gateway-nginx').data
    const gatewayConf = config['conf.d_gateway.conf']
    expect(gatewayConf).toContain('resolver kube-dns.kube-system.svc.cluster.local valid=5s;')
    expect(gatewayConf).toContain('set $service_web http://web.my-api.svc.cluster.local:8000;')
    expect(gatewayConf).toContain('set $service_student_api http://student-api.my-api.svc.cluster.local:8001;')
    expect(gatewayConf).toContain('proxy_pass $service_web;')
    // The external service stays the gateway's own upstream, as on one host.
    expect(gatewayConf).toContain('set $external_payment https://payments.example.com;')
    expect(gatewayConf).toContain('listen 8443 ssl default_server;')
    expect(config['nginx.conf']).toContain('pid /tmp/nginx.pid;')
    expect(config['nginx.conf']).toContain('access_log /dev/stdout gateway_json;')
    expect(config['nginx.conf']).not.toMatch(/^user /m)
    expect(Object.keys(config)).not.toContain('conf.d_upstreams.conf')
    // Every ConfigMap key is mounted where NGINX looks for it.
    const mounted = pod.volumes.flatMap((volume: Doc) => (volume.configMap ? volume.configMap.items : []))
    expect(mounted.map((item: Doc) => item.key).sort()).toEqual(Object.keys(config).sort())

    const service = find(docs, 'Service', 'gateway')
    expect(service.spec).toMatchObject({type: 'LoadBalancer', externalTrafficPolicy: 'Local'})
    expect(service.spec.ports).toEqual([
      {name: 'http', port: 80, targetPort: 8080, protocol: 'TCP'},
      {name: 'https', port: 443, targetPort: 8443, protocol: 'TCP'},
    ])
  })

  it('Secrets hold exactly the project secrets; no secret value in a ConfigMap or an env value', async () => {
    const docs = await documents()
    const secrets = docs.filter((doc) => doc.kind === 'Secret')
    const data = Object.fromEntries(
      secrets.map((secret) => [
        secret.metadata.name,
        Object.fromEntries(
          Object.entries(secret.data as Record<string, string>).map(([key, value]) => [key, decode(value)]),
        ),
      ]),
    )
    expect(data).toEqual({
      'web-django': {DJANGO_SECRET_KEY: SECRETS.secretKeys.web},
      'student-api-django': {DJANGO_SECRET_KEY: SECRETS.secretKeys['student-api']},
      'gateway-auth': SECRETS.gatewayAuth,
      'gateway-tls': {'tls.crt': SECRETS.certificate!.chain, 'tls.key': SECRETS.certificate!.key},
    })
    expect(find(docs, 'Secret', 'gateway-tls').type).toBe('kubernetes.io/tls')

    const values = [
      ...Object.values(SECRETS.secretKeys),
      'key-abcdef',
      'jwt-key-0123456789abcdef0123456789abcdef',
      '$6$salt$hash',
      SECRETS.certificate!.key,
    ]
    const notSecret = docs.filter((doc) => doc.kind !== 'Secret').map((doc) => JSON.stringify(doc))
    for (const value of values) for (const text of notSecret) expect(text).not.toContain(value)
  })

  it('a PodDisruptionBudget per service and a NetworkPolicy letting only the gateway in', async () => {
    const docs = await documents()
    for (const name of ['web', 'student-api', 'gateway']) {
      const budget = find(docs, 'PodDisruptionBudget', name)
      expect(budget.spec.maxUnavailable).toBe(1)
      expect(budget.spec.selector.matchLabels).toEqual(find(docs, 'Deployment', name).spec.selector.matchLabels)
    }

    const gatewayLabels = find(docs, 'Deployment', 'gateway').spec.template.metadata.labels
    for (const [name, port] of [
      ['web', 8000],
      ['student-api', 8001],
    ] as const) {
      const policy = find(docs, 'NetworkPolicy', name)
      expect(policy.spec.podSelector.matchLabels).toEqual(find(docs, 'Deployment', name).spec.selector.matchLabels)
      expect(policy.spec.policyTypes).toEqual(['Ingress'])
      expect(policy.spec.ingress).toHaveLength(1)
      const [rule] = policy.spec.ingress
      expect(rule.ports).toEqual([{protocol: 'TCP', port}])
      expect(rule.from).toHaveLength(1)
      // The gateway's pods match the selector, and nothing else is named.
      for (const [key, value] of Object.entries(rule.from[0].podSelector.matchLabels))
        expect(gatewayLabels[key]).toBe(value)
      expect(rule.from[0].namespaceSelector).toBeUndefined()
    }

    // External services run elsewhere: no workload, no budget, no policy for payment.
    expect(docs.some((doc) => doc.metadata.name === 'payment')).toBe(false)
  })

  it('every resource carries the recommended labels, and the namespace enforces the restricted profile', async () => {
    const docs = await documents({}, {namespace: 'apis'})
    for (const doc of docs) {
      expect(doc.metadata.labels).toMatchObject({
        'app.kubernetes.io/name': expect.any(String),
        'app.kubernetes.io/instance': 'my-api',
        'app.kubernetes.io/part-of': 'my-api',
        'app.kubernetes.io/managed-by': 'create-gateway',
      })
      if (doc.kind !== 'Namespace') expect(doc.metadata.namespace).toBe('apis')
    }

    expect(find(docs, 'Namespace', 'apis').metadata.labels['pod-security.kubernetes.io/enforce']).toBe('restricted')
  })

  it('tls certbot: a cert-manager Issuer and Certificate, HTTP-01 passed by the gateway to the solver', async () => {
    const docs = await documents({tls: {mode: 'certbot', email: 'ops@example.com', staging: true}})
    const issuer = find(docs, 'Issuer', 'letsencrypt')
    expect(issuer.spec.acme.server).toBe('https://acme-staging-v02.api.letsencrypt.org/directory')
    expect(issuer.spec.acme.email).toBe('ops@example.com')
    const solverLabels = issuer.spec.acme.solvers[0].http01.ingress.podTemplate.metadata.labels
    const solver = find(docs, 'Service', 'acme-http-solver')
    for (const [key, value] of Object.entries(solver.spec.selector)) expect(solverLabels[key]).toBe(value)

    const certificate = find(docs, 'Certificate', 'gateway')
    expect(certificate.spec).toMatchObject({secretName: 'gateway-tls', dnsNames: ['api.example.com']})
    expect(certificate.spec.issuerRef).toEqual({name: 'letsencrypt', kind: 'Issuer'})
    // cert-manager owns the tls Secret: the export has none, and the pod starts before it exists.
    expect(docs.some((doc) => doc.kind === 'Secret' && doc.metadata.name === 'gateway-tls')).toBe(false)
    const tlsVolume = find(docs, 'Deployment', 'gateway').spec.template.spec.volumes.find((v: Doc) => v.name === 'tls')
    expect(tlsVolume.secret).toMatchObject({secretName: 'gateway-tls', optional: true})

    const gatewayConf = find(docs, 'ConfigMap', 'gateway-nginx').data['conf.d_gateway.conf']
    expect(gatewayConf).toContain('set $acme_solver http://acme-http-solver.my-api.svc.cluster.local:8089;')
    expect(gatewayConf).toContain('ssl_certificate $gateway_tls_dir/fullchain.pem;')
  })

  it('metrics: an exporter sidecar in each gateway pod, Prometheus annotations, a headless Service; none without', async () => {
    const plain = await documents()
    expect(find(plain, 'Deployment', 'gateway').spec.template.spec.containers).toHaveLength(1)
    expect(
      find(plain, 'Deployment', 'gateway').spec.template.metadata.annotations['prometheus.io/scrape'],
    ).toBeUndefined()
    expect(plain.some((doc) => doc.metadata.name === 'gateway-metrics')).toBe(false)

    const docs = await documents({
      metrics: {enabled: true, port: 9200},
      images: {exporter: 'reg.example.com/exporter:1'},
    })
    for (const doc of docs) expect(() => validateAgainstSchema(doc), `${doc.kind} ${doc.metadata.name}`).not.toThrow()
    const template = find(docs, 'Deployment', 'gateway').spec.template
    expect(template.metadata.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '9113',
      'prometheus.io/path': '/metrics',
    })
    const [nginx, exporter] = template.spec.containers
    expect(nginx.name).toBe('nginx')
    expect(exporter).toMatchObject({
      name: 'nginx-exporter',
      image: 'reg.example.com/exporter:1',
      args: ['--nginx.scrape-uri=http://127.0.0.1:8081/nginx_status', '--web.listen-address=:9113'],
      ports: [{name: 'metrics', containerPort: 9113, protocol: 'TCP'}],
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: ['ALL']}},
    })
    // What the exporter scrapes: the status listener on every address of the pod, loopback included.
    expect(find(docs, 'ConfigMap', 'gateway-nginx').data['conf.d_gateway.conf']).toMatch(
      /listen 8081;[\s\S]*?location = \/nginx_status \{\s+stub_status;/,
    )
    const service = find(docs, 'Service', 'gateway-metrics')
    expect(service.spec).toEqual({
      clusterIP: 'None',
      selector: find(docs, 'Deployment', 'gateway').spec.selector.matchLabels,
      ports: [{name: 'metrics', port: 9200, targetPort: 'metrics', protocol: 'TCP'}],
    })
    // Annotations on the pods only: a Prometheus that follows annotated Services too scrapes each pod once.
    expect(service.metadata.annotations).toBeUndefined()
    expect(find(docs, 'Service', 'gateway').spec.ports.map((port: Doc) => port.port)).toEqual([80, 443])
  })

  it('tls off: no https port, no certificate', async () => {
    const docs = await documents({tls: {mode: 'off'}})
    expect(find(docs, 'Service', 'gateway').spec.ports.map((port: Doc) => port.name)).toEqual(['http'])
    expect(docs.some((doc) => doc.metadata.name === 'gateway-tls')).toBe(false)
  })

  it('only the auth files the routes use go into the gateway Secret', async () => {
    const docs = await documents(
      {routes: [{path: '/', service: 'web', auth: 'basic'}]},
      {},
      {
        ...SECRETS,
        gatewayAuth: {htpasswd: SECRETS.gatewayAuth.htpasswd!},
      },
    )
    const volume = find(docs, 'Deployment', 'gateway').spec.template.spec.volumes.find((v: Doc) => v.name === 'auth')
    expect(volume.secret.items).toEqual([{key: 'htpasswd', path: 'htpasswd'}])
    expect(Object.keys(find(docs, 'Secret', 'gateway-auth').data)).toEqual(['htpasswd'])
  })

  it('--registry maps the Django images in kustomization.yaml', async () => {
    const files = renderKubernetes(await exportContext({}, {registry: 'ghcr.io/acme/'}))
    const kustomization = parse(String(files.find((file) => file.path === 'kustomization.yaml')!.content))
    expect(kustomization.images).toEqual([
      {name: 'my-api-web', newName: 'ghcr.io/acme/my-api-web'},
      {name: 'my-api-student-api', newName: 'ghcr.io/acme/my-api-student-api'},
    ])
  })

  it('renders the same bytes from the same input; Secrets are 0600 and git-ignored', async () => {
    const first = renderKubernetes(await exportContext())
    const second = renderKubernetes(await exportContext())
    expect(second).toEqual(first)
    const kustomization = parse(String(first.find((file) => file.path === 'kustomization.yaml')!.content))
    expect(kustomization.resources).toEqual(
      first
        .filter((file) => file.path.endsWith('.yaml') && file.path !== 'kustomization.yaml')
        .map((file) => file.path),
    )
    const ignored = String(first.find((file) => file.path === '.gitignore')!.content)
    for (const file of first) {
      const isSecret = parse(String(file.content))?.kind === 'Secret'
      expect(file.mode ?? 0o644, file.path).toBe(isSecret ? 0o600 : 0o644)
      if (isSecret) expect(ignored.split('\n')).toContain(file.path)
    }
  })

  it('the registry lists every builder once', () => {
    const kinds = RESOURCE_BUILDERS.map((builder) => builder.kind)
    expect(new Set(kinds).size).toBe(kinds.length)
  })
})

describe('export kubernetes: flags', () => {
  const manifest = parseManifest(base)
  it.each([
    [{namespace: 'My_NS'}, /^--namespace: "My_NS" is not a valid namespace/],
    [{namespace: 'kube-system'}, /^--namespace: "kube-system" is shared with the cluster/],
    [{registry: 'https://ghcr.io/acme'}, /^--registry: /],
    [{resolver: 'dns server'}, /^--resolver: /],
  ])('%o is refused naming the flag', (flags, message) => {
    expect(() => kubernetesOptions(manifest, flags)).toThrow(UsageError)
    expect(() => kubernetesOptions(manifest, flags)).toThrow(message)
  })

  it('defaults: the project name as namespace, kube-dns as resolver; an IPv6 resolver gets brackets', () => {
    expect(kubernetesOptions(manifest, {})).toEqual({
      namespace: 'my-api',
      registry: undefined,
      resolver: 'kube-dns.kube-system.svc.cluster.local',
    })
    expect(kubernetesOptions(manifest, {resolver: 'fd00::10'}).resolver).toBe('[fd00::10]')
    expect(kubernetesOptions(manifest, {resolver: '169.254.20.10'}).resolver).toBe('169.254.20.10')
  })
})
