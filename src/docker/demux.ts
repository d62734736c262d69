/**
 * The engine multiplexes stdout and stderr of a container without a TTY into one stream of frames:
 * an 8-byte header (byte 0: 1 stdout / 2 stderr, bytes 4..7: payload size, big-endian) then the
 * payload. Frames may be split across chunks, so the demuxer keeps what it has not consumed yet.
 */

export type StreamName = 'stdout' | 'stderr'

export interface Frame {
  stream: StreamName
  data: Buffer
}

const HEADER = 8

export class Demuxer {
  private pending: Buffer = Buffer.alloc(0)
  /** Set on the first chunk: a TTY stream has no headers and is passed through as stdout. */
  private raw: boolean | undefined

  push(chunk: Buffer): Frame[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
    if (this.raw === undefined && this.pending.length > 0) this.raw = !looksMultiplexed(this.pending)
    if (this.raw) {
      const data = this.pending
      this.pending = Buffer.alloc(0)
      return data.length > 0 ? [{stream: 'stdout', data}] : []
    }

    const frames: Frame[] = []
    while (this.pending.length >= HEADER) {
      const size = this.pending.readUInt32BE(4)
      if (this.pending.length < HEADER + size) break
      const type = this.pending[0]
      const data = this.pending.subarray(HEADER, HEADER + size)
      this.pending = this.pending.subarray(HEADER + size)
      frames.push({stream: type === 2 ? 'stderr' : 'stdout', data})
    }

    return frames
  }

  /** Bytes left that never formed a whole frame (a stream cut short). */
  rest(): Buffer {
    return this.pending
  }
}

function looksMultiplexed(buffer: Buffer): boolean {
  if (buffer.length < 4) return buffer[0] !== undefined && buffer[0] <= 2
  return buffer[0]! <= 2 && buffer[1] === 0 && buffer[2] === 0 && buffer[3] === 0
}

export function demuxToBuffers(buffer: Buffer): {stdout: Buffer; stderr: Buffer} {
  const demuxer = new Demuxer()
  const out: Buffer[] = []
  const err: Buffer[] = []
  for (const frame of demuxer.push(buffer)) (frame.stream === 'stdout' ? out : err).push(frame.data)
  return {stdout: Buffer.concat(out), stderr: Buffer.concat(err)}
}

/**
 * Splits demultiplexed output into whole lines per stream, keeping a partial last line until more
 * arrives, so interleaved stdout/stderr never glue half-lines together.
 */
export class LineSplitter {
  private partial: Record<StreamName, string> = {stdout: '', stderr: ''}

  push(frame: Frame): Array<{stream: StreamName; line: string}> {
    const text = this.partial[frame.stream] + frame.data.toString('utf8')
    const parts = text.split('\n')
    this.partial[frame.stream] = parts.pop() ?? ''
    return parts.map((line) => ({stream: frame.stream, line: line.replace(/\r$/, '')}))
  }

  flush(): Array<{stream: StreamName; line: string}> {
    const lines: Array<{stream: StreamName; line: string}> = []
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.partial[stream] !== '') lines.push({stream, line: this.partial[stream]})
      this.partial[stream] = ''
    }

    return lines
  }
}

/** All lines of a finished multiplexed log, in the order the engine sent them. */
export function demuxLines(buffer: Buffer): string[] {
  const demuxer = new Demuxer()
  const splitter = new LineSplitter()
  const lines = demuxer.push(buffer).flatMap((frame) => splitter.push(frame))
  return [...lines, ...splitter.flush()].map((entry) => entry.line)
}
