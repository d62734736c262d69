import {readFile, stat} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {parseDocument, stringify} from 'yaml'
import type {ZodError} from 'zod'

import {ManifestError, UsageError, type FieldIssue} from '../errors.js'
import {fileSystemError} from '../util/files.js'
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

/** A gateway.yaml is a page of text; a bigger one is a mistake or an attack, not a manifest. */
const MAX_MANIFEST_BYTES = 1024 * 1024

/** The first line of a YAML library message: the rest is a code frame, and errors here are one line. */
function firstLine(message: string): string {
  return message.split('\n')[0]!.replace(/:$/, '')
}

/**
 * YAML text -> the plain value it describes, or a UsageError naming the file: a syntax error (with
 * its line and column), an alias that expands too far (billion laughs) or one with no anchor.
 */
export function parseManifestYaml(text: string, file: string): unknown {
  const document = parseDocument(text)
  if (document.errors.length > 0)
    throw new UsageError(`${file}: not valid YAML: ${firstLine(document.errors[0]!.message)}`)
  try {
    return document.toJS()
  } catch (error) {
    // yaml throws a ReferenceError for aliases that expand past its limit or name no anchor.
    if (!(error instanceof ReferenceError)) throw error
    const reason = /Excessive alias count/.test(error.message)
      ? 'its aliases expand to too much data'
      : firstLine(error.message)
    throw new UsageError(`${file}: not valid YAML: ${reason}`)
  }
}

/** Read and validate `<dir>/gateway.yaml`. */
export async function loadManifest(dir: string): Promise<Manifest> {
  const file = join(resolve(dir), MANIFEST_FILE)
  let text: string
  try {
    const info = await stat(file)
    if (info.isFile() && info.size > MAX_MANIFEST_BYTES)
      throw new UsageError(`${file}: ${info.size} bytes, more than a manifest holds (at most ${MAX_MANIFEST_BYTES})`)
    text = await readFile(file, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') {
      throw new UsageError(`${resolve(dir)} is not a create-gateway project: no ${MANIFEST_FILE} there`, {
        hint: 'Run the command inside the project, pass --dir PROJECT, or create one with `create-gateway init DIR`.',
      })
    }

    throw fileSystemError(error, file, 'read')
  }

  return parseManifest(parseManifestYaml(text, file), file)
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
