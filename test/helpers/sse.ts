// A reading client of a node's event stream (`GET /events`) for tests: collects every event and
// waits on the ones a test expects, always with a timeout.

import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { waitFor } from './wait.ts'
import type { HiveNode } from '../../node/hive-node.ts'

export interface ReceivedEvent {
  id: number
  type: string
  at: number
  data: Record<string, unknown>
}

export interface EventClient {
  readonly events: ReceivedEvent[]
  /** Resolves once the node ended the stream (or it was cut). */
  readonly ended: Promise<void>
  isEnded: () => boolean
  /** The first event that matches, waited for up to the timeout. */
  next: (match: (e: ReceivedEvent) => boolean, message: string, timeoutMs?: number) => Promise<ReceivedEvent>
  close: () => void
}

export async function apiToken (node: HiveNode): Promise<string> {
  return (await readFile(join(node.dataDir, 'api.token'), 'utf8')).trim()
}

/** Opens the stream with the node's token and resolves once its `hello` arrived. */
export async function followEvents (node: HiveNode): Promise<EventClient> {
  const controller = new AbortController()
  const response = await fetch(`${node.apiUrl}/events`, { headers: { authorization: `Bearer ${await apiToken(node)}` }, signal: controller.signal })
  if (response.status !== 200 || response.body == null) throw new Error(`GET /events answered ${response.status}: ${await response.text()}`)
  const events: ReceivedEvent[] = []
  let ended = false
  const reading = (async () => {
    const decoder = new TextDecoder()
    let buffer = ''
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true })
      let end
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const data = buffer.slice(0, end).split('\n').find(l => l.startsWith('data: '))
        buffer = buffer.slice(end + 2)
        if (data != null) events.push(JSON.parse(data.slice(6)) as ReceivedEvent)
      }
    }
  })().catch(() => {}).finally(() => { ended = true })
  const client: EventClient = {
    events,
    ended: reading,
    isEnded: () => ended,
    next: async (match, message, timeoutMs) => waitFor(() => events.find(match), { message, ...(timeoutMs != null ? { timeoutMs } : {}) }),
    close: () => { controller.abort() }
  }
  await client.next(e => e.type === 'hello', 'the hello event')
  return client
}
