// Giving memory back after a burst. V8 grows its heap to absorb a burst of work (a member
// opening streams by the thousand, a large copy of a context or a ledger) and, on an idle
// process, often keeps the grown heap resident for good: measured, 10,000 streams from one
// member left a node's RSS ~80 MiB above where it started, although the live heap was back to
// its size before the burst. Node has no call for "memory pressure", so the node watches its
// own RSS: when it stands well above the floor (what it was after start, or after the last
// trim) and has stopped growing (the burst is over), one full collection that compacts and
// releases free pages brings it back. A node whose live data really grew pays one collection and
// takes the new size as its floor, so it is never collected again for the same memory.

import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

export interface MemoryTrimOptions {
  /** How often RSS is read. Default 5 s. */
  intervalMs?: number
  /** RSS this far above the floor is worth a collection. Default 32 MiB. */
  aboveFloorBytes?: number
  /** RSS that grew more than this since the last reading is a burst still going on. Default 4 MiB. */
  growingBytes?: number
  /** Run one full collection at once, before watching. Default true. */
  collectNow?: boolean
  /** Told of each trim: RSS before and after. */
  onTrim?: (before: number, after: number) => void
}

export interface MemoryTrim {
  stop: () => void
}

type FullCollection = (options: { type: 'major', execution: 'sync', flavor: 'last-resort' }) => void

let collect: FullCollection | undefined

/** V8's own full collection (the one a low-memory notification runs), made callable once. */
function fullCollection (): FullCollection {
  if (collect == null) {
    setFlagsFromString('--expose-gc')
    collect = runInNewContext('gc') as FullCollection
  }
  return collect
}

/** Starts watching this process's RSS; the timer never keeps the process alive. */
export function startMemoryTrim (options: MemoryTrimOptions = {}): MemoryTrim {
  const intervalMs = options.intervalMs ?? 5_000
  const aboveFloor = options.aboveFloorBytes ?? 32 * 1024 * 1024
  const growing = options.growingBytes ?? 4 * 1024 * 1024
  const gc = fullCollection()
  // starting is a burst too (modules loaded, stores opened): give its garbage back at once
  if (options.collectNow !== false) gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
  let floor = process.memoryUsage.rss()
  let last = floor
  const timer = setInterval(() => {
    const rss = process.memoryUsage.rss()
    const stillGrowing = rss - last > growing
    last = rss
    if (rss < floor) floor = rss
    if (stillGrowing || rss - floor < aboveFloor) return
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
    const after = process.memoryUsage.rss()
    floor = after
    last = after
    options.onTrim?.(rss, after)
  }, intervalMs)
  timer.unref()
  return { stop: () => { clearInterval(timer) } }
}
