import {execFile, spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {chmod, mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {promisify} from 'node:util'

import {djangoServices} from '../../src/manifest/model.js'
import type {Manifest} from '../../src/manifest/schema.js'
import {replicaNames} from '../../src/manifest/stack.js'
import {renderGateway} from '../../src/render/gateway.js'

/**
 * The rendered gateway config, run by the NGINX of the stand-in image (create-gateway-offline/nginx:forky,
 * NGINX 1.30 + njs, the version users run), never the host's: the host needs no NGINX at all.
 *
 * One long-lived container per test file (`sandbox()`, removed by `removeSandboxes`): privileged, with
 * no network but its own loopback, and the file's scratch root bind-mounted at the same path, so a tree
 * on the host is the same path inside. Every NGINX runs there in a private mount namespace
 * (`nsenter` into the container, then `unshare -m`): the tree is bind-mounted on /etc/nginx, /etc/hosts and /etc/host.conf
 * (so upstream names resolve as Docker's DNS answers them: the service name `web` to every replica's
 * address, a container name like my-api-web-1 to its own), /etc/passwd and /etc/group (an `nginx` user
 * for `user nginx;`), /var/log/nginx, /var/lib/nginx, /var/www and the CA bundle. The config runs
 * exactly as rendered, on its real ports 80/443/8081 of the container's loopback. Stub upstreams, a stub
 * DNS server on Docker's 127.0.0.11 and curl run on the host inside the container's network namespace
 * (nsenter -n), so every packet stays on that private loopback.
 */

const run = promisify(execFile)
/** The image whose NGINX runs the configs (fixtures/images/build.sh nginx). */
export const NGINX_IMAGE = process.env.CG_TEST_NGINX_IMAGE ?? 'create-gateway-offline/nginx:forky'
export const NGINX = '/usr/sbin/nginx'
// Mixed-case base64url, as src/render/secrets.ts generates them.
export const API_KEY = 'q3Zx-Wd_8fKpL0aYt7RbNc2HsVe9GmUj4oXiE1lTr6A'
export const BASIC_USER = 'alice'
export const BASIC_PASSWORD = 'wonderland-42'
export const JWT_SECRET = 'Hs256-test-key_0123456789abcdefghijklmnopqrstu'

function sandboxWorks(): boolean {
  if (process.getuid?.() !== 0 || spawnSync('nsenter', ['--version']).status !== 0) return false
  return spawnSync('docker', ['image', 'inspect', NGINX_IMAGE], {stdio: 'ignore', timeout: 30_000}).status === 0
}

/** Whether this machine can run the sandbox: root, nsenter, a Docker engine with the stand-in image. */
export const canRunNginx = sandboxWorks()
export const CANNOT_RUN_NGINX = `needs root, nsenter and a Docker engine with ${NGINX_IMAGE} (bash fixtures/images/build.sh nginx)`

interface Sandbox {
  id: string
  /** The container's main process on the host: its network namespace is the sandbox's loopback. */
  pid: number
  root: string
}

let current: Promise<Sandbox> | undefined
/** The test file's sandbox container, started on first use. */
export async function sandbox(): Promise<Sandbox> {
  current ??= (async () => {
    const root = await mkdtemp(join(tmpdir(), 'nginx-sandbox-'))
    const name = `cg-nginx-sandbox-${process.pid}-${randomBytes(3).toString('hex')}`
    const started = run('docker', [
      'run',
      '--detach',
      '--name',
      name,
      '--label',
      'create-gateway.test=nginx-sandbox',
      '--network',
      'none',
      '--volume',
      `${root}:${root}`,
      '--entrypoint',
      'sleep',
      NGINX_IMAGE,
      'infinity',
    ])
    // A container that was created but did not start still holds its name: remove it before failing.
    const {stdout} = await started.catch(async (error: unknown) => {
      await run('docker', ['rm', '--force', name]).catch(() => undefined)
      throw error
    })
    const id = stdout.trim()
    const {stdout: pid} = await run('docker', ['inspect', '--format', '{{.State.Pid}}', id])
    return {id, pid: Number(pid.trim()), root}
  })()
  return current
}

/**
 * Enter the sandbox container's file system and network from the host: nsenter is several times faster
 * than `docker exec` (no engine round trip, which counts for a test running hundreds of `nginx -t`),
 * needs no capability granted to the container, and a process started so is our own child, so its pid
 * is NGINX's (SIGQUIT stops it gracefully).
 */
async function enter(): Promise<string[]> {
  const {pid} = await sandbox()
  return ['nsenter', '-t', String(pid), '--mount', '--net', '--root', '--wd']
}

/** Run a shell script in the sandbox container. */
export async function inSandbox(script: string): Promise<{stdout: string; stderr: string}> {
  const [command, ...args] = await enter()
  return run(command!, [...args, 'sh', '-c', script], {encoding: 'utf8', timeout: 30_000})
}

/** Remove the sandbox container and every tree this process built: call from the test file's afterAll. */
export async function removeSandboxes(): Promise<void> {
  if (!current) return
  const {id, root} = await current
  current = undefined
  await run('docker', ['rm', '--force', '--volumes', id])
  await rm(root, {recursive: true, force: true})
}

export async function put(path: string, content: string | Buffer, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), {recursive: true})
  await writeFile(path, content)
  await chmod(path, mode)
}

/** A CA and two leaves signed by it: the gateway's certificate and the external payment service's. */
async function makeCertificates(dir: string): Promise<void> {
  const ssl = (...args: string[]) => run('openssl', args, {cwd: dir})
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  await ssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=nginx-config test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign',
  )
  for (const [name, sans] of [
    ['gateway', 'DNS:api.localhost,DNS:localhost'],
    ['payment', 'DNS:payments.example.test'],
  ] as const) {
    await writeFile(join(dir, `${name}.ext`), `subjectAltName=${sans}\n`)
    await ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`)
    await ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.pem`,
    )
  }
}

/** One replica of a Django service, at the loopback address that stands for its container. */
export interface Replica {
  service: string
  /** Its container name, e.g. my-api-web-1. */
  name: string
  ip: string
  port: number
}

export interface Tree {
  dir: string
  replicas: Replica[]
}

/**
 * The private /etc/hosts. `service`: one line per replica under the service's name, as Docker's DNS
 * answers for `web` (what upstreams.conf lists after `init`); `container`: each replica under its
 * container name (what it lists after `scale`). Only one form, so a config that needs the other fails.
 */
export async function writeHosts(tree: Tree, form: 'service' | 'container'): Promise<void> {
  const lines = tree.replicas.map((replica) => `${replica.ip} ${form === 'service' ? replica.service : replica.name}`)
  await put(join(tree.dir, 'hosts'), ['127.0.0.1 localhost', ...lines, ''].join('\n'))
}

/** Render the manifest and lay the files out as the gateway container sees them. */
export async function buildTree(manifest: Manifest): Promise<Tree> {
  const tree = await prepareTree()
  await layOutGateway(tree, manifest)
  return tree
}

/**
 * Everything but the manifest's own files: certificates, secrets, the `nginx` user, the folders. Made
 * once, a tree takes any number of manifests in turn through `layOutGateway`.
 */
export async function prepareTree(): Promise<Tree> {
  const dir = await mkdtemp(join((await sandbox()).root, 'tree-'))
  const etc = join(dir, 'etc-nginx')
  await put(join(etc, 'mime.types'), (await inSandbox('cat /etc/nginx/mime.types')).stdout)

  await makeCertificates(dir)
  await put(join(etc, 'certs/fullchain.pem'), await readFile(join(dir, 'gateway.pem')))
  await put(join(etc, 'certs/privkey.pem'), await readFile(join(dir, 'gateway.key')), 0o600)
  // Trusted by proxy_ssl_verify: the test CA stands in for the system bundle.
  await put(join(dir, 'ca-bundle.crt'), await readFile(join(dir, 'ca.pem')))

  // htpasswd is read by the worker (user nginx) at request time, so it must be readable by it.
  const {stdout: hash} = await run('openssl', ['passwd', '-6', BASIC_PASSWORD])
  await put(join(etc, 'secrets/htpasswd'), `${BASIC_USER}:${hash.trim()}\n`, 0o644)
  await put(join(etc, 'secrets/api-keys.map'), `"${API_KEY}" 1;\n`, 0o600)
  // 0600 and root's, as in a project: only the master reads it; njs in the workers gets $jwt_secret.
  await put(join(etc, 'secrets/jwt-secret.map'), `default "${JWT_SECRET}";\n`, 0o600)

  // glibc returns every address /etc/hosts has for a name only with `multi on` (Debian's default, but
  // not glibc's): ours says so, whatever the host's file does.
  await put(join(dir, 'host.conf'), 'multi on\n')

  // The image's own users: its `nginx` (uid 101) runs the workers, as in the gateway container.
  await put(join(dir, 'passwd'), (await inSandbox('cat /etc/passwd')).stdout)
  await put(join(dir, 'group'), (await inSandbox('cat /etc/group')).stdout)

  for (const sub of ['logs', 'lib', 'www/acme/.well-known/acme-challenge'])
    await mkdir(join(dir, sub), {recursive: true})
  return {dir, replicas: []}
}

/**
 * The manifest's gateway files in the tree, replacing those of an earlier manifest, and the hosts
 * file naming its services. Returns the rendered files, as the project would hold them.
 */
export async function layOutGateway(tree: Tree, manifest: Manifest): Promise<Array<{path: string; content: string}>> {
  const etc = join(tree.dir, 'etc-nginx')
  for (const generated of ['nginx.conf', 'conf.d', 'njs'])
    await rm(join(etc, generated), {recursive: true, force: true})
  const files = (await renderGateway(manifest)).map((file) => ({path: file.path, content: file.content.toString()}))
  for (const file of files) await put(join(etc, file.path.replace(/^gateway\//, '')), file.content)

  const replicas: Replica[] = []
  let next = 2
  for (const service of djangoServices(manifest)) {
    for (const name of replicaNames(manifest, service.name, service.replicas))
      replicas.push({service: service.name, name, ip: `127.0.0.${next++}`, port: service.port})
  }

  tree.replicas = replicas
  await writeHosts(tree, 'service')
  return files
}

/** Shell lines that lay the tree over the container paths, inside a fresh mount namespace. */
export function mounts(dir: string): string {
  const binds: Array<[string, string]> = [
    ['etc-nginx', '/etc/nginx'],
    ['hosts', '/etc/hosts'],
    ['host.conf', '/etc/host.conf'],
    ['passwd', '/etc/passwd'],
    ['group', '/etc/group'],
    ['logs', '/var/log/nginx'],
    ['lib', '/var/lib/nginx'],
    ['www', '/var/www'],
    ['ca-bundle.crt', '/etc/ssl/certs/ca-certificates.crt'],
  ]
  return [
    'set -e',
    ...binds.map(([source, target]) => `mount --bind '${join(dir, source)}' '${target}'`),
    // The pid file (compiled-in default /run/nginx.pid) goes to a private /run.
    'mount -t tmpfs tmpfs /run',
    // The access log is /dev/stdout (-> /proc/self/fd/1): a /proc of the process's own pid namespace so
    // it resolves, and a pipe behind it as in a container (Node gives a child a socket, which Linux
    // does not reopen by that path). `cat` hands on what arrives, and ends when NGINX does.
    'mount -t proc proc /proc',
    'mkfifo /run/stdout',
    'cat /run/stdout &',
    'exec >/run/stdout',
  ].join('\n')
}

/** The command line that runs `script` in the sandbox container, in a mount namespace of its own. */
export async function sandboxCommand(dir: string, script: string): Promise<string[]> {
  return [...(await enter()), 'unshare', '--mount', 'sh', '-c', `${mounts(dir)}\n${script}`]
}

/** `nginx -t` in the sandbox; asynchronous, so a test running hundreds of them keeps its worker responsive. */
export async function nginxTest(dir: string): Promise<{ok: boolean; output: string}> {
  const [command, ...args] = await sandboxCommand(dir, `exec ${NGINX} -t`)
  return new Promise((resolve) => {
    execFile(command!, args, {encoding: 'utf8', timeout: 30_000}, (error, stdout, stderr) =>
      resolve({ok: error === null, output: `${stdout}${stderr}`}),
    )
  })
}
