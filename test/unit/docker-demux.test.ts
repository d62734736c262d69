import {describe, expect, it} from 'vitest'

import {demuxLines, demuxToBuffers, Demuxer, LineSplitter} from '../../src/docker/demux.js'
import {formatAccessLine} from '../../src/docker/logs.js'
import {frame} from '../helpers/fake-engine.js'

describe('demultiplexing container output', () => {
  it('separates stdout and stderr frames', () => {
    const {stdout, stderr} = demuxToBuffers(
      Buffer.concat([frame(1, 'out 1\n'), frame(2, 'err 1\n'), frame(1, 'out 2\n')]),
    )
    expect(stdout.toString()).toBe('out 1\nout 2\n')
    expect(stderr.toString()).toBe('err 1\n')
  })

  it('reassembles frames and lines split anywhere across chunks', () => {
    const whole = Buffer.concat([
      frame(1, 'hello wo'),
      frame(1, 'rld\nsecond'),
      frame(2, ' line on stderr\n'),
      frame(1, ' line\n'),
    ])
    const demuxer = new Demuxer()
    const splitter = new LineSplitter()
    const lines: string[] = []
    for (let offset = 0; offset < whole.length; offset += 3) {
      for (const piece of demuxer.push(whole.subarray(offset, offset + 3)))
        lines.push(...splitter.push(piece).map((entry) => `${entry.stream}: ${entry.line}`))
    }

    expect(lines).toEqual(['stdout: hello world', 'stderr:  line on stderr', 'stdout: second line'])
    expect(demuxer.rest().length).toBe(0)
  })

  it('passes a TTY stream (no headers) through as stdout', () => {
    expect(demuxLines(Buffer.from('plain text\nsecond\n'))).toEqual(['plain text', 'second'])
  })

  it('keeps a last line without newline', () => {
    expect(demuxLines(Buffer.concat([frame(1, 'a\nb')]))).toEqual(['a', 'b'])
  })
})

describe('access log lines', () => {
  it('shows time status method uri upstream request_time request_id', () => {
    const line = JSON.stringify({
      time: '2026-05-08T10:00:00+00:00',
      status: 200,
      method: 'GET',
      uri: '/api/',
      upstream_addr: '172.18.0.2:8000',
      request_time: '0.004',
      request_id: 'abc123',
    })
    expect(formatAccessLine(line)).toBe('2026-05-08T10:00:00+00:00 200 GET /api/ -> 172.18.0.2:8000 0.004s abc123')
  })

  it('accepts NGINX variable names and shows missing fields as -', () => {
    const line = JSON.stringify({time_iso8601: 't', status: '503', request_method: 'POST', request_uri: '/x'})
    expect(formatAccessLine(line)).toBe('t 503 POST /x -> - - -')
  })

  it('prints a line that is not JSON as it is', () => {
    expect(formatAccessLine('127.0.0.1 - - [..] "GET / HTTP/1.1" 200')).toBe('127.0.0.1 - - [..] "GET / HTTP/1.1" 200')
  })
})
