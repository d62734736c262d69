import {
  containerLines,
  gatewayContainer,
  isAccessLine,
  LogMark,
  readLines,
  type LogEngine,
  type LogLine,
} from '../docker/gateway-log.js'
import {isMissingService, readServiceLines, serviceLines, type ServiceLogDocker} from '../swarm/gateway-log.js'

/**
 * Where `top` reads access-log lines from: the gateway's stdout, through the engine (NGINX logs there,
 * see docker/gateway-log.ts): the gateway container's of a stack started by `up`, or the gateway
 * service's of a stack deployed to a swarm. Tests and the benchmark plug in sources of their own.
 */
export interface AccessLogSource {
  /** In the user's words, for the header. */
  readonly description: string
  /** Complete lines written since the previous call; the first call returns the newest ones, up to a bound. */
  next(): Promise<string[]>
  /** Stop reading (closes a follow stream). */
  close?(): void
}

/**
 * 180,000 lines of our format is about 60 MiB: more than the engine keeps of a container's log
 * (3 x 10 MB, CONTAINER_LOGGING), so in practice the first read is the whole log.
 */
export const DEFAULT_MAX_LINES = 180_000

/** A log the engine can give in two ways: its newest lines, and a stream of the lines from a time on. */
export interface LogFeed {
  readonly description: string
  /** The newest `tail` lines, oldest first; undefined while there is no gateway to read. */
  read(tail: number): Promise<LogLine[] | undefined>
  /** Lines from `since` (whole seconds; all when undefined) until the stream ends; undefined: no gateway. */
  follow(since: number | undefined, signal: AbortSignal): Promise<AsyncIterable<LogLine> | undefined>
}

/**
 * An access log read through the engine: the first call reads the newest lines (tail), later calls
 * take what one follow stream, opened where the first read ended, has received since. So a refresh
 * costs the new lines only, on our side and on the engine's. A stream that ends (a gateway recreated
 * or restarted, a connection cut) is opened again on the next call, from the same mark.
 */
export class FollowedAccessLog implements AccessLogSource {
  readonly description: string
  private readonly mark = new LogMark()
  private started = false
  private pending: string[] = []
  private following: AsyncIterable<LogLine> | undefined
  private readonly stop = new AbortController()

  constructor(
    private readonly feed: LogFeed,
    private readonly maxLines = DEFAULT_MAX_LINES,
  ) {
    this.description = feed.description
  }

  async next(): Promise<string[]> {
    if (!this.started) return this.first()
    if (!this.following) await this.follow()
    const lines = this.pending
    this.pending = []
    return lines
  }

  close(): void {
    this.stop.abort()
  }

  private async first(): Promise<string[]> {
    // No gateway yet: nothing to show, try again on the next refresh.
    const lines = await this.feed.read(this.maxLines)
    if (!lines) return []
    this.started = true
    const access: string[] = []
    for (const line of lines) {
      this.mark.see(line)
      if (isAccessLine(line)) access.push(line.text)
    }

    return access
  }

  private async follow(): Promise<void> {
    if (this.stop.signal.aborted) return
    const unseen = this.mark.unseen()
    const stream = await this.feed.follow(this.mark.since, this.stop.signal)
    if (!stream) return
    this.following = stream
    void (async () => {
      try {
        for await (const line of stream) {
          if (!unseen(line)) continue
          this.mark.see(line)
          if (isAccessLine(line)) this.pending.push(line.text)
        }
      } catch {
        // The connection broke: the next refresh opens a new one from the mark.
      } finally {
        if (this.following === stream) this.following = undefined
      }
    })()
  }
}

/** The gateway container of a stack started by `up` (the running one, else the newest). */
export function containerFeed(engine: LogEngine, project: string): LogFeed {
  return {
    description: 'gateway stdout',
    async read(tail) {
      const gateway = await gatewayContainer(engine, project)
      return gateway ? readLines(engine, gateway.id, {tail}) : undefined
    },
    async follow(since, signal) {
      const gateway = await gatewayContainer(engine, project)
      if (!gateway || signal.aborted) return undefined
      return containerLines(engine, gateway.id, {follow: true, since, tail: 'all'}, signal)
    },
  }
}

/**
 * The gateway service of a stack deployed to a swarm (`<namespace>_gateway`), through the manager: the
 * lines of its tasks, wherever they run. `tail` counts per task, so a service that replaced its task
 * may give more than `tail` lines at first.
 */
export function serviceFeed(docker: ServiceLogDocker, namespace: string, endpoint?: string): LogFeed {
  const missing = (error: unknown) => {
    if (isMissingService(error)) return undefined
    throw error
  }

  return {
    description: `swarm service ${namespace}_gateway stdout${endpoint ? ` (${endpoint})` : ''}`,
    read: (tail) => readServiceLines(docker, namespace, 'gateway', tail).catch(missing),
    // A service that is missing (or a connection refused) ends the stream with an error, which the
    // reader takes as a broken connection: the next refresh tries again.
    follow: async (since, signal) =>
      signal.aborted ? undefined : serviceLines(docker, namespace, 'gateway', {follow: true, since}, signal),
  }
}

/** The gateway container's stdout (a stack started by `up`). */
export class GatewayAccessLog extends FollowedAccessLog {
  constructor(engine: LogEngine, project: string, maxLines = DEFAULT_MAX_LINES) {
    super(containerFeed(engine, project), maxLines)
  }
}

/** The gateway service's stdout (a stack deployed to a swarm). */
export class SwarmGatewayAccessLog extends FollowedAccessLog {
  constructor(docker: ServiceLogDocker, namespace: string, options: {endpoint?: string; maxLines?: number} = {}) {
    super(serviceFeed(docker, namespace, options.endpoint), options.maxLines ?? DEFAULT_MAX_LINES)
  }
}
