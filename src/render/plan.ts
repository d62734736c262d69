import {readFile} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import ejs from 'ejs'

/** One file `init` (or `certs`, `scale`) will write, relative to the project root, POSIX separators. */
export interface PlannedFile {
  path: string
  content: string | Buffer
  /** File mode; secrets are 0o600. Defaults to 0o644 (0o755 for scripts set explicitly). */
  mode?: number
  /**
   * Group of the file, when a container's user reads it (secrets: NGINX's workers, Django): set when
   * create-gateway may (it runs as root); otherwise the containers join the file's group (group_add).
   */
  group?: number
  /**
   * Keep an existing file instead of overwriting it under --force (secrets, keys, certificates: a
   * re-render must not rotate credentials behind the user's back).
   */
  keepExisting?: boolean
}

export type FilePlan = PlannedFile[]

/** templates/ at the package root, next to dist/ and src/. */
export const TEMPLATES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'templates')

/**
 * Render `templates/<name>` with ejs. Escaping is off on purpose: the output is nginx, YAML, Python and
 * shell, never HTML, and `&` or `<` must come out as written.
 */
export async function renderTemplate(name: string, data: Record<string, unknown>): Promise<string> {
  const file = join(TEMPLATES_DIR, name)
  const source = await readFile(file, 'utf8')
  return ejs.render(source, data, {filename: file, escape: (value: unknown) => String(value), async: false})
}
