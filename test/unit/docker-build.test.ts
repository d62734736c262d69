import {mkdirSync, symlinkSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {Readable} from 'node:stream'

import {extract} from 'tar-stream'
import {describe, expect, it} from 'vitest'

import {
  baseImages,
  BuildOutput,
  buildFailure,
  contextHash,
  listBuildContext,
  packBuildContext,
  readBuildOutput,
  type BuildRequest,
} from '../../src/docker/images.js'
import {OperationError} from '../../src/errors.js'
import {tempDir} from '../helpers/cli.js'

const request: BuildRequest = {
  service: 'web',
  context: '/p/services/web',
  dockerfile: 'Dockerfile',
  tag: 'demo-web:latest',
  labels: {},
}

function lines(events: object[]): string {
  return events.map((event) => `${JSON.stringify(event)}\r\n`).join('')
}

const failingPip = [
  {stream: 'Step 1/4 : FROM create-gateway-offline/python:forky\n'},
  {stream: ' ---> 0aa1388a451d\n'},
  {stream: 'Step 2/4 : COPY requirements.txt .\n'},
  {stream: ' ---> 1b2c3d4e5f60\n'},
  {stream: 'Step 3/4 : RUN python3 -m pip install --no-cache-dir -r requirements.txt\n'},
  {stream: ' ---> Running in 9f8e7d6c5b4a\n'},
  {
    stream:
      '\u001b[91mERROR: Could not find a version that satisfies the requirement nonexistent-package-xyz==1.0 (from versions: none)\n',
  },
  {stream: 'ERROR: No matching distribution found for nonexistent-package-xyz==1.0\n\u001b[0m'},
  {stream: 'Removing intermediate container 9f8e7d6c5b4a\n'},
  {
    errorDetail: {
      code: 1,
      message:
        "The command '/bin/sh -c python3 -m pip install --no-cache-dir -r requirements.txt' returned a non-zero code: 1",
    },
    error:
      "The command '/bin/sh -c python3 -m pip install --no-cache-dir -r requirements.txt' returned a non-zero code: 1",
  },
]

describe('build output', () => {
  it('reports Step lines as progress and finds the image id, with JSON split across chunks', () => {
    const output = new BuildOutput()
    const text = lines([
      {stream: 'Step 1/2 : FROM x\n'},
      {stream: ' ---> abc\nStep 2/2 : COPY'},
      {stream: ' . .\n'},
      {aux: {ID: 'sha256:feed'}},
      {stream: 'Successfully built feed\n'},
    ])
    const steps: string[] = []
    for (let offset = 0; offset < text.length; offset += 7) steps.push(...output.push(text.slice(offset, offset + 7)))
    steps.push(...output.end())
    expect(steps).toEqual(['Step 1/2 : FROM x', 'Step 2/2 : COPY . .'])
    expect(output.imageId).toBe('sha256:feed')
    expect(output.error).toBeUndefined()
  })

  it('fails on errorDetail even though the request itself succeeded, naming the step and the pip error', async () => {
    const progress: string[] = []
    const error = await readBuildOutput(Readable.from([lines(failingPip)]), {
      ...request,
      onProgress: (line) => progress.push(line),
    }).catch((error_: unknown) => error_)
    expect(error).toBeInstanceOf(OperationError)
    const message = (error as Error).message
    expect(message).toContain(
      'Building demo-web:latest (web) failed at Step 3/4 : RUN python3 -m pip install --no-cache-dir -r requirements.txt',
    )
    expect(message).toContain('| ERROR: No matching distribution found for nonexistent-package-xyz==1.0')
    expect(message).toContain('returned a non-zero code: 1')
    // Only the failing step's own output, without colour codes or the builder's bookkeeping.
    expect(message).toContain('  | ERROR: Could not find a version that satisfies')
    expect(message).not.toContain('COPY requirements.txt .\n  |')
    expect(message).not.toContain('\u001b')
    expect(message).not.toContain('Running in')
    expect(progress).toEqual([
      'web: Step 1/4 : FROM create-gateway-offline/python:forky',
      'web: Step 2/4 : COPY requirements.txt .',
      'web: Step 3/4 : RUN python3 -m pip install --no-cache-dir -r requirements.txt',
    ])
  })

  it('keeps only the last 20 lines of output', () => {
    const output = new BuildOutput()
    output.push(
      lines([
        {stream: 'Step 1/1 : RUN noisy\n'},
        ...Array.from({length: 40}, (_, index) => ({stream: `line ${index}\n`})),
        {error: 'boom'},
      ]),
    )
    const message = buildFailure(request, output).message
    expect(message).not.toContain('line 19\n')
    expect(message).toContain('| line 20')
    expect(message).toContain('| line 39')
  })

  it('says the base image is missing and the registry unreachable when FROM fails to pull', () => {
    const output = new BuildOutput()
    output.push(
      lines([
        {stream: 'Step 1/9 : FROM python:3.12-slim\n'},
        {
          errorDetail: {
            message: 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host',
          },
        },
      ]),
    )
    const error = buildFailure(request, output)
    expect(error.message).toMatch(
      /^Building demo-web:latest \(web\): base image python:3\.12-slim not found locally and the registry is unreachable/,
    )
    expect(error.hint).toContain('fixtures/images/build.sh')
    expect(error.hint).toContain('--python-image')
  })

  it('finds FROM images that can be looked up, skipping build args and stages', () => {
    expect(
      baseImages(
        'ARG V=3\nFROM python:${V} AS deps\nFROM --platform=linux/amd64 debian:bookworm AS build\nFROM deps\nFROM scratch',
      ),
    ).toEqual(['debian:bookworm'])
  })
})

describe('build context', () => {
  function project(): string {
    const dir = tempDir('cg-context-')
    writeFileSync(join(dir, 'Dockerfile'), 'FROM x\n')
    writeFileSync(join(dir, '.dockerignore'), 'Dockerfile\n.env\n*.log\n__pycache__/\ndocs\n!docs/keep.md\n')
    writeFileSync(join(dir, 'app.py'), 'print(1)\n')
    writeFileSync(join(dir, '.env'), 'SECRET=1\n')
    writeFileSync(join(dir, 'debug.log'), 'x\n')
    mkdirSync(join(dir, '__pycache__'))
    writeFileSync(join(dir, '__pycache__', 'app.cpython-311.pyc'), 'x')
    mkdirSync(join(dir, 'docs'))
    writeFileSync(join(dir, 'docs', 'keep.md'), 'k')
    writeFileSync(join(dir, 'docs', 'drop.md'), 'd')
    mkdirSync(join(dir, 'pkg'))
    writeFileSync(join(dir, 'pkg', 'mod.py'), 'x = 1\n')
    symlinkSync('app.py', join(dir, 'link.py'))
    return dir
  }

  it('honours .dockerignore, brings back ! exceptions, and always sends the Dockerfile', async () => {
    const files = (await listBuildContext(project())).map((file) => file.path)
    expect(files).toEqual([
      '.dockerignore',
      'Dockerfile',
      'app.py',
      'docs',
      'docs/keep.md',
      'link.py',
      'pkg',
      'pkg/mod.py',
    ])
  })

  it('packs exactly those files into the tar stream', async () => {
    const dir = project()
    const names: string[] = []
    const tar = extract()
    tar.on('entry', (header, stream, next) => {
      names.push(header.name)
      stream.on('end', next)
      stream.resume()
    })
    const done = new Promise<void>((resolve) => tar.on('finish', () => resolve()))
    ;(await packBuildContext(dir)).pipe(tar)
    await done
    expect(names.filter((name) => name !== '.').sort()).toEqual([
      '.dockerignore',
      'Dockerfile',
      'app.py',
      'docs',
      'docs/keep.md',
      'link.py',
      'pkg',
      'pkg/mod.py',
    ])
  })

  it('hashes the context: stable, blind to ignored files, sensitive to content and base image', async () => {
    const dir = project()
    const first = await contextHash(dir, 'Dockerfile', {x: 'sha256:1'})
    expect(await contextHash(dir, 'Dockerfile', {x: 'sha256:1'})).toBe(first)
    writeFileSync(join(dir, 'debug.log'), 'changed, but ignored\n')
    expect(await contextHash(dir, 'Dockerfile', {x: 'sha256:1'})).toBe(first)
    expect(await contextHash(dir, 'Dockerfile', {x: 'sha256:2'})).not.toBe(first)
    writeFileSync(join(dir, 'pkg', 'mod.py'), 'x = 2\n')
    expect(await contextHash(dir, 'Dockerfile', {x: 'sha256:1'})).not.toBe(first)
  })
})
