import {createHash} from 'node:crypto'
import {lstat, readFile, readdir, readlink} from 'node:fs/promises'
import {join, relative, resolve, sep} from 'node:path'

import dockerignore from '@balena/dockerignore'
import {pack, type PackOptions} from 'tar-fs'

import {OperationError} from '../errors.js'
import {readFileIfExists} from '../util/files.js'
import {engineFailure, type Engine, type ImageState, type Labels} from './engine.js'
import type {Progress} from '../util/progress.js'

// The package is CommonJS (`module.exports = factory`) typed as `export default`: under Node16
// resolution the default import is the factory itself.
const ignore = dockerignore as unknown as typeof dockerignore.default

/** Image label holding the hash of the build context the image was built from. */
export const CONTEXT_HASH_LABEL = 'dev.create-gateway.context-hash'

export interface BuildContextFile {
  /** Relative to the context, `/`-separated. */
  path: string
  type: 'file' | 'directory' | 'symlink'
  executable: boolean
}

function toPosix(path: string): string {
  return sep === '/' ? path : path.split(sep).join('/')
}

/**
 * The files of a build context after `.dockerignore`, the way `docker build` sends them: the
 * Dockerfile and .dockerignore always go (the engine needs them even when the file excludes them),
 * and an ignored folder is still walked because a later `!pattern` may bring a file inside it back.
 */
export async function listBuildContext(context: string, dockerfile = 'Dockerfile'): Promise<BuildContextFile[]> {
  const root = resolve(context)
  const patterns = (await readFileIfExists(join(root, '.dockerignore')))?.toString('utf8').split(/\r?\n/) ?? []

  const rules = ignore().add(patterns)
  // Without a `!` exception nothing inside an ignored folder can come back: skip walking it.
  const hasExceptions = patterns.some((pattern) => pattern.trim().startsWith('!'))
  const always = new Set([toPosix(dockerfile), '.dockerignore'])
  const kept: BuildContextFile[] = []

  async function walk(dir: string): Promise<boolean> {
    let keptSomething = false
    const names = (await readdir(dir)).sort()
    for (const name of names) {
      const abs = join(dir, name)
      const rel = toPosix(relative(root, abs))
      const info = await lstat(abs)
      if (info.isDirectory()) {
        if (!hasExceptions && rules.ignores(rel)) continue
        const index = kept.length
        const childKept = await walk(abs)
        if (childKept || !rules.ignores(rel)) {
          kept.splice(index, 0, {path: rel, type: 'directory', executable: false})
          keptSomething = true
        }
      } else if (info.isFile() || info.isSymbolicLink()) {
        if (always.has(rel) || !rules.ignores(rel)) {
          kept.push({
            path: rel,
            type: info.isSymbolicLink() ? 'symlink' : 'file',
            executable: (info.mode & 0o111) !== 0,
          })
          keptSomething = true
        }
      }
    }

    return keptSomething
  }

  await walk(root)
  return kept
}

/** `FROM` images of a Dockerfile that can be looked up as they are (no build args, no earlier stage). */
export function baseImages(dockerfile: string): string[] {
  const stages = new Set<string>()
  const images: string[] = []
  for (const line of dockerfile.split(/\r?\n/)) {
    const match = /^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?/i.exec(line)
    if (!match) continue
    const image = match[1]!
    if (!image.includes('$') && !stages.has(image.toLowerCase()) && image !== 'scratch') images.push(image)
    if (match[2]) stages.add(match[2].toLowerCase())
  }

  return images
}

/**
 * A hash of everything that decides the image: the files sent (path, type, executable bit, content),
 * the Dockerfile name and the IDs of the local base images. An unchanged hash means the image on
 * the engine is still right, so a second `up` skips the build entirely.
 */
export async function contextHash(
  context: string,
  dockerfile: string,
  baseImageIds: Record<string, string>,
): Promise<string> {
  const root = resolve(context)
  const hash = createHash('sha256')
  hash.update(`dockerfile\0${dockerfile}\n`)
  for (const [image, id] of Object.entries(baseImageIds).sort()) hash.update(`base\0${image}\0${id}\n`)
  for (const file of await listBuildContext(root, dockerfile)) {
    const abs = join(root, file.path)
    let content = ''
    if (file.type === 'file')
      content = createHash('sha256')
        .update(await readFile(abs))
        .digest('hex')
    if (file.type === 'symlink') content = await readlink(abs)
    hash.update(`${file.type}\0${file.path}\0${file.executable ? 'x' : '-'}\0${content}\n`)
  }

  return hash.digest('hex')
}

/** The newest modification time (ms) among the files `docker build` would send. */
export async function newestContextChange(context: string, dockerfile: string): Promise<number> {
  const root = resolve(context)
  let newest = 0
  for (const file of await listBuildContext(root, dockerfile))
    newest = Math.max(newest, (await lstat(join(root, file.path))).mtimeMs)
  return newest
}

/**
 * Whether an image that `docker compose build` made for this service (it has no context-hash label
 * of ours) can be used as it is: built on the current base images (their layers start its own) and
 * after the last change to any file of the build context. Rebuilding it instead would give it a new
 * ID, and Compose would then see a new image and recreate containers that did not change.
 */
export function composeBuiltImageIsCurrent(
  image: ImageState,
  request: Pick<BuildRequest, 'labels'>,
  bases: ImageState[],
  newestChangeMs: number,
): boolean {
  const project = request.labels['com.docker.compose.project']
  const service = request.labels['com.docker.compose.service']
  if (!project || image.labels['com.docker.compose.project'] !== project) return false
  if (image.labels['com.docker.compose.service'] !== service) return false
  if (image.createdMs === undefined || !(newestChangeMs < image.createdMs)) return false
  const layers = image.layers ?? []
  return bases.every((base) => {
    const own = base.layers ?? []
    return own.length > 0 && own.every((layer, index) => layers[index] === layer)
  })
}

/** A tar stream of the context holding exactly the files of `listBuildContext`. */
export async function packBuildContext(context: string, dockerfile = 'Dockerfile'): Promise<NodeJS.ReadableStream> {
  const root = resolve(context)
  const files = await listBuildContext(root, dockerfile)
  const keep = new Set(files.map((file) => file.path))
  const options: PackOptions & {sort: boolean} = {
    sort: true,
    ignore: (name: string) => !keep.has(toPosix(relative(root, name))),
    // Owner and mtime of the user's checkout do not belong in the image.
    map: (header) => ({...header, uid: 0, gid: 0}),
  }
  return pack(root, options) as unknown as NodeJS.ReadableStream
}

// ---- the engine's build output ---------------------------------------------------------------

export interface BuildEvent {
  stream?: string
  status?: string
  error?: string
  errorDetail?: {message?: string; code?: number}
  aux?: {ID?: string}
}

// The classic builder colours a step's stderr with ANSI escapes.
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*[A-Za-z]/g
function stripAnsi(text: string): string {
  return text.replace(ANSI, '')
}

/** Lines the builder itself prints around a step's output. */
const BUILDER_NOISE = /^\s*(---> |Removing intermediate container )/

/**
 * Reads the engine's build output (JSON objects, one per line, split anywhere across chunks). The
 * build failed when any event carries `error`/`errorDetail`; the HTTP request itself still succeeds,
 * which is why a generic "follow progress" helper reports such a build as done.
 */
export class BuildOutput {
  /** Output lines, in order: the `stream` text split into lines, plus `status` lines. */
  readonly lines: string[] = []
  /** The last `Step N/M : ...` line seen. */
  step?: string
  error?: string
  imageId?: string
  private buffer = ''
  private partialLine = ''
  /** Index in `lines` of the current step's own line. */
  private stepIndex = -1

  /** Feed raw output; returns the new `Step` lines, for progress. */
  push(chunk: string): string[] {
    this.buffer += chunk
    const steps: string[] = []
    let newline: number
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const text = this.buffer.slice(0, newline).trim()
      this.buffer = this.buffer.slice(newline + 1)
      if (text) steps.push(...this.handle(text))
    }

    return steps
  }

  end(): string[] {
    const text = this.buffer.trim()
    this.buffer = ''
    const steps = text ? this.handle(text) : []
    if (this.partialLine.trim()) this.lines.push(this.partialLine)
    this.partialLine = ''
    return steps
  }

  private handle(text: string): string[] {
    let event: BuildEvent
    try {
      event = JSON.parse(text) as BuildEvent
    } catch {
      this.lines.push(text)
      return []
    }

    const steps: string[] = []
    if (typeof event.stream === 'string') {
      const parts = (this.partialLine + event.stream).split('\n')
      this.partialLine = parts.pop() ?? ''
      for (const raw of parts) {
        const line = stripAnsi(raw).replace(/\r$/, '')
        if (line.trim() === '') continue
        this.lines.push(line)
        if (/^Step \d+\/\d+ : /.test(line)) {
          this.step = line
          this.stepIndex = this.lines.length - 1
          steps.push(line)
        }

        const built = /^Successfully built ([0-9a-f]{12,64})\s*$/.exec(line)
        if (built) this.imageId ??= built[1]
      }
    }

    if (typeof event.status === 'string') this.lines.push(event.status)
    if (event.aux?.ID) this.imageId = event.aux.ID
    if (event.error || event.errorDetail)
      this.error = event.errorDetail?.message || event.error || 'unknown build error'
    return steps
  }

  /**
   * The last `count` lines the current step printed (its own output, without the builder's
   * bookkeeping lines), or the last lines overall when the step printed nothing.
   */
  tail(count: number): string[] {
    const lines = this.partialLine.trim() ? [...this.lines, stripAnsi(this.partialLine)] : this.lines
    const own = lines.slice(this.stepIndex + 1).filter((line) => !BUILDER_NOISE.test(line))
    return (own.length > 0 ? own : lines).slice(-count)
  }
}

/** Errors from the engine that mean a base image could not be fetched from a registry. */
const PULL_FAILURE =
  /pull access denied|repository does not exist|manifest unknown|no such host|dial tcp|i\/o timeout|TLS handshake timeout|connection refused|server misbehaving|network is unreachable|Client\.Timeout|registry-1\.docker\.io/i

export interface BuildRequest {
  /** Service name, for messages and progress. */
  service: string
  /** Absolute path of the build context. */
  context: string
  dockerfile: string
  tag: string
  labels: Labels
  onProgress?: Progress
}

export function buildFailure(request: BuildRequest, output: BuildOutput): OperationError {
  const error = output.error ?? 'the engine ended the build without an image'
  const fromStep = output.step && /^Step \d+\/\d+ : FROM\s/i.test(output.step)
  if (fromStep && PULL_FAILURE.test(error)) {
    const image = /FROM\s+(?:--platform=\S+\s+)?(\S+)/i.exec(output.step!)?.[1] ?? 'the base image'
    return new OperationError(
      `Building ${request.tag} (${request.service}): base image ${image} not found locally and the registry is unreachable (${error.trim()})`,
      {
        hint: 'Build it locally (fixtures/images/build.sh makes offline stand-ins), or set images.python in gateway.yaml (init --python-image) to an image the engine has.',
      },
    )
  }

  const where = output.step ? ` at ${output.step}` : ''
  const tail = output.tail(20).map((line) => `  | ${line}`)
  return new OperationError(
    [`Building ${request.tag} (${request.service}) failed${where}`, ...tail, `  ${error.trim()}`].join('\n'),
    {
      hint: `Fix ${request.context}/${request.dockerfile} or the files it uses, then run \`create-gateway up\` again.`,
    },
  )
}

/** Read a build's output to the end; throws the build's own error with its failing step. */
export async function readBuildOutput(stream: NodeJS.ReadableStream, request: BuildRequest): Promise<BuildOutput> {
  const output = new BuildOutput()
  const report = (steps: string[]) => {
    for (const step of steps) request.onProgress?.(`${request.service}: ${step}`)
  }

  try {
    for await (const chunk of stream as AsyncIterable<Buffer | string>) report(output.push(chunk.toString()))
  } catch (error) {
    throw engineFailure(`Building ${request.tag} (${request.service}): the engine stopped sending output`, error)
  }

  report(output.end())
  if (output.error || !output.imageId) throw buildFailure(request, output)
  return output
}

export interface BuiltImage {
  tag: string
  id: string
  /** False when the image on the engine was already built from the same context. */
  built: boolean
}

/** What `buildImage` does with a service's image: use the one the engine has, or build it (and why). */
export type BuildDecision =
  {build: false; id: string; note: string} | {build: true; hash: string; reason: string; context: string}

/**
 * Decide, without changing anything, whether a service image must be built: the context-hash label of
 * the engine's image decides; an image `docker compose build` made is kept when it is current.
 */
export async function decideBuild(engine: Engine, request: BuildRequest): Promise<BuildDecision> {
  const context = resolve(request.context)
  let dockerfileText: string
  try {
    dockerfileText = await readFile(join(context, request.dockerfile), 'utf8')
  } catch (error) {
    throw new OperationError(
      `Building ${request.tag} (${request.service}): cannot read ${join(context, request.dockerfile)}: ${(error as Error).message}`,
      {cause: error},
    )
  }

  const baseIds: Record<string, string> = {}
  const bases: ImageState[] = []
  for (const image of baseImages(dockerfileText)) {
    const base = await engine.image(image)
    baseIds[image] = base?.id ?? 'missing'
    bases.push(base ?? {id: 'missing', labels: {}})
  }

  const hash = await contextHash(context, request.dockerfile, baseIds)

  const existing = await engine.image(request.tag)
  if (existing && existing.labels[CONTEXT_HASH_LABEL] === hash)
    return {build: false, id: existing.id, note: `image ${request.tag} is up to date`}

  if (
    existing &&
    existing.labels[CONTEXT_HASH_LABEL] === undefined &&
    composeBuiltImageIsCurrent(existing, request, bases, await newestContextChange(context, request.dockerfile))
  ) {
    return {
      build: false,
      id: existing.id,
      note: `image ${request.tag} (built by docker compose) is up to date: no file of ${request.context} changed since`,
    }
  }

  const reason = existing
    ? `a file of ${request.context} or a base image changed since ${request.tag} was built`
    : `the engine has no ${request.tag}`
  return {build: true, hash, reason, context}
}

/**
 * Build a service image unless the engine already has one built from an identical context (the
 * hash label decides). The base image is never pulled by us: the engine's classic builder tries its
 * registry on its own when the base is missing, and that failure is reported as such.
 */
export async function buildImage(engine: Engine, request: BuildRequest): Promise<BuiltImage> {
  const decision = await decideBuild(engine, request)
  if (!decision.build) {
    request.onProgress?.(`${request.service}: ${decision.note}`)
    return {tag: request.tag, id: decision.id, built: false}
  }

  const {context, hash} = decision
  request.onProgress?.(`${request.service}: building ${request.tag} from ${context}`)
  let stream: NodeJS.ReadableStream
  try {
    stream = await engine.buildImage(await packBuildContext(context, request.dockerfile), {
      tag: request.tag,
      dockerfile: request.dockerfile,
      labels: {...request.labels, [CONTEXT_HASH_LABEL]: hash},
    })
  } catch (error) {
    throw engineFailure(`Building ${request.tag} (${request.service})`, error)
  }

  await readBuildOutput(stream, {...request, context})
  const image = await engine.image(request.tag)
  if (!image)
    throw new OperationError(
      `Building ${request.tag} (${request.service}): the build finished but the engine has no image with that tag`,
    )
  return {tag: request.tag, id: image.id, built: true}
}
