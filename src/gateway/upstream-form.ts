import {randomBytes} from 'node:crypto'

import {engineFailure, type Engine} from '../docker/engine.js'
import {readLines} from '../docker/gateway-log.js'
import {removeQuietly} from '../docker/rollback.js'
import {LABELS, runId} from '../docker/spec.js'
import {OperationError} from '../errors.js'
import {djangoServices} from '../manifest/model.js'
import type {Manifest} from '../manifest/schema.js'
import {PROJECT_PATHS} from '../manifest/stack.js'
import {
  describeVersion,
  RESOLVE_SINCE,
  supportsResolve,
  versionOfNginxV,
  type NginxVersion,
} from '../render/nginx-version.js'
import {retryUntil, systemClock, type Clock} from '../util/retry.js'
import {followsDns, readUpstreamsFile, renderUpstreamsWith, upstreamHosts, writeUpstreamsFile} from './upstreams.js'

/**
 * `init` and `render` choose the upstreams.conf form from the gateway image's tag; `up` checks the
 * image itself, since a tag such as `stable` or a stand-in's `forky` says nothing of the version: an
 * NGINX older than 1.27.3 cannot load `server web:8000 resolve`, so the file goes back to the reload
 * form before the gateway starts (the other way round is not needed: the reload form loads anywhere).
 */

const PROBE_TIMEOUT_MS = 60_000

/** `nginx -v` in a throwaway container of `image` (no network); undefined when it prints no version. */
export async function nginxVersionOf(
  engine: Engine,
  image: string,
  project: string,
  clock: Clock = systemClock,
  run?: string,
): Promise<NginxVersion | undefined> {
  const name = `${project}-nginx-version-${randomBytes(4).toString('hex')}`
  let id: string
  try {
    id = await engine.createContainer({
      name,
      Image: image,
      Entrypoint: ['nginx'],
      Cmd: ['-v'],
      // A one-off of the project (as `docker compose run` marks them): never taken for a replica.
      Labels: {[LABELS.project]: project, [LABELS.oneoff]: 'True', ...(run ? {[LABELS.runId]: run} : {})},
      HostConfig: {NetworkMode: 'none'},
    })
  } catch (error) {
    throw engineFailure(`Creating ${name} (nginx -v in ${image})`, error)
  }

  try {
    await engine.startContainer(id)
    await retryUntil(
      async () => {
        const state = await engine.container(id)
        if (!state) throw new OperationError(`${name} disappeared while it ran nginx -v`)
        return state
      },
      (state) => !state.running && state.status !== 'created',
      {timeoutMs: PROBE_TIMEOUT_MS, intervalMs: 100, clock, describe: `nginx -v in ${image} (${name})`},
    )
    const output = (await readLines(engine, id, {tail: 'all'})).map((line) => line.text).join('\n')
    return versionOfNginxV(output)
  } finally {
    await removeQuietly(engine, [{id, name}])
  }
}

/**
 * Before the gateway starts: when upstreams.conf follows DNS but the gateway image's NGINX is older
 * than 1.27.3, rewrite it in the reload form. Returns what it did, in a sentence for up's output.
 */
export async function fitUpstreamsToNginx(
  engine: Engine,
  dir: string,
  manifest: Manifest,
  image: string,
  clock: Clock = systemClock,
): Promise<string | undefined> {
  const text = (await readUpstreamsFile(dir))?.toString('utf8')
  const services = djangoServices(manifest).map((service) => service.name)
  if (text === undefined || services.length === 0 || !followsDns(text, services)) return undefined
  const version = await nginxVersionOf(engine, image, manifest.name, clock, runId())
  if (supportsResolve(version)) return undefined
  await writeUpstreamsFile(dir, await renderUpstreamsWith(manifest, upstreamHosts(manifest, text), {}, 'reload'))
  return `${image} runs NGINX ${describeVersion(version!)}, older than ${RESOLVE_SINCE.join('.')}: rewrote ${PROJECT_PATHS.upstreams} in the reload form (scale and updates reload NGINX)`
}
