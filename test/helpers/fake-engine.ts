import {createHash} from 'node:crypto'
import {Readable} from 'node:stream'

import type Docker from 'dockerode'

import type {
  ContainerState,
  EndpointState,
  Engine,
  ExecResult,
  ImageState,
  Labels,
  LogOptions,
  NetworkOptions,
  NetworkState,
} from '../../src/docker/engine.js'
import type {Clock} from '../../src/util/retry.js'

/** A running, healthy container as the engine reports it; a test names it and overrides what it is about. */
export function runningContainer(fields: Pick<ContainerState, 'name'> & Partial<ContainerState>): ContainerState {
  return {
    id: `${fields.name}-id`,
    labels: {},
    image: 'img',
    imageId: 'sha',
    status: 'running',
    running: true,
    exitCode: 0,
    restartCount: 0,
    health: 'healthy',
    ports: [],
    ...fields,
  }
}

/** A multiplexed log frame as the engine sends it: 8-byte header, then the payload. */
export function frame(stream: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text)
  const header = Buffer.alloc(8)
  header[0] = stream
  header.writeUInt32BE(payload.length, 4)
  return Buffer.concat([header, payload])
}

/** A clock whose sleeps return at once (after one turn of the event loop) and move time forward. */
export function fakeClock(start = 0): Clock & {elapsed(): number} {
  let now = start
  return {
    now: () => now,
    sleep: async (ms) => {
      now += ms
      // Yield to the event loop as a real sleep would, so concurrent waits interleave realistically.
      await new Promise((resolve) => setImmediate(resolve))
    },
    elapsed: () => now - start,
  }
}

interface FakeContainer extends ContainerState {
  options: Docker.ContainerCreateOptions
  logs: string[]
  /** Lines written with writeLog: each with its stream and time stamp, served instead of `logs`. */
  entries?: FakeLogEntry[]
}

/** A line of a container's log as the engine keeps it. */
export interface FakeLogEntry {
  stream: 'stdout' | 'stderr'
  /** RFC 3339 with nanoseconds, as the engine writes it with `timestamps`. */
  time: string
  text: string
}

/** A log of entries as the engine answers for it: since (whole seconds, inclusive), tail, time stamps. */
export function logStream(entries: readonly FakeLogEntry[], options: LogOptions): NodeJS.ReadableStream {
  let selected = entries.filter(
    (entry) => options.since === undefined || Date.parse(entry.time) >= options.since * 1000,
  )
  if (typeof options.tail === 'number') selected = selected.slice(selected.length - options.tail)
  if (options.tail === 0) selected = []
  return Readable.from(
    selected.map((entry) =>
      frame(entry.stream === 'stdout' ? 1 : 2, `${options.timestamps ? `${entry.time} ` : ''}${entry.text}\n`),
    ),
  )
}

export interface ContainerBehaviour {
  /** What the healthcheck reports once started (default healthy). */
  health?: 'healthy' | 'unhealthy' | 'starting'
  /** The container exits right after start with this code. */
  exitCode?: number
  /** The container runs (health "starting") for this many inspections, then exits with `exitCode`. */
  exitAfterInspections?: number
  /** start() fails with this engine message. */
  startError?: string
  logs?: string[]
}

let counter = 0
function id(): string {
  counter += 1
  return createHash('sha256').update(`fake-${counter}`).digest('hex')
}

/**
 * An in-memory engine with just enough behaviour for src/docker/: containers go created -> running,
 * report the health a test chooses, publish ports, and keep their create options for assertions.
 */
export class FakeEngine implements Engine {
  readonly endpoint = 'fake://engine'
  readonly images = new Map<string, ImageState>()
  readonly containersById = new Map<string, FakeContainer>()
  readonly networksById = new Map<string, NetworkState & {options?: NetworkOptions}>()
  readonly volumesByName = new Map<string, Labels>()
  /** By container name. */
  readonly behaviour = new Map<string, ContainerBehaviour>()
  /** Engine calls in order, e.g. `create x-web-1`, `start x-web-1`, `build x-web:latest`. */
  readonly calls: string[] = []
  /** The stop timeout (seconds) each stopped container was given, by name. */
  readonly stopTimeouts = new Map<string, number | undefined>()
  /** Build output events (JSON objects) for the next builds; default: a successful two-step build. */
  buildEvents?: (tag: string) => object[]
  signals: Array<{name: string; signal: string}> = []

  constructor(images: string[] = []) {
    for (const image of images)
      this.images.set(image, {id: `sha256:${createHash('sha256').update(image).digest('hex')}`, labels: {}})
  }

  private byIdOrName(idOrName: string): FakeContainer | undefined {
    return (
      this.containersById.get(idOrName) ??
      [...this.containersById.values()].find((container) => container.name === idOrName)
    )
  }

  private matches(labels: Labels, wanted: Labels): boolean {
    return Object.entries(wanted).every(([key, value]) => labels[key] === value)
  }

  async ping(): Promise<void> {}

  async image(ref: string): Promise<ImageState | undefined> {
    return this.images.get(ref)
  }

  async pullImage(ref: string): Promise<void> {
    this.calls.push(`pull ${ref}`)
    throw new Error('Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host')
  }

  async buildImage(
    context: NodeJS.ReadableStream,
    options: {tag: string; dockerfile: string; labels: Labels},
  ): Promise<NodeJS.ReadableStream> {
    this.calls.push(`build ${options.tag}`)
    for await (const _chunk of context as AsyncIterable<Buffer>) {
      // Drain the tar stream as the engine would.
    }

    const imageId = `sha256:${id()}`
    const events = this.buildEvents?.(options.tag) ?? [
      {stream: 'Step 1/2 : FROM base\n'},
      {stream: ' ---> 1234\n'},
      {stream: 'Step 2/2 : COPY . .\n'},
      {aux: {ID: imageId}},
      {stream: `Successfully built ${imageId.slice(7, 19)}\n`},
    ]
    if (!events.some((event) => 'error' in event)) this.images.set(options.tag, {id: imageId, labels: options.labels})
    return Readable.from(events.map((event) => `${JSON.stringify(event)}\r\n`))
  }

  async containers(labels: Labels): Promise<ContainerState[]> {
    return [...this.containersById.values()]
      .filter((container) => this.matches(container.labels, labels))
      .map((container) => ({...container}))
  }

  private inspections = new Map<string, number>()

  async container(idOrName: string): Promise<ContainerState | undefined> {
    const found = this.byIdOrName(idOrName)
    if (!found) return undefined
    const behaviour = this.behaviour.get(found.name) ?? {}
    if (behaviour.exitAfterInspections !== undefined && found.running) {
      const seen = (this.inspections.get(found.id) ?? 0) + 1
      this.inspections.set(found.id, seen)
      if (seen > behaviour.exitAfterInspections)
        Object.assign(found, {status: 'exited', running: false, exitCode: behaviour.exitCode ?? 1, health: 'unhealthy'})
    }

    return {...found}
  }

  /** A container outside any project, e.g. one a user started by hand. */
  addForeignContainer(name: string): void {
    const image = [...this.images.values()][0]!
    this.containersById.set(id(), {
      id: id(),
      name,
      labels: {},
      image: 'other',
      imageId: image.id,
      status: 'running',
      running: true,
      exitCode: 0,
      restartCount: 0,
      ports: [],
      options: {name},
      logs: [],
    })
  }

  async createContainer(options: Docker.ContainerCreateOptions): Promise<string> {
    const name = options.name!
    this.calls.push(`create ${name}`)
    if ([...this.containersById.values()].some((container) => container.name === name)) {
      throw Object.assign(new Error('conflict'), {
        statusCode: 409,
        json: {message: `Conflict. The container name "/${name}" is already in use`},
      })
    }

    const image = this.images.get(options.Image!)
    if (!image)
      throw Object.assign(new Error('no such image'), {
        statusCode: 404,
        json: {message: `No such image: ${options.Image}`},
      })
    const containerId = id()
    for (const [network, endpoint] of Object.entries(options.NetworkingConfig?.EndpointsConfig ?? {}))
      this.attach(containerId, network, endpoint)
    const container: FakeContainer = {
      id: containerId,
      name,
      labels: {...options.Labels},
      image: options.Image!,
      imageId: image.id,
      status: 'created',
      running: false,
      exitCode: 0,
      restartCount: 0,
      health: undefined,
      ports: [],
      options,
      logs: [],
    }
    this.containersById.set(container.id, container)
    return container.id
  }

  async startContainer(containerId: string): Promise<void> {
    const container = this.byIdOrName(containerId)!
    this.calls.push(`start ${container.name}`)
    const behaviour = this.behaviour.get(container.name) ?? {}
    container.logs = behaviour.logs ?? [`${container.name} started`]
    if (behaviour.startError)
      throw Object.assign(new Error('start failed'), {statusCode: 500, json: {message: behaviour.startError}})
    if (behaviour.exitCode !== undefined && behaviour.exitAfterInspections === undefined) {
      Object.assign(container, {status: 'exited', running: false, exitCode: behaviour.exitCode})
      return
    }

    const bindings = container.options.HostConfig?.PortBindings ?? {}
    container.ports = Object.entries(bindings).flatMap(([port, list]) =>
      (list as Array<{HostIp: string; HostPort: string}>).map(
        (binding) => `${binding.HostIp}:${binding.HostPort}->${port}`,
      ),
    )
    const health = behaviour.exitAfterInspections !== undefined ? 'starting' : (behaviour.health ?? 'healthy')
    Object.assign(container, {
      status: 'running',
      running: true,
      health: container.options.Healthcheck ? health : undefined,
    })
  }

  async signalContainer(containerId: string, signal: string): Promise<void> {
    const name = this.byIdOrName(containerId)!.name
    this.calls.push(`signal ${signal} ${name}`)
    this.signals.push({name, signal})
  }

  async stopContainer(containerId: string, timeoutSeconds?: number): Promise<void> {
    const container = this.byIdOrName(containerId)
    if (!container) return
    this.calls.push(`stop ${container.name}`)
    this.stopTimeouts.set(container.name, timeoutSeconds)
    Object.assign(container, {status: 'exited', running: false, health: undefined})
  }

  async removeContainer(containerId: string): Promise<void> {
    const container = this.byIdOrName(containerId)
    if (!container) return
    this.calls.push(`remove ${container.name}`)
    this.containersById.delete(container.id)
  }

  /** A line the container writes now (time stamps a millisecond apart, from the fake start time). */
  writeLog(containerId: string, stream: FakeLogEntry['stream'], text: string): void {
    const container = this.byIdOrName(containerId)!
    container.entries ??= []
    this.logTime += 1
    container.entries.push({stream, time: new Date(this.logTime).toISOString().replace('Z', '000000Z'), text})
  }

  private logTime = Date.parse('2030-01-01T10:00:00Z')

  async containerLogs(containerId: string, options: LogOptions): Promise<NodeJS.ReadableStream> {
    const container = this.byIdOrName(containerId)!
    if (container.entries) return logStream(container.entries, options)
    const lines = typeof options.tail === 'number' ? container.logs.slice(-options.tail) : container.logs
    return Readable.from(lines.map((line, index) => frame(index % 2 === 0 ? 1 : 2, `${line}\n`)))
  }

  /** A command run in a container: its healthcheck fails while the container is meant to stay unhealthy. */
  async exec(id: string, _cmd?: string[]): Promise<ExecResult> {
    const found = this.byIdOrName(id)
    const health = found ? this.behaviour.get(found.name)?.health : undefined
    if (health === 'starting' || health === 'unhealthy') return {exitCode: 1, stdout: '', stderr: 'healthcheck failed'}
    return {exitCode: 0, stdout: '', stderr: ''}
  }

  async networks(labels: Labels): Promise<NetworkState[]> {
    return [...this.networksById.values()].filter((network) => this.matches(network.labels, labels))
  }

  async network(name: string): Promise<NetworkState | undefined> {
    return [...this.networksById.values()].find((network) => network.name === name)
  }

  async createNetwork(name: string, labels: Labels, options?: NetworkOptions): Promise<string> {
    this.calls.push(`network create ${name}`)
    const network = {id: id(), name, labels, options}
    this.networksById.set(network.id, network)
    return network.id
  }

  /** Each container's endpoints by network name, as create, connect and disconnect leave them. */
  readonly endpointsOf = new Map<string, Record<string, EndpointState>>()
  private nextAddress = 2

  private attach(containerId: string, network: string, endpoint: Docker.EndpointSettings | undefined): void {
    const endpoints = this.endpointsOf.get(containerId) ?? {}
    const ipv4 = endpoint?.IPAMConfig?.IPv4Address || `172.30.0.${this.nextAddress++}`
    endpoints[network] = {aliases: [...(endpoint?.Aliases ?? [])], ipv4, mac: endpoint?.MacAddress ?? ''}
    this.endpointsOf.set(containerId, endpoints)
  }

  async connectNetwork(network: string, containerId: string, endpoint: Docker.EndpointSettings): Promise<void> {
    this.calls.push(`network connect ${network} ${containerId}`)
    this.attach(containerId, network, endpoint)
  }

  async disconnectNetwork(network: string, containerId: string): Promise<void> {
    this.calls.push(`network disconnect ${network} ${containerId}`)
    delete this.endpointsOf.get(containerId)?.[network]
  }

  async endpoints(containerId: string): Promise<Record<string, EndpointState>> {
    const container = this.byIdOrName(containerId)
    return structuredClone(this.endpointsOf.get(container?.id ?? containerId) ?? {})
  }

  async removeNetwork(networkId: string): Promise<void> {
    const network = this.networksById.get(networkId)
    if (network) this.calls.push(`network remove ${network.name}`)
    this.networksById.delete(networkId)
  }

  async volumes(labels: Labels): Promise<Array<{name: string; labels: Labels}>> {
    return [...this.volumesByName.entries()]
      .filter(([, volumeLabels]) => this.matches(volumeLabels, labels))
      .map(([name, volumeLabels]) => ({name, labels: volumeLabels}))
  }

  async removeVolume(name: string): Promise<void> {
    this.volumesByName.delete(name)
  }

  /** Names of the containers that exist now. */
  /** The container with this name (a test's own look, not an engine call). */
  byName(name: string): ContainerState {
    const container = this.byIdOrName(name)
    if (!container) throw new Error(`no container ${name}`)
    return container
  }

  names(): string[] {
    return [...this.containersById.values()].map((container) => container.name).sort()
  }
}
