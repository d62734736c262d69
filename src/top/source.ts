import {open, stat} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {StringDecoder} from 'node:string_decoder'

import {PROJECT_PATHS} from '../manifest/stack.js'

/**
 * Where `top` reads access-log lines from. Today the gateway writes logs/access.log in the project
 * (a bind mount); a gateway that logs to its container's stdout would plug in as another source that
 * reads the engine's log stream, with nothing else in top changing.
 */
export interface AccessLogSource {
  /** In the user's words, for the header: `logs/access.log`. */
  readonly description: string
  /** Complete lines written since the previous call; the first call returns the newest ones, up to a bound. */
  next(): Promise<string[]>
}

/** 64 MiB is about 180,000 lines of our log format: minutes of heavy traffic, and under a second to parse. */
export const DEFAULT_MAX_BYTES = 64 << 20

/** The project's logs/access.log, read from where the previous read ended (a shrink means rotation). */
export class AccessLogFile implements AccessLogSource {
  readonly description: string
  private readonly file: string
  private position: number | undefined
  private partial = ''
  private decoder = new StringDecoder('utf8')

  constructor(
    dir: string,
    private readonly maxBytes = DEFAULT_MAX_BYTES,
  ) {
    this.file = join(resolve(dir), PROJECT_PATHS.logs, 'access.log')
    this.description = `${PROJECT_PATHS.logs}/access.log`
  }

  async next(): Promise<string[]> {
    let size: number
    try {
      size = (await stat(this.file)).size
    } catch (error) {
      // Not written yet: NGINX creates it on the first request.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw error
    }

    let start = this.position ?? 0
    if (size < start) start = 0
    // Too far behind (first read, or a burst larger than the bound): skip to the newest bytes, and
    // drop the line the cut lands in.
    const skipped = size - start > this.maxBytes
    if (skipped) start = size - this.maxBytes
    if (skipped || start === 0) {
      this.partial = ''
      this.decoder = new StringDecoder('utf8')
    }

    const length = size - start
    let text = ''
    if (length > 0) {
      const handle = await open(this.file, 'r')
      try {
        const buffer = Buffer.allocUnsafe(length)
        const {bytesRead} = await handle.read(buffer, 0, length, start)
        text = this.decoder.write(buffer.subarray(0, bytesRead))
        this.position = start + bytesRead
      } finally {
        await handle.close()
      }
    } else this.position = start

    const lines = (this.partial + text).split('\n')
    this.partial = lines.pop() ?? ''
    if (skipped) lines.shift()
    return lines
  }
}
