// Reading the API from a view: `useApi(path, topics)` reads `path` when the view appears and
// again whenever one of `topics` may have changed (see api.js), never twice at once: a change
// announced while a read is under way reads once more after it.

import { useCallback, useEffect, useRef, useState } from 'preact/hooks'
import { get, onLive } from './api.js'

export function useApi (path, topics = []) {
  const [state, setState] = useState({ data: undefined, error: undefined, loading: path != null })
  const busy = useRef(false)
  const again = useRef(false)
  const current = useRef(path)
  current.current = path

  const load = useCallback(async () => {
    if (path == null) return
    if (busy.current) {
      again.current = true
      return
    }
    busy.current = true
    again.current = false
    try {
      const data = await get(path)
      if (current.current === path) setState({ data, error: undefined, loading: false })
    } catch (error) {
      if (current.current === path) setState(s => ({ data: s.data, error, loading: false }))
    } finally {
      busy.current = false
    }
    if (again.current && current.current === path) void load()
  }, [path])

  useEffect(() => {
    setState({ data: undefined, error: undefined, loading: path != null })
    void load()
    if (topics.length === 0) return undefined
    return onLive((changed) => { if (changed.some(t => topics.includes(t))) void load() })
  }, [path, topics.join()])

  return { ...state, reload: load }
}
