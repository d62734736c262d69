import {readFile} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import ejs from 'ejs'

// The shape of a planned file belongs to the one place that writes files (util/files.ts), below render/.
export type {FilePlan, PlannedFile} from '../util/files.js'

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
