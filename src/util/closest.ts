/** Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`. */
export function editDistance(a: string, b: string): number {
  // Optimal string alignment: "stauts" -> "status" is one swap, as a typist makes it.
  const rows = Array.from({length: a.length + 1}, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, rows[i - 2]![j - 2]! + 1)
      rows[i]![j] = best
    }
  }

  return rows[a.length]![b.length]!
}

/**
 * The candidate nearest to `typed`, when it is near enough to be what was meant: at most a third of
 * its length away (so `stauts` finds `status`, `foo` finds nothing).
 */
export function closest(typed: string, candidates: readonly string[]): string | undefined {
  let best: {name: string; distance: number} | undefined
  for (const name of candidates) {
    const distance = editDistance(typed, name)
    if (!best || distance < best.distance) best = {name, distance}
  }

  return best && best.distance <= Math.max(1, Math.floor(typed.length / 3)) ? best.name : undefined
}
