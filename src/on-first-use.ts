// Code and clients an agent makes on first use (an engine's modules, a credential provider) and shares
// after. A failed attempt is not kept: a module that failed to load or a client that failed to build for a
// passing reason (too many open files, a full disk, a throttled API) must not fail every later session
// until the agent restarts; the next session tries again.

/** `make`, called once and shared; called again after it rejected. */
export function onFirstUse<T>(make: () => T | Promise<T>): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () => {
    if (made) return made;
    const attempt = Promise.resolve().then(make);
    made = attempt;
    attempt.catch(() => {
      if (made === attempt) made = undefined;
    });
    return attempt;
  };
}
