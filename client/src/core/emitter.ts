/** A small typed event emitter: on() returns its own off(), and a throwing listener harms no other. */
export interface Emitter<M> {
  on<K extends keyof M>(type: K, listener: (value: M[K]) => void): () => void;
  emit<K extends keyof M>(type: K, value: M[K]): void;
}

export function emitter<M>(report: (e: unknown) => void): Emitter<M> {
  const lists = new Map<keyof M, Set<(value: never) => void>>();
  return {
    on(type, listener) {
      const set = lists.get(type) ?? new Set();
      lists.set(type, set);
      const entry = (v: never) => listener(v);
      set.add(entry);
      return () => void set.delete(entry);
    },
    emit(type, value) {
      const set = lists.get(type);
      if (!set) return;
      for (const l of [...set]) {
        try {
          l(value as never);
        } catch (e) {
          report(e);
        }
      }
    },
  };
}

/** Reports a listener's exception the way EventTarget does: as an uncaught error, without stopping the client. */
export function reportError(e: unknown): void {
  queueMicrotask(() => {
    throw e;
  });
}
