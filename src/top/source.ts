import {
  containerLines,
  gatewayContainer,
  isAccessLine,
  LogMark,
  readLines,
  type LogEngine,
  type LogLine,
} from '../docker/gateway-log.js'

/**
 * Where `top` reads access-log lines from: the gateway container's stdout, through the engine (NGINX
 * logs there, see docker/gateway-log.ts). Tests and the benchmark plug in sources of their own.
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

/**
 * The gateway's access log from the engine: the first call reads the newest lines (tail), later calls
 * take what one follow stream, opened where the first read ended, has received since. So a refresh
 * costs the new lines only, on our side and on the engine's. A gateway that was recreated or restarted
 * ends the stream; the next call opens one on the current container, from the same mark.
 */
export class GatewayAccessLog implements AccessLogSource {
  readonly description = 'gateway stdout'
  private readonly mark = new LogMark()
  private started = false
  private pending: string[] = []
  private following: AsyncGenerator<LogLine> | undefined
  private readonly stop = new AbortController()

  constructor(
    private readonly engine: LogEngine,
    private readonly project: string,
    private readonly maxLines = DEFAULT_MAX_LINES,
  ) {}

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
    const gateway = await gatewayContainer(this.engine, this.project)
    if (!gateway) return []
    const lines = await readLines(this.engine, gateway.id, {tail: this.maxLines})
    this.started = true
    const access: string[] = []
    for (const line of lines) {
      this.mark.see(line)
      if (isAccessLine(line)) access.push(line.text)
    }

    return access
  }

  private async follow(): Promise<void> {
    const gateway = await gatewayContainer(this.engine, this.project)
    if (!gateway || this.stop.signal.aborted) return
    const unseen = this.mark.unseen()
    const stream = containerLines(
      this.engine,
      gateway.id,
      {follow: true, since: this.mark.since, tail: 'all'},
      this.stop.signal,
    )
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
