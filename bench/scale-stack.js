// The engine side of bench/scale.js: commands, containers, `docker exec`, and the seed guide's way of
// scaling (Compose, a hand-written upstream, `nginx -s reload`), kept apart from the measuring.
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {performance} from 'node:perf_hooks'

import Docker from 'dockerode'

import {runCommand, sleep} from './lib.js'

const docker = new Docker()
const now = () => performance.now()

export async function webContainers(project) {
  const list = await docker.listContainers({
    filters: {label: [`com.docker.compose.project=${project}`, 'com.docker.compose.service=web']},
  })
  return Promise.all(
    list.map(async (item) => {
      const info = await docker.getContainer(item.Id).inspect()
      return {
        id: item.Id,
        name: info.Name.slice(1),
        hostname: info.Config.Hostname,
        number: Number(info.Config.Labels['com.docker.compose.container-number']),
      }
    }),
  )
}

export async function gatewayContainer(project) {
  const list = await docker.listContainers({
    all: true,
    filters: {label: [`com.docker.compose.project=${project}`, 'com.docker.compose.service=gateway']},
  })
  return list[0] ? {id: list[0].Id, name: list[0].Names[0].slice(1), state: list[0].State} : undefined
}

export async function execIn(id, cmd) {
  try {
    const exec = await docker.getContainer(id).exec({Cmd: cmd, AttachStdout: true, AttachStderr: true})
    const stream = await exec.start({hijack: true, stdin: false})
    const chunks = []
    await new Promise((resolve) => {
      stream.on('data', (chunk) => chunks.push(chunk))
      stream.on('end', resolve)
      stream.on('close', resolve)
    })
    // Strip the 8-byte multiplexing headers.
    const raw = Buffer.concat(chunks)
    let text = ''
    for (let offset = 0; offset + 8 <= raw.length;) {
      const size = raw.readUInt32BE(offset + 4)
      text += raw.subarray(offset + 8, offset + 8 + size).toString('utf8')
      offset += 8 + size
    }

    return {exitCode: (await exec.inspect()).ExitCode, output: text.trim()}
  } catch (error) {
    return {exitCode: -1, output: error.json?.message ?? error.message}
  }
}

export function upstreamText(project, hosts, port = 8000) {
  return [
    "# Written by bench/scale.js, the seed guide's way: one server line per container name.",
    'upstream web_upstream {',
    '    zone web_upstream 64k;',
    ...hosts.map((host) => `    server ${host}:${port} max_fails=3 fail_timeout=10s;`),
    '    keepalive 16;',
    '    keepalive_timeout 4s;',
    '}',
    '',
  ].join('\n')
}

/** Wait (bounded) until the gateway container runs again: a recreated one may be restarting. */
export async function gatewayRunning(project, limitMs = 60_000) {
  const started = now()
  while (now() - started < limitMs) {
    const gateway = await gatewayContainer(project)
    if (gateway?.state === 'running') return gateway
    await sleep(250)
  }

  return undefined
}

/**
 * The guide's way (section 8): Compose scales, then the upstream is edited by hand and NGINX reloaded.
 * The guide's own lines (web, web_1, web_2) are tried with `nginx -t` once the gateway runs; the file
 * that is reloaded lists the names Compose v1 really gives, <project>_web_N.
 */
export async function seedScale(project, dir, count, notes, options = {}) {
  const started = now()
  const args = ['-p', project, 'up', '-d', ...(options.noRecreate ? ['--no-recreate'] : []), '--scale', `web=${count}`]
  const compose = await runCommand('docker', ['compose', ...args], {cwd: dir, timeoutMs: 300_000})
  const composeLines = `${compose.stdout}\n${compose.stderr}`
    .split('\n')
    .filter((line) => /done|error/i.test(line))
    .map((line) => line.replace(/\s+/g, ' ').trim())
  notes.push(
    `docker compose ${args.join(' ')}: exit ${compose.status} in ${(compose.ms / 1000).toFixed(1)} s; ${[...new Set(composeLines)].join('; ')}`,
  )
  const upstreams = join(dir, 'gateway/conf.d/upstreams.conf')
  const names = (await webContainers(project)).sort((a, b) => a.number - b.number).map((container) => container.name)
  const actual = upstreamText(project, names)
  writeFileSync(upstreams, actual)
  let gateway = await gatewayContainer(project)
  const test = gateway ? await execIn(gateway.id, ['nginx', '-t']) : {exitCode: -1, output: 'no gateway container'}
  const reload = gateway
    ? await execIn(gateway.id, ['nginx', '-s', 'reload'])
    : {exitCode: -1, output: 'no gateway container'}
  const first = (result) =>
    result.output.split('\n').find((line) => /emerg|failed|error|restarting/i.test(line)) ??
    result.output.split('\n')[0]
  notes.push(
    `upstream with Compose's names (${names.join(', ')}): nginx -t exit ${test.exitCode}, nginx -s reload exit ${reload.exitCode}${reload.exitCode === 0 ? '' : `: ${first(reload)}`}`,
  )
  const ms = now() - started
  if (options.checkLiteral) {
    gateway = await gatewayRunning(project)
    if (gateway) {
      // Only tested, never reloaded: the running configuration stays the one above.
      writeFileSync(upstreams, upstreamText(project, ['web', 'web_1', 'web_2'].slice(0, count)))
      const literal = await execIn(gateway.id, ['nginx', '-t'])
      writeFileSync(upstreams, actual)
      notes.push(
        `the guide's literal upstream (server web:8000; server web_1:8000; server web_2:8000): nginx -t exit ${literal.exitCode}: ${first(literal)}`,
      )
    } else {
      notes.push("the gateway did not run again within 60 s, so the guide's literal upstream could not be tested")
    }
  }

  return ms
}
