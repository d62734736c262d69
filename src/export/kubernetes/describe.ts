import {relative} from 'node:path'

import type {KubernetesExportResult} from './export.js'

/** What `export kubernetes` prints: the files that changed, then how to apply them. */
export function describeExport(result: KubernetesExportResult): string {
  const out = relative(process.cwd(), result.out) || '.'
  const touched = result.files.filter((file) => file.status !== 'unchanged')
  const lines =
    touched.length === 0
      ? [`${out}: ${result.files.length} files, all unchanged`]
      : [
          `${out}: ${touched.length} of ${result.files.filter((file) => file.status !== 'removed').length} files written or removed`,
          ...touched.map((file) => `  ${file.status.padEnd(8)} ${file.path}`),
        ]
  lines.push(
    '',
    `Apply: kubectl apply -k ${out}   (namespace ${result.namespace}; the *-secret.yaml files hold the project's keys, mode 0600)`,
  )
  return lines.join('\n')
}
