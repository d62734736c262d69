/**
 * Which upstreams.conf form the gateway's NGINX can load. `server NAME resolve` in an upstream (with a
 * `zone` and a `resolver`) is open source since NGINX 1.27.3: NGINX then follows Docker's DNS for the
 * service name by itself, so replicas come and go without a reload. Older NGINX gets the reload form
 * (one server per replica container name; every change is a rewrite and a reload).
 */

export type UpstreamForm = 'resolve' | 'reload'

/** The first NGINX release whose open-source build takes `resolve` on upstream servers. */
export const RESOLVE_SINCE = [1, 27, 3] as const

/** [major, minor, patch?] */
export type NginxVersion = [number, number, number?]

/**
 * The NGINX version an image tag names: `1.30`, `1.27.3-alpine`, `1.26.2-alpine-slim` and the like.
 * Undefined for tags without one (`latest`, `mainline`, `stable`, `alpine`, a stand-in's `forky`, a
 * digest): those follow current releases, so callers assume a current NGINX.
 */
export function versionOfTag(image: string): NginxVersion | undefined {
  const withoutDigest = image.split('@')[0] ?? ''
  const lastSlash = withoutDigest.lastIndexOf('/')
  const colon = withoutDigest.indexOf(':', lastSlash + 1)
  if (colon === -1) return undefined
  const match = /^(\d+)\.(\d+)(?:\.(\d+))?(?:-|$)/.exec(withoutDigest.slice(colon + 1))
  if (!match) return undefined
  const [, major, minor, patch] = match
  return [Number(major), Number(minor), ...(patch === undefined ? [] : [Number(patch)])] as NginxVersion
}

/** `nginx version: nginx/1.30.6` (what `nginx -v` prints, on stderr) -> [1, 30, 6]. */
export function versionOfNginxV(output: string): NginxVersion | undefined {
  const match = /nginx\/(\d+)\.(\d+)\.(\d+)/.exec(output)
  return match ? [Number(match[1]), Number(match[2]), Number(match[3])] : undefined
}

/**
 * Does this version take `server NAME resolve`? A tag without a patch (`1.27`) follows the newest
 * patch of its line, and 1.27's last (1.27.5) has it.
 */
export function supportsResolve(version: NginxVersion | undefined): boolean {
  if (version === undefined) return true
  const [major, minor, patch] = version
  const [wantMajor, wantMinor, wantPatch] = RESOLVE_SINCE
  if (major !== wantMajor) return major > wantMajor
  if (minor !== wantMinor) return minor > wantMinor
  return patch === undefined || patch >= wantPatch
}

/** The form `init` and `render` write for a gateway image. */
export function upstreamFormFor(image: string): UpstreamForm {
  return supportsResolve(versionOfTag(image)) ? 'resolve' : 'reload'
}

export function describeVersion(version: NginxVersion): string {
  return version.filter((part) => part !== undefined).join('.')
}
