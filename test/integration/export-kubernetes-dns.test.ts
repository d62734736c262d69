import {mkdirSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {retryUntil} from '../../src/util/retry.js'
import {ROOT, tempDir} from '../helpers/cli.js'
import {newRunId, OFFLINE_IMAGES, runCliAsync, waitForEngineAndImages} from '../helpers/e2e.js'
import {exportDocuments, gatewayPodArgs, runProgram} from '../helpers/kubernetes.js'

/**
 * The exported gateway finds a service's replicas through the cluster's DNS at request time, so a
 * scaled Deployment needs no NGINX reload. No cluster here: the gateway container runs as its pod
 * would (uid 101, read-only root), and a stub in its network namespace plays kube-dns (answering for
 * the headless Service from a file the test rewrites) and the Django replicas (127.0.0.1, 127.0.0.2).
 * Every packet stays on that container's loopback.
 */

const root = tempDir('cg-k8s-dns-')
const project = join(root, 'shop')
const out = join(root, 'k8s')
const stubDir = join(root, 'stub')
const runId = newRunId()
const gateway = `cg-k8s-gateway-${runId}`
const stub = `cg-k8s-stub-${runId}`
const SERVICE = 'web.shop.svc.cluster.local'

function docker(...args: string[]) {
  return runProgram('docker', args, 60_000)
}

/** The headless Service's A records, as the stub DNS serves them from now on. */
function setReplicas(addresses: string[]): void {
  const temp = join(stubDir, 'answers.json.tmp')
  writeFileSync(temp, JSON.stringify({[SERVICE]: addresses, 'kube-dns.kube-system.svc.cluster.local': []}), {
    mode: 0o644,
  })
  renameSync(temp, join(stubDir, 'answers.json'))
}

/** GET / through the gateway, from inside its network namespace; which replica answered. */
async function request(): Promise<{status: string; replica?: string; path?: string; host?: string}> {
  const result = await docker(
    'exec',
    gateway,
    'curl',
    '-s',
    '-H',
    'Host: api.localhost',
    '-w',
    '\n%{http_code}',
    'http://127.0.0.1:8080/orders/?page=2',
  )
  const [body = '', status = ''] = result.stdout.split(/\n(?=\d{3}$)/)
  try {
    return {status, ...JSON.parse(body)}
  } catch {
    return {status}
  }
}

const masterPid = async () => (await docker('exec', gateway, 'cat', '/tmp/nginx.pid')).stdout.trim()

beforeAll(async () => {
  await waitForEngineAndImages(300_000)
  const init = await runCliAsync(['init', project, '--yes', '--tls', 'off'], {timeoutMs: 120_000})
  expect(init.status, init.stderr).toBe(0)
  const exported = await runCliAsync(['export', 'kubernetes', '--dir', project, '--out', out], {timeoutMs: 120_000})
  expect(exported.status, exported.stderr).toBe(0)

  mkdirSync(stubDir, {recursive: true})
  setReplicas(['127.0.0.1'])
  const podArgs = gatewayPodArgs(exportDocuments(out), join(root, 'etc-nginx'), [
    'kube-dns.kube-system.svc.cluster.local',
  ])
  const started = await docker(
    'run',
    '-d',
    '--name',
    gateway,
    '--label',
    `create-gateway.test-run=${runId}`,
    ...podArgs,
    OFFLINE_IMAGES.nginx,
    'nginx',
    '-g',
    'daemon off;',
  )
  expect(started.status, started.stderr).toBe(0)
  const stubStarted = await docker(
    'run',
    '-d',
    '--name',
    stub,
    '--label',
    `create-gateway.test-run=${runId}`,
    '--network',
    `container:${gateway}`,
    '-v',
    `${stubDir}:/stub:ro`,
    '-v',
    `${join(ROOT, 'test/fixtures/kubernetes/cluster-stub.py')}:/cluster-stub.py:ro`,
    OFFLINE_IMAGES.python,
    'python3',
    '/cluster-stub.py',
    '8000',
    '2',
  )
  expect(stubStarted.status, stubStarted.stderr).toBe(0)
  await retryUntil(
    async () => request(),
    (answer) => answer.status === '200',
    {
      timeoutMs: 60_000,
      intervalMs: 500,
      describe: 'the gateway answering through the stub DNS',
      explain: (answer) => `last answer: ${JSON.stringify(answer)}`,
    },
  )
})

afterAll(async () => {
  await docker('rm', '-f', gateway, stub)
  rmSync(root, {recursive: true, force: true})
})

describe('the exported gateway in its pod (stub cluster DNS)', () => {
  it('runs as uid 101 on a read-only root and proxies to the service by its cluster DNS name, URI and Host intact', async () => {
    expect((await docker('exec', gateway, 'id', '-u')).stdout.trim()).toBe('101')
    expect((await docker('exec', gateway, 'touch', '/etc/nginx/x')).status).not.toBe(0)
    expect(await request()).toEqual({
      status: '200',
      replica: '127.0.0.1',
      path: '/orders/?page=2',
      host: 'api.localhost',
    })
    // The access log goes to the container's stdout, where `kubectl logs` reads it.
    expect((await docker('logs', gateway)).stdout).toContain('"uri":"/orders/?page=2"')
  })

  it('follows the Service as it scales, without a reload', async () => {
    const pid = await masterPid()
    setReplicas(['127.0.0.2'])
    // The gateway caches an answer for resolverValid (5 s); after that it must ask again.
    const moved = await retryUntil(
      async () => request(),
      (answer) => answer.replica === '127.0.0.2',
      {timeoutMs: 30_000, intervalMs: 500, describe: 'the gateway sending to the new replica'},
    )
    expect(moved.status).toBe('200')

    setReplicas(['127.0.0.1', '127.0.0.2'])
    const seen = await retryUntil(
      async () => {
        const replicas = new Set<string>()
        for (let index = 0; index < 6; index++) replicas.add((await request()).replica ?? 'none')
        return replicas
      },
      (replicas) => replicas.size === 2 && !replicas.has('none'),
      {timeoutMs: 30_000, intervalMs: 500, describe: 'requests spread over both replicas'},
    )
    expect([...seen].sort()).toEqual(['127.0.0.1', '127.0.0.2'])

    expect(await masterPid()).toBe(pid)
    expect((await docker('logs', gateway)).stderr).not.toMatch(/reconfiguring|signal process started/)
  })
})
