import {createHash} from 'node:crypto'
import {existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {parseEnv} from 'node:util'
import {parse, parseAllDocuments, stringify} from 'yaml'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {retryUntil} from '../../src/util/retry.js'
import {tempDir} from '../helpers/cli.js'
import {docker, newRunId, OFFLINE_IMAGES, runCliAsync} from '../helpers/e2e.js'
import {findKubectl, gatewayPodArgs, runProgram, validateAgainstSchema} from '../helpers/kubernetes.js'

/**
 * `create-gateway export kubernetes` on a real project (init through the built CLI): an extra Django
 * service, an external one and every auth mode. No cluster runs here: the manifests are checked
 * against the API schemas, rendered by `kubectl kustomize`, and the gateway's configuration is run by
 * the stand-in NGINX image the way the Deployment runs it (uid 101, read-only root, only /tmp writable).
 */

// Documents are read back as plain YAML.
type Doc = any

const root = tempDir('cg-k8s-')
const project = join(root, 'shop')
const out = join(root, 'k8s')
const runId = newRunId()
const mode = (path: string) => statSync(path).mode & 0o777

// Asynchronous: a synchronous spawn would block the test worker, which must keep answering vitest.
function exportCli(...args: string[]) {
  return runCliAsync(['export', 'kubernetes', '--dir', project, ...args], {timeoutMs: 120_000})
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((file) => file.endsWith('.yaml'))
    .sort()
}

function documents(dir: string): Doc[] {
  return yamlFiles(dir)
    .filter((file) => file !== 'kustomization.yaml')
    .map((file) => parse(readFileSync(join(dir, file), 'utf8')))
}

/** Every file under `dir` (recursively) and a hash of its bytes. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir, {recursive: true, encoding: 'utf8'})
      .filter((file) => statSync(join(dir, file)).isFile())
      .sort()
      .map((file) => [
        file,
        createHash('sha256')
          .update(readFileSync(join(dir, file)))
          .digest('hex'),
      ]),
  )
}

function editManifest(edit: (manifest: Doc) => void): void {
  const path = join(project, 'gateway.yaml')
  const manifest = parse(readFileSync(path, 'utf8'))
  edit(manifest)
  writeFileSync(path, stringify(manifest))
}

beforeAll(async () => {
  const init = await runCliAsync(
    [
      'init',
      project,
      '--yes',
      '--service',
      'student-api',
      '--external',
      'payment=https://payment.example.com',
      '--route',
      '/payment/=payment:api-key',
      '--route',
      '/private/=web:jwt',
      // The metrics profile: the exporter as a sidecar of the gateway pods.
      '--metrics',
      '9113',
    ],
    {timeoutMs: 120_000},
  )
  expect(init.status, init.stderr).toBe(0)
})

afterAll(() => {
  rmSync(root, {recursive: true, force: true})
})

describe('export kubernetes (the built CLI)', () => {
  it('writes a kustomize folder whose every document validates against the Kubernetes API schemas', async () => {
    const result = await exportCli('--out', out)
    expect(result.status, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/created\s+gateway-deployment\.yaml/)
    expect(result.stdout).toContain(`kubectl apply -k`)

    const docs = documents(out)
    const kinds = docs.map((doc) => `${doc.kind}/${doc.metadata.name}`).sort()
    expect(kinds).toEqual(
      [
        'ConfigMap/gateway-nginx',
        'Deployment/gateway',
        'Deployment/student-api',
        'Deployment/web',
        'Namespace/shop',
        'NetworkPolicy/student-api',
        'NetworkPolicy/web',
        'PodDisruptionBudget/gateway',
        'PodDisruptionBudget/student-api',
        'PodDisruptionBudget/web',
        'Secret/gateway-auth',
        'Secret/gateway-tls',
        'Secret/student-api-django',
        'Secret/web-django',
        'Service/gateway',
        'Service/gateway-metrics',
        'Service/student-api',
        'Service/web',
      ].sort(),
    )
    for (const doc of docs) expect(() => validateAgainstSchema(doc), `${doc.kind}/${doc.metadata.name}`).not.toThrow()

    for (const name of ['web', 'student-api', 'gateway']) {
      const pod = docs.find((doc) => doc.kind === 'Deployment' && doc.metadata.name === name).spec.template.spec
      expect(pod.securityContext.runAsNonRoot, name).toBe(true)
      // The metrics exporter beside NGINX has no probe: the pod's readiness is NGINX's (checked below).
      for (const container of pod.containers.filter((entry: Doc) => entry.name !== 'nginx-exporter')) {
        expect(container.readinessProbe.httpGet.path, name).toBe('/healthz')
        expect(container.livenessProbe.httpGet.path, name).toBe('/healthz')
        expect(container.resources.limits, name).toBeDefined()
        expect(container.securityContext, name).toMatchObject({
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
        })
      }
    }

    for (const file of readdirSync(out)) {
      const isSecret = file.endsWith('-secret.yaml')
      expect(mode(join(out, file)), file).toBe(isSecret ? 0o600 : 0o644)
    }
  })

  it("the Secrets carry exactly the project's secrets, and nothing else holds them", () => {
    const docs = documents(out)
    const secrets = Object.fromEntries(
      docs
        .filter((doc) => doc.kind === 'Secret')
        .map((doc) => [
          doc.metadata.name,
          Object.fromEntries(
            Object.entries(doc.data as Record<string, string>).map(([key, value]) => [
              key,
              Buffer.from(value, 'base64').toString('utf8'),
            ]),
          ),
        ]),
    )
    const env = parseEnv(readFileSync(join(project, '.env'), 'utf8'))
    const file = (path: string) => readFileSync(join(project, path), 'utf8')
    expect(secrets).toEqual({
      'web-django': {DJANGO_SECRET_KEY: env.WEB_SECRET_KEY},
      'student-api-django': {DJANGO_SECRET_KEY: env.STUDENT_API_SECRET_KEY},
      'gateway-auth': {
        htpasswd: file('secrets/htpasswd'),
        'api-keys.map': file('secrets/api-keys.map'),
        'jwt-secret.map': file('secrets/jwt-secret.map'),
      },
      'gateway-tls': {'tls.crt': file('certs/fullchain.pem'), 'tls.key': file('certs/privkey.pem')},
    })

    // No secret value in a ConfigMap, an env value or anywhere outside the Secrets.
    const values = [
      env.WEB_SECRET_KEY!,
      env.STUDENT_API_SECRET_KEY!,
      ...file('secrets/api-keys.txt')
        .split('\n')
        .filter((line) => line && !line.startsWith('#')),
      file('secrets/jwt-secret.txt').trim(),
      file('secrets/basic-auth.txt').trim().split(':')[1]!,
      file('secrets/htpasswd').trim().split(':')[1]!,
    ]
    for (const name of readdirSync(out).filter((name) => !name.endsWith('-secret.yaml'))) {
      const text = readFileSync(join(out, name), 'utf8')
      for (const value of values) expect(text.includes(value), `${name} holds a secret`).toBe(false)
    }
  })

  it('metrics: the exporter is a locked-down sidecar of each gateway pod, annotated for Prometheus, behind a headless Service', () => {
    const docs = documents(out)
    const gateway = docs.find((doc) => doc.kind === 'Deployment' && doc.metadata.name === 'gateway').spec.template
    expect(gateway.metadata.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '9113',
      'prometheus.io/path': '/metrics',
    })
    expect(gateway.spec.containers.map((container: Doc) => container.name)).toEqual(['nginx', 'nginx-exporter'])
    const exporter = gateway.spec.containers[1]
    expect(exporter.image).toBe('nginx/nginx-prometheus-exporter:1.5.3')
    // NGINX's stub_status on the pod's own loopback: the status listener, not a port of the LoadBalancer.
    expect(exporter.args).toEqual([
      '--nginx.scrape-uri=http://127.0.0.1:8081/nginx_status',
      '--web.listen-address=:9113',
    ])
    expect(exporter.ports).toEqual([{name: 'metrics', containerPort: 9113, protocol: 'TCP'}])
    expect(exporter.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: {drop: ['ALL']},
    })
    expect(exporter.resources.limits).toEqual({cpu: '250m', memory: '64Mi'})
    const config = docs.find((doc) => doc.kind === 'ConfigMap' && doc.metadata.name === 'gateway-nginx').data
    expect(config['conf.d_gateway.conf']).toMatch(/listen 8081;[\s\S]*?location = \/nginx_status \{\s+stub_status;/)

    const service = docs.find((doc) => doc.kind === 'Service' && doc.metadata.name === 'gateway-metrics')
    expect(service.spec).toEqual({
      clusterIP: 'None',
      selector: {'app.kubernetes.io/name': 'gateway', 'app.kubernetes.io/instance': 'shop'},
      ports: [{name: 'metrics', port: 9113, targetPort: 'metrics', protocol: 'TCP'}],
    })
    const loadBalancer = docs.find((doc) => doc.kind === 'Service' && doc.metadata.name === 'gateway')
    expect(loadBalancer.spec.ports.map((port: Doc) => port.port)).toEqual([80, 443])
  })

  it('kubectl kustomize renders the folder into every resource, in the namespace', async () => {
    const kubectl = await findKubectl()
    const rendered = await runProgram(kubectl, ['kustomize', out])
    expect(rendered.status, rendered.stderr).toBe(0)
    const docs = parseAllDocuments(rendered.stdout).map((doc) => doc.toJS())
    expect(docs).toHaveLength(documents(out).length)
    for (const doc of docs) {
      if (doc.kind !== 'Namespace') expect(doc.metadata.namespace, `${doc.kind}/${doc.metadata.name}`).toBe('shop')
      expect(() => validateAgainstSchema(doc)).not.toThrow()
    }
  })

  it("the gateway's ConfigMap config passes nginx -t in the stand-in NGINX, run as the Deployment runs it", async () => {
    await retryUntil(
      async () => {
        try {
          await docker.getImage(OFFLINE_IMAGES.nginx).inspect()
          return true
        } catch {
          return false
        }
      },
      (ready) => ready,
      {timeoutMs: 300_000, intervalMs: 2000, describe: `image ${OFFLINE_IMAGES.nginx} (fixtures/images/build.sh)`},
    )

    // The cluster DNS names the config refers to; NGINX resolves the resolver's name when it loads.
    const hosts = ['kube-dns.kube-system', 'web.shop', 'student-api.shop'].map((name) => `${name}.svc.cluster.local`)
    const podArgs = gatewayPodArgs(documents(out), join(root, 'etc-nginx'), hosts)
    const name = `cg-k8s-nginx-${runId}`
    const test = await runProgram('docker', [
      'run',
      '--rm',
      '--name',
      name,
      ...podArgs,
      OFFLINE_IMAGES.nginx,
      'nginx',
      '-t',
    ])
    expect(test.stderr).toContain('test is successful')
    expect(test.status, test.stderr).toBe(0)
  })

  it('with tls certbot, the config passes nginx -t before cert-manager has issued the certificate', async () => {
    const copy = join(root, 'shop-certbot')
    await runProgram('cp', ['-a', project, copy])
    const manifestPath = join(copy, 'gateway.yaml')
    const manifest = parse(readFileSync(manifestPath, 'utf8'))
    manifest.tls = {mode: 'certbot', email: 'ops@example.com'}
    writeFileSync(manifestPath, stringify(manifest))
    const certbotOut = join(root, 'k8s-certbot')
    const result = await runCliAsync(['export', 'kubernetes', '--dir', copy, '--out', certbotOut], {
      timeoutMs: 120_000,
    })
    expect(result.status, result.stderr).toBe(0)

    const docs = documents(certbotOut)
    expect(docs.some((doc) => doc.kind === 'Secret' && doc.metadata.name === 'gateway-tls')).toBe(false)
    const hosts = ['kube-dns.kube-system', 'web.shop', 'student-api.shop', 'acme-http-solver.shop'].map(
      (name) => `${name}.svc.cluster.local`,
    )
    const podArgs = gatewayPodArgs(docs, join(root, 'etc-nginx-certbot'), hosts)
    const test = await runProgram('docker', ['run', '--rm', ...podArgs, OFFLINE_IMAGES.nginx, 'nginx', '-t'])
    expect(test.stderr).toContain('test is successful')
    expect(test.status, test.stderr).toBe(0)
  })

  it('again on the same project: the same bytes, and it says nothing changed', async () => {
    const before = snapshot(out)
    const result = await exportCli('--out', out)
    expect(result.status, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/all unchanged/)
    expect(snapshot(out)).toEqual(before)
  })

  it('after an edit of gateway.yaml it names the files that changed, and removes those of a removed service', async () => {
    editManifest((manifest) => {
      manifest.services.web.replicas = 4
    })
    const scaled = await exportCli('--out', out)
    expect(scaled.status, scaled.stderr).toBe(0)
    expect(scaled.stdout).toMatch(/1 of \d+ files written or removed\n\s+changed\s+web-deployment\.yaml\n/)
    expect(parse(readFileSync(join(out, 'web-deployment.yaml'), 'utf8')).spec.replicas).toBe(4)

    editManifest((manifest) => {
      delete manifest.services['student-api']
      manifest.routes = manifest.routes.filter((route: Doc) => route.service !== 'student-api')
    })
    const removed = await exportCli('--out', out)
    expect(removed.status, removed.stderr).toBe(0)
    for (const file of [
      'student-api-deployment.yaml',
      'student-api-service.yaml',
      'student-api-django-secret.yaml',
      'student-api-poddisruptionbudget.yaml',
      'student-api-networkpolicy.yaml',
    ]) {
      expect(removed.stdout).toMatch(new RegExp(`removed\\s+${file.replace(/\./g, '\\.')}`))
      expect(existsSync(join(out, file)), file).toBe(false)
    }

    expect(removed.stdout).toMatch(/changed\s+kustomization\.yaml/)
  })
})

describe('export kubernetes: bad input exits 2 naming the flag, and writes nothing', () => {
  it.each([
    {args: [], message: /^Error: --out: name the folder/m},
    {args: ['--out', '{fresh}', '--namespace', 'Not_Valid'], message: /^Error: --namespace: /m},
    {args: ['--out', '{fresh}', '--registry', 'http://registry'], message: /^Error: --registry: /m},
    {args: ['--out', '{file}'], message: /^Error: --out: .* is a file/m},
    {args: ['--out', '{project}'], message: /^Error: --out: /m},
    {args: ['--out', '{foreign}'], message: /^Error: --out: .* holds no earlier export/m},
  ])('$args', async ({args, message}) => {
    const dir = tempDir('cg-k8s-bad-')
    const fresh = join(dir, 'fresh')
    const file = join(dir, 'file.yaml')
    writeFileSync(file, 'mine\n')
    const foreign = join(dir, 'foreign')
    mkdirSync(foreign)
    writeFileSync(join(foreign, 'notes.txt'), 'mine\n')
    const paths: Record<string, string> = {'{fresh}': fresh, '{file}': file, '{project}': project, '{foreign}': foreign}
    const before = snapshot(project)
    const result = await exportCli(...args.map((arg) => paths[arg] ?? arg))
    expect(result.status, result.stderr).toBe(2)
    expect(result.stderr).toMatch(message)
    expect(result.stderr.trim().split('\n').length, result.stderr).toBeLessThanOrEqual(2)
    expect(existsSync(fresh)).toBe(false)
    expect(readFileSync(file, 'utf8')).toBe('mine\n')
    expect(readdirSync(foreign)).toEqual(['notes.txt'])
    expect(snapshot(project)).toEqual(before)
    rmSync(dir, {recursive: true, force: true})
  })

  it('a project without its secret files is refused, naming the file', async () => {
    const dir = tempDir('cg-k8s-nosecret-')
    const copy = join(dir, 'copy')
    await runProgram('cp', ['-a', project, copy])
    rmSync(join(copy, 'secrets/jwt-secret.map'))
    const target = join(dir, 'k8s')
    const result = await runCliAsync(['export', 'kubernetes', '--dir', copy, '--out', target], {timeoutMs: 120_000})
    expect(result.status, result.stderr).toBe(2)
    expect(result.stderr).toMatch(/secrets\/jwt-secret\.map is missing/)
    expect(existsSync(target)).toBe(false)
    rmSync(dir, {recursive: true, force: true})
  })
})
