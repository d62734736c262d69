import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {describe, expect, it} from 'vitest'

import {fitUpstreamsToNginx} from '../../src/gateway/upstream-form.js'
import {followsDns} from '../../src/gateway/upstreams.js'
import {renderUpstreams} from '../../src/render/gateway.js'
import {fakeClock, FakeEngine} from '../helpers/fake-engine.js'
import {IMAGES, UPSTREAMS} from '../helpers/fake-nginx.js'
import {testManifest, testProject} from '../helpers/stack-fixture.js'

/** An engine whose gateway image answers `nginx -v` with `version` (on stderr, as NGINX does). */
class VersionEngine extends FakeEngine {
  constructor(private readonly version: string) {
    super(IMAGES)
  }

  override async startContainer(containerId: string): Promise<void> {
    await super.startContainer(containerId)
    const container = (await this.container(containerId))!
    if (!container.name.includes('-nginx-version-')) return
    Object.assign(this.byName(container.name), {status: 'exited', running: false, exitCode: 0})
    this.writeLog(containerId, 'stderr', `nginx version: nginx/${this.version}`)
  }
}

async function project(form: 'resolve' | 'reload') {
  const manifest = testManifest()
  const dir = testProject(manifest)
  mkdirSync(join(dir, 'gateway/conf.d'), {recursive: true})
  writeFileSync(join(dir, UPSTREAMS), await renderUpstreams(manifest, {}, form))
  return {manifest, dir}
}

describe('up: upstreams.conf fitted to the gateway image NGINX', () => {
  it('rewrites the resolve form in the reload form when `nginx -v` in the image says < 1.27.3, and says so', async () => {
    const {manifest, dir} = await project('resolve')
    const engine = new VersionEngine('1.26.3')
    const note = await fitUpstreamsToNginx(engine, dir, manifest, IMAGES[1]!, fakeClock())
    expect(note).toBe(
      `${IMAGES[1]} runs NGINX 1.26.3, older than 1.27.3: rewrote gateway/conf.d/upstreams.conf in the reload form (scale and updates reload NGINX)`,
    )
    const text = readFileSync(join(dir, UPSTREAMS), 'utf8')
    expect(followsDns(text, ['web'])).toBe(false)
    expect(text).toBe(await renderUpstreams(manifest, {}, 'reload'))
    // The throwaway container is gone.
    expect(engine.names().some((name) => name.includes('nginx-version'))).toBe(false)
  })

  it('keeps the resolve form on NGINX 1.27.3 and later', async () => {
    const {manifest, dir} = await project('resolve')
    const before = readFileSync(join(dir, UPSTREAMS))
    for (const version of ['1.27.3', '1.30.6']) {
      expect(
        await fitUpstreamsToNginx(new VersionEngine(version), dir, manifest, IMAGES[1]!, fakeClock()),
      ).toBeUndefined()
      expect(readFileSync(join(dir, UPSTREAMS)).equals(before)).toBe(true)
    }
  })

  it('leaves the reload form alone without running anything', async () => {
    const {manifest, dir} = await project('reload')
    const engine = new VersionEngine('1.30.6')
    expect(await fitUpstreamsToNginx(engine, dir, manifest, IMAGES[1]!, fakeClock())).toBeUndefined()
    expect(engine.calls).toEqual([])
  })
})
