#!/usr/bin/env node
// `node bench/top-engine.js [lines]` (after `npm run build`, with the engine and the stand-in NGINX
// image; run it under the e2e lock): figures, not assertions. A container labelled as a project's
// gateway, with the gateway's log settings (json-file, 3 x 10 MB), prints N access-log lines (default
// 200,000, more than the cap keeps) to stdout; then this times top's first read through the engine
// (what `top --once` does before parsing) and one follow refresh. The container is removed at the end.
import {execFileSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {connectEngine} from '../dist/docker/engine.js'
import {GatewayAccessLog} from '../dist/top/source.js'

const count = Number(process.argv[2] ?? 200_000)
const image = process.env.CG_TEST_NGINX_IMAGE ?? 'create-gateway-offline/nginx:forky'
const project = `cgbench-top-${process.pid}`
const dir = mkdtempSync(join(tmpdir(), 'cg-bench-top-engine-'))
const lines = []
for (let index = 0; index < count; index += 1)
  lines.push(
    JSON.stringify({
      time: new Date(Date.UTC(2026, 0, 1) + index).toISOString().replace('Z', '+00:00'),
      request_id: `r${index}`,
      remote_addr: `172.18.0.${index % 40}`,
      method: 'GET',
      uri: `/api/items/${index % 100}`,
      status: 200,
      bytes: 310,
      request_time: 0.004,
      upstream_addr: `172.18.0.${100 + (index % 4)}:8000`,
      upstream_status: '200',
      upstream_response_time: '0.004',
      host: 'api.localhost',
      user_agent: 'bench',
      route: '/api/',
      service: 'web',
    }),
  )
writeFileSync(join(dir, 'access.log'), lines.join('\n') + '\n')
const docker = (...args) => execFileSync('docker', args, {encoding: 'utf8'}).trim()
let id = ''
try {
  id = docker(
    'run',
    '--detach',
    '--network',
    'none',
    '--label',
    `com.docker.compose.project=${project}`,
    '--label',
    'com.docker.compose.service=gateway',
    '--log-driver',
    'json-file',
    '--log-opt',
    'max-size=10m',
    '--log-opt',
    'max-file=3',
    '--volume',
    `${dir}/access.log:/access.log:ro`,
    image,
    'sh',
    '-c',
    'cat /access.log; sleep 600',
  )
  // Until the engine has written every line (its log stops growing).
  const logPath = docker('inspect', '--format', '{{.LogPath}}', id)
  const logBytes = () => Number(execFileSync('sh', ['-c', `cat '${logPath}'* | wc -c`], {encoding: 'utf8'}).trim())
  let size = -1
  for (let tries = 0; tries < 120; tries += 1) {
    const now = logBytes()
    if (now === size && now > 0) break
    size = now
    await new Promise((resolve) => setTimeout(resolve, 1000))
  }

  const engine = await connectEngine()
  const source = new GatewayAccessLog(engine, project)
  const began = process.hrtime.bigint()
  const cpuBefore = process.cpuUsage()
  const first = await source.next()
  const ms = Number(process.hrtime.bigint() - began) / 1e6
  const cpu = process.cpuUsage(cpuBefore)
  const refreshBegan = process.hrtime.bigint()
  await source.next()
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const refresh = await source.next()
  const refreshMs = Number(process.hrtime.bigint() - refreshBegan) / 1e6 - 1000
  source.close()
  console.log(
    `top over the engine: ${count.toLocaleString('en')} lines printed, the engine kept ${(size / 2 ** 20).toFixed(1)} MiB ` +
      `(json-file, 3 x 10 MB); the first read returned ${first.length.toLocaleString('en')} lines in ${(ms / 1000).toFixed(2)} s wall, ` +
      `${((cpu.user + cpu.system) / 1e6).toFixed(2)} s CPU of ours; a refresh with nothing new: ${refresh.length} lines, ${Math.max(0, refreshMs).toFixed(0)} ms`,
  )
} finally {
  if (id) docker('rm', '--force', id)
  rmSync(dir, {recursive: true, force: true})
}
