import {randomBytes} from 'node:crypto'
import {mkdir} from 'node:fs/promises'
import {resolve} from 'node:path'

import type Docker from 'dockerode'

import {demuxLines, Demuxer, LineSplitter} from '../docker/demux.js'
import {engineFailure, engineMessage, type ContainerState, type Engine} from '../docker/engine.js'
import {containerLabels, LABELS, runId} from '../docker/spec.js'
import {OperationError, UsageError} from '../errors.js'
import type {Manifest} from '../manifest/schema.js'
import {buildStackSpec, PROJECT_PATHS, type StackToolSpec} from '../manifest/stack.js'
import {retryUntil, systemClock, WaitTimeoutError, type Clock} from '../util/retry.js'
import type {Progress} from '../util/progress.js'

/**
 * Certbot as a one-off container, created through the engine API from the stack's `certbot` tool spec
 * (the same description the compose file's certbot service comes from): on the project network, with
 * certbot/ and acme-webroot/ of the project mounted, labelled like `docker compose run` does it.
 */

export const DEFAULT_CERTBOT_TIMEOUT_MS = 300_000
const POLL_INTERVAL_MS = 500

export interface CertbotRun {
  exitCode: number
  /** stdout and stderr, in order. */
  output: string
  ms: number
}

export interface RunCertbotOptions {
  engine: Engine
  dir: string
  manifest: Manifest
  args: string[]
  /** Extra environment (REQUESTS_CA_BUNDLE) and read-only file mounts (the ACME server's CA). */
  env?: Record<string, string>
  files?: Array<{source: string; target: string}>
  timeoutMs?: number
  clock?: Clock
  /** Each line certbot prints, as it prints it. */
  onOutput?: (line: string) => void
  /** The shell environment (for the test run id label). */
  processEnv?: NodeJS.ProcessEnv
}

export function certbotTool(manifest: Manifest): StackToolSpec {
  const tool = buildStackSpec(manifest).tools.find((spec) => spec.service === 'certbot')
  if (!tool) {
    throw new UsageError(
      `tls.mode is ${manifest.tls.mode} in gateway.yaml: certbot manages certificates only in certbot mode`,
      {
        hint: 'Set tls.mode: certbot and tls.email in gateway.yaml and run `create-gateway render` (or start over with `create-gateway init --tls certbot --email ME`).',
      },
    )
  }

  return tool
}

/**
 * The host user, so that certbot's files on the bind mounts (private keys included) belong to whoever
 * runs create-gateway and stay readable by the next run, instead of becoming root-owned.
 */
function hostUser(): string | undefined {
  const uid = process.getuid?.()
  const gid = process.getgid?.()
  if (uid === undefined || gid === undefined || uid === 0) return undefined
  return `${uid}:${gid}`
}

/** The create options of one certbot run: the tool spec plus this run's arguments, env and files. */
export function certbotContainerOptions(options: RunCertbotOptions & {name: string}): Docker.ContainerCreateOptions {
  const {manifest, dir} = options
  const tool = certbotTool(manifest)
  const stack = buildStackSpec(manifest)
  const root = resolve(dir)
  const labels = {
    ...containerLabels(
      {
        project: stack.project,
        dir: root,
        network: stack.network,
        imageIds: {},
        environment: {},
        runId: runId(options.processEnv ?? process.env),
      },
      tool.service,
      1,
    ),
    // A `docker compose run` container: `up` neither adopts nor removes it, `down` does remove it.
    [LABELS.oneoff]: 'True',
  }
  const env = {...tool.environment, ...options.env}
  const user = hostUser()
  return {
    name: options.name,
    Image: tool.image,
    Cmd: options.args,
    Env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
    Labels: labels,
    ...(user ? {User: user} : {}),
    HostConfig: {
      Binds: [
        ...tool.mounts.map((mount) => `${resolve(root, mount.source)}:${mount.target}:${mount.readOnly ? 'ro' : 'rw'}`),
        ...(options.files ?? []).map((file) => `${resolve(root, file.source)}:${file.target}:ro`),
      ],
      NetworkMode: stack.network,
      AutoRemove: false,
    },
    NetworkingConfig: {EndpointsConfig: {[stack.network]: {Aliases: [tool.service]}}},
  }
}

/** The certbot image, local or pulled once; a missing one names the manifest field that chooses it. */
export async function ensureCertbotImage(engine: Engine, image: string, onProgress?: Progress): Promise<void> {
  if (await engine.image(image)) return
  onProgress?.(`${image} is not on this machine, pulling it`)
  try {
    await engine.pullImage(image, (line) => onProgress?.(`certbot: ${line}`))
  } catch (error) {
    throw new OperationError(
      `Image ${image} (certbot) not found locally and could not be pulled (${engineMessage(error)})`,
      {
        hint: 'Load it on this machine, or set images.certbot in gateway.yaml (init --certbot-image) to an image the engine has (fixtures/images/build.sh makes an offline one).',
        cause: error,
      },
    )
  }
}

/** Follow the container's output until it ends, handing each line to `onLine`. Best effort: progress only. */
async function followOutput(
  engine: Engine,
  id: string,
  onLine: (line: string) => void,
): Promise<NodeJS.ReadableStream | undefined> {
  let stream: NodeJS.ReadableStream
  try {
    stream = await engine.containerLogs(id, {follow: true, tail: 'all'})
  } catch {
    return undefined
  }

  const demuxer = new Demuxer()
  const splitter = new LineSplitter()
  stream.on('data', (chunk: Buffer | string) => {
    for (const frame of demuxer.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)))
      for (const {line} of splitter.push(frame)) onLine(line)
  })
  stream.on('end', () => {
    for (const {line} of splitter.flush()) onLine(line)
  })
  stream.on('error', () => {})
  return stream
}

async function allOutput(engine: Engine, id: string): Promise<string> {
  try {
    const stream = await engine.containerLogs(id, {tail: 'all'})
    const chunks: Buffer[] = []
    for await (const chunk of stream as AsyncIterable<Buffer | string>)
      chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))
    return demuxLines(Buffer.concat(chunks)).join('\n')
  } catch (error) {
    return `(could not read certbot's output: ${engineMessage(error)})`
  }
}

/**
 * Create the bind-mount folders ourselves: the engine would create missing ones owned by root. certbot/
 * holds the account and private keys (0700); the webroot must stay readable by NGINX's workers.
 */
export async function ensureCertbotFolders(dir: string, manifest: Manifest): Promise<void> {
  for (const mount of certbotTool(manifest).mounts) {
    const isState = mount.source === PROJECT_PATHS.certbot || mount.source.startsWith(`${PROJECT_PATHS.certbot}/`)
    await mkdir(resolve(dir, mount.source), {recursive: true, mode: isState ? 0o700 : 0o755})
  }
}

/** Run certbot once and return its exit code and output; the container is removed afterwards either way. */
export async function runCertbot(options: RunCertbotOptions): Promise<CertbotRun> {
  const {engine, manifest} = options
  const clock = options.clock ?? systemClock
  const timeoutMs = options.timeoutMs ?? DEFAULT_CERTBOT_TIMEOUT_MS
  const started = clock.now()
  await ensureCertbotFolders(options.dir, manifest)
  const name = `${manifest.name}-certbot-run-${randomBytes(6).toString('hex')}`
  const createOptions = certbotContainerOptions({...options, name})

  let id: string
  try {
    id = await engine.createContainer(createOptions)
  } catch (error) {
    throw engineFailure(`Creating the certbot container ${name}`, error)
  }

  let follow: NodeJS.ReadableStream | undefined
  try {
    try {
      await engine.startContainer(id)
    } catch (error) {
      throw engineFailure(`Starting the certbot container ${name}`, error)
    }

    if (options.onOutput) follow = await followOutput(engine, id, options.onOutput)
    let state: ContainerState
    try {
      state = await retryUntil(
        async () => {
          const current = await engine.container(id)
          if (!current) throw new OperationError(`The certbot container ${name} disappeared while it ran`)
          return current
        },
        (current) => !current.running && current.status !== 'created',
        {
          timeoutMs,
          intervalMs: POLL_INTERVAL_MS,
          clock,
          describe: `certbot (${name}) to finish`,
          explain: (current) => `state ${current.status}`,
        },
      )
    } catch (error) {
      if (error instanceof WaitTimeoutError) {
        const output = await allOutput(engine, id)
        throw new OperationError(
          `${error.message}\nLast lines of certbot's output:\n${output
            .split('\n')
            .slice(-15)
            .map((line) => `  | ${line}`)
            .join('\n')}`,
          {
            hint: 'Certbot waits on the ACME server and on the validation of port 80; check that both are reachable, or pass a longer --timeout.',
          },
        )
      }

      throw error
    }

    return {exitCode: state.exitCode, output: await allOutput(engine, id), ms: clock.now() - started}
  } finally {
    ;(follow as {destroy?: () => void} | undefined)?.destroy?.()
    try {
      await engine.removeContainer(id)
    } catch {
      // A leftover one-off container is harmless (`down` removes it); the run's own error matters more.
    }
  }
}
