import {mkdtemp, rm, writeFile, mkdir} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'

import {UsageError} from '../../src/errors.js'
import {parseManifest} from '../../src/manifest/load.js'
import {generateSecrets, JWT_SECRET_PATTERN, loadSecrets, renderSecretFiles} from '../../src/render/secrets.js'
import {describeProject} from '../../src/project/summary.js'

const manifest = parseManifest({
  version: 1,
  name: 'my-api',
  domain: 'api.localhost',
  services: {web: {kind: 'django'}},
  routes: [{path: '/', service: 'web', auth: 'jwt'}],
})

const dirs: string[] = []
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, {recursive: true, force: true})
})

async function projectWith(files: Array<{path: string; content: string | Buffer}>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'secrets-'))
  dirs.push(dir)
  for (const file of files) {
    await mkdir(join(dir, file.path, '..'), {recursive: true})
    await writeFile(join(dir, file.path), file.content)
  }

  return dir
}

describe('project secrets', () => {
  it('makes a 256-bit JWT key that NGINX can hold, and writes it twice, 0600', () => {
    const secrets = generateSecrets(manifest)
    expect(Buffer.from(secrets.jwtSecret, 'base64url')).toHaveLength(32)
    expect(secrets.jwtSecret).toMatch(JWT_SECRET_PATTERN)
    expect(generateSecrets(manifest).jwtSecret).not.toBe(secrets.jwtSecret)

    const files = Object.fromEntries(renderSecretFiles(manifest, secrets).map((file) => [file.path, file]))
    expect(files['secrets/jwt-secret.txt']).toMatchObject({content: `${secrets.jwtSecret}\n`, mode: 0o600})
    expect(files['secrets/jwt-secret.map']).toMatchObject({content: `default "${secrets.jwtSecret}";\n`, mode: 0o600})
  })

  it('keeps every secret already on disk (init --force), the JWT key included', async () => {
    const first = generateSecrets(manifest)
    const dir = await projectWith(renderSecretFiles(manifest, first).filter((file) => file.path !== 'secrets/htpasswd'))
    const again = await loadSecrets(dir, manifest)
    expect(again).toEqual(first)
  })

  it('refuses a JWT key that would break the NGINX config, rather than rotating it', async () => {
    const dir = await projectWith([{path: 'secrets/jwt-secret.txt', content: 'short"; include /etc/passwd; "\n'}])
    await expect(loadSecrets(dir, manifest)).rejects.toThrow(UsageError)
    await expect(loadSecrets(dir, manifest)).rejects.toThrow(/secrets\/jwt-secret\.txt/)
  })

  it("gives no secret file to others: htpasswd and each SECRET_KEY readable by the reading container's group", () => {
    const secrets = generateSecrets(manifest)
    const files = Object.fromEntries(renderSecretFiles(manifest, secrets).map((file) => [file.path, file]))
    for (const file of Object.values(files)) expect(file.mode! & 0o007, file.path).toBe(0)
    expect(files['secrets/htpasswd']).toMatchObject({mode: 0o640, group: 101})
    expect(files['secrets/web-secret-key']).toMatchObject({
      content: `${secrets.secretKeys.web}\n`,
      mode: 0o640,
      group: 10001,
    })
  })

  it('prints the credentials to a terminal only; otherwise names their files', () => {
    const basic = parseManifest({
      version: 1,
      name: 'my-api',
      domain: 'api.localhost',
      services: {web: {kind: 'django'}},
      routes: [
        {path: '/', service: 'web', auth: 'basic'},
        {path: '/keyed/', service: 'web', auth: 'api-key'},
      ],
    })
    const secrets = generateSecrets(basic)
    const project = {dir: '/tmp/my-api', manifest: basic, secrets, written: [], certificates: []}
    const terminal = describeProject(project, {showSecrets: true})
    expect(terminal).toContain(`gateway:${secrets.basicAuth.password}`)
    expect(terminal).toContain(secrets.apiKeys[0])
    const piped = describeProject(project)
    expect(piped).not.toContain(secrets.basicAuth.password)
    expect(piped).not.toContain(secrets.apiKeys[0])
    expect(piped).toContain('password in secrets/basic-auth.txt')
    expect(piped).toContain('X-API-Key   in secrets/api-keys.txt')
  })
})
