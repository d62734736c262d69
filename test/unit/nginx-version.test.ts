import {describe, expect, it} from 'vitest'

import {supportsResolve, upstreamFormFor, versionOfNginxV, versionOfTag} from '../../src/render/nginx-version.js'

describe('versionOfTag', () => {
  it.each([
    ['nginx:1.30', [1, 30]],
    ['nginx:1.27.3-alpine', [1, 27, 3]],
    ['nginx:1.26.2-alpine-slim', [1, 26, 2]],
    ['registry.example.com:5000/team/nginx:1.25.4', [1, 25, 4]],
    ['nginx:1.29.1@sha256:' + 'a'.repeat(64), [1, 29, 1]],
  ])('%s -> %j', (image, version) => {
    expect(versionOfTag(image)).toEqual(version)
  })

  it.each([
    'nginx:mainline',
    'nginx:latest',
    'nginx:stable-alpine',
    'create-gateway-offline/nginx:forky',
    'nginx',
    'registry.example.com:5000/nginx',
    'nginx@sha256:' + 'b'.repeat(64),
    'nginx:1',
  ])('%s names no version (assume a current NGINX)', (image) => {
    expect(versionOfTag(image)).toBeUndefined()
    expect(upstreamFormFor(image)).toBe('resolve')
  })
})

describe('supportsResolve / upstreamFormFor', () => {
  it.each([
    ['nginx:1.26.3', 'reload'],
    ['nginx:1.27.2-alpine', 'reload'],
    ['nginx:1.27.3-alpine', 'resolve'],
    // A tag without a patch follows its line's newest patch; 1.27's last is 1.27.5.
    ['nginx:1.27', 'resolve'],
    ['nginx:1.26', 'reload'],
    ['nginx:1.28.0', 'resolve'],
    ['nginx:1.30', 'resolve'],
    ['nginx:2.0.0', 'resolve'],
    ['nginx:0.9.9', 'reload'],
  ])('%s -> %s', (image, form) => {
    expect(upstreamFormFor(image)).toBe(form)
  })

  it('reads what `nginx -v` prints', () => {
    expect(versionOfNginxV('nginx version: nginx/1.30.6\n')).toEqual([1, 30, 6])
    expect(versionOfNginxV('nginx version: nginx/1.24.0 (Ubuntu)')).toEqual([1, 24, 0])
    expect(versionOfNginxV('sh: nginx: not found')).toBeUndefined()
    expect(supportsResolve(versionOfNginxV('nginx version: nginx/1.27.2'))).toBe(false)
  })
})
