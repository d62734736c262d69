#!/usr/bin/env node
// `npm run bench`: figures, not assertions. Prints wall times on one generated project, in one run:
//   - `create-gateway up` vs `docker compose up -d --build` (Compose v2), both from a stopped stack
//     with images already built, and the ratio (goal: ours <= 1.0);
//   - then bench/scale.js, if present, for the scale figures;
//   - then bench/gateway.js, the gateway's own cost (direct to Gunicorn vs ours vs the seed's nginx.conf).
// `npm run bench -- gateway [--json ...]` runs only the last part, with its flags.
// Traffic goes only to 127.0.0.1. Needs a Docker engine and the offline images (fixtures/images/build.sh)
// or the official ones.
import {spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {request} from 'node:https'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const cli = join(root, 'bin', 'run.js')
const [part, ...partArgs] = process.argv.slice(2)
if (part === 'gateway') {
  const gateway = spawnSync(process.execPath, [join(root, 'bench', 'gateway.js'), ...partArgs], {stdio: 'inherit'})
  process.exit(gateway.status ?? 1)
}

const ports = {http: Number(process.env.BENCH_HTTP_PORT ?? 27080), https: Number(process.env.BENCH_HTTPS_PORT ?? 27443)}
const offline = spawnSync('docker', ['image', 'inspect', 'python:3.12-slim'], {stdio: 'ignore'}).status !== 0
const images = offline
  ? ['--python-image', 'create-gateway-offline/python:forky', '--nginx-image', 'create-gateway-offline/nginx:forky']
  : []

function run(command, args, options = {}) {
  const started = process.hrtime.bigint()
  const result = spawnSync(command, args, {encoding: 'utf8', timeout: 600_000, ...options})
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (result.status !== 0 && !options.allowFailure) {
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}):\n${result.stdout}\n${result.stderr}`)
  }

  return {ms, ...result}
}

function getApi(ca, domain) {
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: ports.https,
        path: '/api/',
        servername: domain,
        headers: {host: domain},
        ca,
        timeout: 2000,
      },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode))
      },
    )
    req.on('error', () => resolve(0))
    req.on('timeout', () => req.destroy())
    req.end()
  })
}

/** Poll until /api/ answers 200 through the gateway, bounded. */
async function untilServing(dir, domain, limitMs = 120_000) {
  const ca = readFileSync(join(dir, 'certs', 'ca.pem'))
  const started = Date.now()
  while (Date.now() - started < limitMs) {
    if ((await getApi(ca, domain)) === 200) return Date.now() - started
    await new Promise((resolve) => setTimeout(resolve, 200))
  }

  return undefined
}

const workdir = mkdtempSync(join(tmpdir(), 'cg-bench-'))
const name = `bench-${process.pid}`
const dir = join(workdir, name)
const seconds = (ms) => (ms / 1000).toFixed(1) + ' s'
try {
  run(process.execPath, [
    cli,
    'init',
    dir,
    '--yes',
    '--name',
    name,
    '--http-port',
    String(ports.http),
    '--https-port',
    String(ports.https),
    ...images,
  ])
  const domain = 'api.localhost'
  console.log(`project ${name} in ${dir} (${offline ? 'offline stand-in images' : 'official images'})`)

  // Warm-up: build the images once so both contenders start from built images and a stopped stack.
  run(process.execPath, [cli, 'up', '--dir', dir])
  run(process.execPath, [cli, 'down', '--dir', dir])

  const ours = run(process.execPath, [cli, 'up', '--dir', dir])
  const oursServing = await untilServing(dir, domain)
  console.log(
    `create-gateway up:            ${seconds(ours.ms)} (command), then /api/ 200 after ${oursServing === undefined ? 'never' : `${oursServing} ms more`}`,
  )
  run(process.execPath, [cli, 'down', '--dir', dir])

  const compose = run('docker', ['compose', 'up', '-d', '--build'], {cwd: dir, allowFailure: true})
  const composeServing = await untilServing(dir, domain, 60_000)
  console.log(
    `docker compose up -d --build: ${seconds(compose.ms)} (command, exit ${compose.status}), then /api/ 200 ${composeServing === undefined ? 'never within 60 s' : `after ${composeServing} ms more`}`,
  )
  console.log(`ratio ours / docker compose (command wall time): ${(ours.ms / compose.ms).toFixed(2)}`)
  run('docker', ['compose', 'down'], {cwd: dir, allowFailure: true})
  run(process.execPath, [cli, 'down', '--dir', dir], {allowFailure: true})
} finally {
  rmSync(workdir, {recursive: true, force: true})
}

const scaleBench = join(root, 'bench', 'scale.js')
if (existsSync(scaleBench)) {
  console.log('')
  const scale = spawnSync(process.execPath, [scaleBench], {stdio: 'inherit'})
  process.exitCode = scale.status ?? 1
}

console.log('')
const gateway = spawnSync(process.execPath, [join(root, 'bench', 'gateway.js')], {stdio: 'inherit'})
if (gateway.status !== 0) process.exitCode = gateway.status ?? 1
