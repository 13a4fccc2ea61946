// A typed EventTarget: each placement part names its events and their details in one map, so a
// listener gets the detail's type and a misspelt event name does not compile.

export class TypedEventTarget<Events extends Record<string, unknown>> extends EventTarget {
  emit<K extends keyof Events & string> (type: K, detail: Events[K]): void {
    this.dispatchEvent(new CustomEvent(type, { detail }))
  }

  on<K extends keyof Events & string> (type: K, listener: (detail: Events[K]) => void): () => void {
    const wrapped = (event: Event): void => { listener((event as CustomEvent<Events[K]>).detail) }
    this.addEventListener(type, wrapped)
    return () => { this.removeEventListener(type, wrapped) }
  }
}
