import type {Engine} from './engine.js'

/** Remove what a failed run created, newest first; returns the names removed. Never throws. */
export async function removeQuietly(engine: Engine, containers: Array<{id: string; name: string}>): Promise<string[]> {
  const removed: string[] = []
  for (const container of [...containers].reverse()) {
    try {
      await engine.removeContainer(container.id)
      removed.push(container.name)
    } catch {}
  }

  return removed
}
