import {randomBytes, randomInt} from 'node:crypto'
import {join} from 'node:path'
import {parseEnv} from 'node:util'
import {encrypt, verify} from 'unixcrypt'

import {UsageError} from '../errors.js'
import {API_KEY_PATTERN, BASIC_AUTH_USER_PATTERN} from '../manifest/grammar.js'
import {djangoServices, secretKeyVariable} from '../manifest/model.js'
import type {Manifest} from '../manifest/schema.js'
import {CONTAINER_GROUPS, PROJECT_PATHS, secretFile, secretKeySecret} from '../manifest/stack.js'
import {readFileIfExists} from '../util/files.js'
import type {PlannedFile} from './plan.js'

/**
 * Every secret of a project, made with node:crypto's CSPRNG. Secrets live in files that .gitignore
 * covers, mode 0600, never in gateway.yaml.
 */
export interface ProjectSecrets {
  /** Django SECRET_KEY per service name. */
  secretKeys: Record<string, string>
  basicAuth: {user: string; password: string}
  apiKeys: string[]
  /** HS256 key of the jwt routes, used as its UTF-8 bytes (as JWT libraries take a string secret). */
  jwtSecret: string
  /**
   * The htpasswd line on disk when it still matches basicAuth: kept as it is, since a new salt would
   * change the file (and reload the gateway) on every render for nothing.
   */
  htpasswd?: string
}

/**
 * What a JWT secret may hold: it lands inside a double-quoted NGINX string, where `"`, `\`, `$` and
 * whitespace would change the config's meaning. base64url (what we generate) and standard base64 pass.
 */
export const JWT_SECRET_PATTERN = /^[A-Za-z0-9._~+/=-]{32,512}$/

const SALT_ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

function randomToken(bytes: number): string {
  return randomBytes(bytes).toString('base64url')
}

export function generateSecrets(manifest: Manifest): ProjectSecrets {
  return {
    secretKeys: Object.fromEntries(djangoServices(manifest).map((service) => [service.name, randomToken(48)])),
    basicAuth: {user: 'gateway', password: randomToken(18)},
    apiKeys: [randomToken(32)],
    // 256 bits: RFC 7518 section 3.2 wants an HS256 key at least as long as the hash output.
    jwtSecret: randomToken(32),
  }
}

/**
 * SHA-512 crypt (`$6$`), which NGINX checks through the system's crypt() in both the official image and
 * Debian's package. Not bcrypt: auth_basic hashes on every request inside the worker's event loop, and
 * bcrypt's deliberate cost would stall every other connection of that worker under load.
 */
function safeVerify(password: string, hash: string): boolean {
  try {
    return verify(password, hash)
  } catch {
    return false // not a crypt hash unixcrypt knows: write a fresh line
  }
}

export function htpasswdLine(user: string, password: string): string {
  const salt = Array.from({length: 16}, () => SALT_ALPHABET[randomInt(SALT_ALPHABET.length)]).join('')
  return `${user}:${encrypt(password, `$6$${salt}`)}\n`
}

async function readOptional(path: string): Promise<string | undefined> {
  return (await readFileIfExists(path))?.toString('utf8')
}

/**
 * The project's secrets: those already on disk are kept (a re-render with --force must not rotate
 * credentials behind the user's back), the missing ones are generated.
 */
export async function loadSecrets(dir: string, manifest: Manifest): Promise<ProjectSecrets> {
  const fresh = generateSecrets(manifest)
  const envText = await readOptional(join(dir, PROJECT_PATHS.env))
  const env = envText === undefined ? {} : parseEnv(envText)
  for (const service of djangoServices(manifest)) {
    const existing = env[secretKeyVariable(service.name)]
    if (existing) fresh.secretKeys[service.name] = existing
  }

  const basic = (await readOptional(join(dir, PROJECT_PATHS.basicAuth)))?.trim()
  const colon = basic?.indexOf(':') ?? -1
  if (basic && colon > 0) {
    const user = basic.slice(0, colon)
    // The user starts a line of the htpasswd file NGINX reads: a ":" or a line break would forge another.
    if (!BASIC_AUTH_USER_PATTERN.test(user))
      throw new UsageError(
        `${PROJECT_PATHS.basicAuth}: the user must be 1 to 64 letters, digits, ".", "_", "@" or "-", before the first ":"`,
      )
    fresh.basicAuth = {user, password: basic.slice(colon + 1)}
  }
  const htpasswd = await readOptional(join(dir, PROJECT_PATHS.htpasswd))
  const hash = htpasswd?.startsWith(`${fresh.basicAuth.user}:`)
    ? htpasswd.trim().slice(fresh.basicAuth.user.length + 1)
    : undefined
  if (hash && !hash.includes('\n') && safeVerify(fresh.basicAuth.password, hash)) fresh.htpasswd = htpasswd

  const keys = (await readOptional(join(dir, PROJECT_PATHS.apiKeys)))
    ?.split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
  if (keys && keys.length > 0) {
    // Each key becomes a line of a `map` NGINX reads (secrets/api-keys.map): see API_KEY_PATTERN.
    const bad = keys.findIndex((key) => !API_KEY_PATTERN.test(key))
    if (bad !== -1)
      throw new UsageError(
        `${PROJECT_PATHS.apiKeys}: key ${bad + 1} must be 16 to 512 characters of base64 or base64url, not starting with "~" (fix or remove it)`,
      )
    fresh.apiKeys = keys
  }

  const jwtSecret = (await readOptional(join(dir, PROJECT_PATHS.jwtSecret)))?.trim()
  if (jwtSecret) {
    // A hand-edited secret that NGINX could not hold is an error, not a reason to rotate it silently.
    if (!JWT_SECRET_PATTERN.test(jwtSecret)) {
      throw new UsageError(
        `${PROJECT_PATHS.jwtSecret}: the JWT secret must be 32 to 512 characters of base64 or base64url`,
        {
          hint: `Fix the file, or delete it to have a new secret generated (tokens signed with the old one stop working).`,
        },
      )
    }

    fresh.jwtSecret = jwtSecret
  }

  return fresh
}

export function renderSecretFiles(manifest: Manifest, secrets: ProjectSecrets): PlannedFile[] {
  const env = [
    '# Generated by create-gateway. Secrets: keep this file out of version control (.gitignore covers it).',
    `COMPOSE_PROJECT_NAME=${manifest.name}`,
    ...djangoServices(manifest).map(
      (service) => `${secretKeyVariable(service.name)}=${secrets.secretKeys[service.name]}`,
    ),
    '',
  ].join('\n')
  const keys = secrets.apiKeys
  return [
    {path: PROJECT_PATHS.env, content: env, mode: 0o600},
    {path: PROJECT_PATHS.basicAuth, content: `${secrets.basicAuth.user}:${secrets.basicAuth.password}\n`, mode: 0o600},
    // The hash file is read by NGINX's unprivileged workers on each request: readable by their group
    // (nginx), not by others.
    {
      path: PROJECT_PATHS.htpasswd,
      content: secrets.htpasswd ?? htpasswdLine(secrets.basicAuth.user, secrets.basicAuth.password),
      mode: 0o640,
      group: CONTAINER_GROUPS.gateway,
    },
    // Each Django service's SECRET_KEY as Compose hands it over (a file under /run/secrets/, not an
    // environment value): the same key as in .env, readable by the service's user through its group.
    ...djangoServices(manifest).map((service) => ({
      path: secretFile(secretKeySecret(service.name)),
      content: `${secrets.secretKeys[service.name]}\n`,
      mode: 0o640,
      group: CONTAINER_GROUPS.django,
    })),
    {
      path: PROJECT_PATHS.apiKeys,
      content: `# API keys accepted in the X-API-Key header, one per line.\n${keys.join('\n')}\n`,
      mode: 0o600,
    },
    // Read by the NGINX master (root) when it loads the config: `map $http_x_api_key` entries.
    {path: PROJECT_PATHS.apiKeysMap, content: keys.map((key) => `"${key}" 1;`).join('\n') + '\n', mode: 0o600},
    {path: PROJECT_PATHS.jwtSecret, content: `${secrets.jwtSecret}\n`, mode: 0o600},
    // The body of `map "" $jwt_secret { ... }` (gateway/conf.d/maps.conf). njs checks tokens in the
    // unprivileged worker, which cannot open a 0600 root-owned file at request time; the master (root)
    // reads this one when it loads the config, and the worker gets the key as the $jwt_secret variable.
    {path: PROJECT_PATHS.jwtSecretMap, content: `default "${secrets.jwtSecret}";\n`, mode: 0o600},
  ]
}
