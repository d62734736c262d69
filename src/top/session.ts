import type {Clock} from '../util/retry.js'
import {parseAccessLine, type TopRecord} from './record.js'
import {buildSnapshot, type Snapshot, type SnapshotOptions} from './snapshot.js'
import type {AccessLogSource} from './source.js'

/**
 * What `top` keeps between refreshes: the records of the window, fed by a source's new lines and
 * pruned as the window moves, so each refresh parses only what was written since the last one.
 */
export class TopSession {
  private records: TopRecord[] = []
  /** Lines that were not access records (cut lines, foreign output), for the header. */
  malformed = 0

  constructor(
    private readonly source: AccessLogSource,
    private readonly options: Omit<SnapshotOptions, 'now'>,
  ) {}

  add(lines: readonly string[]): void {
    for (const line of lines) {
      if (line === '') continue
      const record = parseAccessLine(line)
      if (record) this.records.push(record)
      else this.malformed += 1
    }
  }

  async refresh(now: number): Promise<Snapshot> {
    this.add(await this.source.next())
    const from = now - this.options.windowMs
    // Records arrive in time order (one NGINX writes them), so the old ones are a prefix.
    const firstInside = this.records.findIndex((record) => record.time > from)
    this.records = firstInside === -1 ? [] : this.records.slice(firstInside)
    return buildSnapshot(this.records, {...this.options, now})
  }
}

export interface LiveOptions {
  clock: Clock
  intervalMs: number
  signal: AbortSignal
  /** Called with each snapshot, once per interval, until the signal aborts. */
  show: (snapshot: Snapshot) => void
}

/** Refresh every interval until aborted (Ctrl-C). */
export async function runLive(session: TopSession, options: LiveOptions): Promise<void> {
  const aborted = new Promise((resolve) => options.signal.addEventListener('abort', resolve, {once: true}))
  while (!options.signal.aborted) {
    options.show(await session.refresh(options.clock.now()))
    await Promise.race([options.clock.sleep(options.intervalMs), aborted])
  }
}
