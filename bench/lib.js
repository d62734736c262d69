// What the bench scripts share: where the CLI is, child processes with a time limit, free ports on
// 127.0.0.1 (the only address a bench sends traffic to), a median, progress lines on stderr. Plain
// JavaScript, so `node bench/<part>.js` runs on the built CLI without a compile step.
import {spawn} from 'node:child_process'
import {rmSync} from 'node:fs'
import {createServer} from 'node:net'
import {dirname, join} from 'node:path'
import {performance} from 'node:perf_hooks'
import {fileURLToPath} from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..')
export const cli = join(root, 'bin', 'run.js')
export const log = (line) => process.stderr.write(`- ${line}\n`)
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** The middle value (mean of the two middle ones), ignoring missing figures; null when none is left. */
export function median(values) {
  const sorted = values.filter((value) => value !== null && Number.isFinite(value)).sort((a, b) => a - b)
  if (sorted.length === 0) return null
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/**
 * Run a command to its end (killed after `timeoutMs`, default 5 min): its exit status (-1 when it could
 * not start), output, and how long it took. Never throws, so a bench can report a failed step.
 */
export function runCommand(command, args, options = {}) {
  const started = performance.now()
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? root,
      env: {...process.env, NO_COLOR: '1', ...options.env},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000)
    const done = (status, extra = '') => {
      clearTimeout(timer)
      resolve({status, stdout, stderr: `${stderr}${extra}`, ms: performance.now() - started})
    }
    child.on('error', (error) => done(-1, error.message))
    child.on('close', (status) => done(status))
  })
}

/** runCommand, throwing with the command's stderr when it does not exit 0. */
export async function mustRun(command, args, options) {
  const result = await runCommand(command, args, options)
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status}):\n${result.stderr}`)
  return result
}

export function portFree(port) {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({host: '127.0.0.1', port, exclusive: true}, () => server.close(() => resolve(true)))
  })
}

/**
 * `count` consecutive free ports on 127.0.0.1 starting at a random multiple of `count` in [from, from +
 * 1000): each bench part has its own thousand, so parts and test suites sharing the engine never meet.
 */
export async function pickPorts(from, count) {
  const slots = Math.floor(1000 / count) - 1
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = from + count * Math.floor(Math.random() * slots)
    const ports = Array.from({length: count}, (_, index) => first + index)
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return ports
  }

  throw new Error(`no ${count} free ports in ${from}-${from + 999} on 127.0.0.1`)
}

/**
 * Remove everything a bench part made for one Compose project, whatever state a failure left it in:
 * `create-gateway down`, then Compose's own down (the seed's way starts containers through Compose), then
 * any container, network or image still labelled with the project, then the working directory.
 */
export async function removeProject(docker, project, dir, workdir) {
  await runCommand(process.execPath, [cli, 'down', '--dir', dir], {timeoutMs: 120_000})
  await runCommand('docker', ['compose', '-p', project, 'down', '--remove-orphans'], {cwd: dir, timeoutMs: 120_000})
  const label = {label: [`com.docker.compose.project=${project}`]}
  const quietly = (promise) => promise.catch(() => {})
  for (const container of await docker.listContainers({all: true, filters: label}))
    await quietly(docker.getContainer(container.Id).remove({force: true}))
  for (const network of await docker.listNetworks({filters: label}))
    await quietly(docker.getNetwork(network.Id).remove())
  for (const image of await docker.listImages({filters: label}))
    await quietly(docker.getImage(image.Id).remove({force: true}))
  rmSync(workdir, {recursive: true, force: true})
}

/**
 * `init` flags for the base images: the official ones when the engine has them (or can pull them),
 * else the offline stand-ins fixtures/images/build.sh makes. Returns the flags and which it chose.
 */
export async function baseImageFlags(docker) {
  const official = await docker
    .getImage('python:3.12-slim')
    .inspect()
    .then(
      () => true,
      () => false,
    )
  const flags = official
    ? []
    : ['--python-image', 'create-gateway-offline/python:forky', '--nginx-image', 'create-gateway-offline/nginx:forky']
  return {flags, offline: !official}
}
