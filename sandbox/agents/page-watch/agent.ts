// Page watch: the input is a URL on an origin the manifest names (edit "net:https://example.org"
// to the site to watch). Each run fetches the page, compares it with the copy kept in the agent's
// kv store (shared by every run on every device), and when it changed stores the new copy and
// asks a language model to say what changed. The first run only keeps the page.

import { request } from 'hive:agent/http@0.1.0'
import { get, set } from 'hive:agent/kv@0.1.0'
import { chat } from 'hive:agent/llm@0.1.0'

/** The most of a page kept and compared, in characters (a kv value holds at most 1 Mi). */
const MAX_PAGE_CHARS = 200_000

function failure (what: string, err: unknown): Error {
  const payload = (err as { payload?: { tag?: string, val?: string } }).payload
  return new Error(payload?.tag !== undefined ? `${what} failed (${payload.tag}): ${payload.val ?? ''}` : `${what} failed: ${String(err)}`)
}

export function run (input: string): string {
  const url = input.trim()
  if (url === '') throw new Error('give the URL of the page to watch as the input')
  let page
  try {
    page = request('GET', url, [{ name: 'accept', value: 'text/html, text/plain' }], new Uint8Array(), { timeoutMs: 15_000, maxBytes: 1024 * 1024 })
  } catch (err) {
    throw failure(`fetching ${url}`, err)
  }
  if (page.status !== 200) throw new Error(`${url} answered ${page.status}`)
  const text = new TextDecoder().decode(page.body).slice(0, MAX_PAGE_CHARS)
  const key = `page:${url}`
  const before = get(key)
  if (before === text) return `no change at ${url}`
  set(key, text)
  if (before === undefined) return `now watching ${url} (${text.length} characters kept)`
  let answer
  try {
    answer = chat({
      models: [],
      messages: [
        { role: 'system', content: 'You compare two versions of a web page. Answer in a few sentences: what changed, nothing else.' },
        { role: 'user', content: `Before:\n${before.slice(0, 50_000)}\n\nAfter:\n${text.slice(0, 50_000)}` }
      ],
      maxTokens: 200,
      temperature: 0,
      seed: undefined,
      stop: [],
      format: undefined
    })
  } catch (err) {
    throw failure('the model call', err)
  }
  const summary = answer.text.trim()
  set(`summary:${url}`, summary)
  return `changed: ${summary}`
}
