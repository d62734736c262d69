import {readFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {parseDocument, stringify} from 'yaml'
import type {ZodError} from 'zod'

import {ManifestError, UsageError, type FieldIssue} from '../errors.js'
import {formatFieldPath, ManifestSchema, type Manifest} from './schema.js'

export const MANIFEST_FILE = 'gateway.yaml'

export function zodIssues(error: ZodError): FieldIssue[] {
  return error.issues.map((issue) => ({path: formatFieldPath(issue.path), message: issue.message}))
}

/** Validate a manifest object; throws ManifestError naming every bad field. */
export function parseManifest(input: unknown, source?: string): Manifest {
  const result = ManifestSchema.safeParse(input)
  if (!result.success) throw new ManifestError(zodIssues(result.error), source)
  return result.data
}

/** Read and validate `<dir>/gateway.yaml`. */
export async function loadManifest(dir: string): Promise<Manifest> {
  const file = join(resolve(dir), MANIFEST_FILE)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UsageError(`${resolve(dir)} is not a create-gateway project: no ${MANIFEST_FILE} there`, {
        hint: 'Run the command inside the project, pass --dir PROJECT, or create one with `create-gateway init DIR`.',
      })
    }

    throw error
  }

  const document = parseDocument(text)
  if (document.errors.length > 0) {
    const first = document.errors[0]!
    throw new UsageError(`${file}: not valid YAML: ${first.message}`)
  }

  return parseManifest(document.toJS(), file)
}

/** gateway.yaml as written by init and scale: defaults spelled out, so the file documents itself. */
export function serializeManifest(manifest: Manifest): string {
  const header = [
    '# create-gateway manifest: every generated file is rendered from this one.',
    '# After editing it, `create-gateway render` writes the files again (and reloads a running gateway).',
    '# Commands read it on every run; `scale` updates replica counts here.',
    '',
  ].join('\n')
  return header + stringify(manifest, {lineWidth: 0})
}
