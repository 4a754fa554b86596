/**
 * A task that many triggers may ask for but that never runs twice at once: a request while it runs
 * makes it run once more afterwards, however many requests came meanwhile. Used for reading a Run
 * again after events, which arrive in bursts; the last run always starts after the last request,
 * so it sees everything that request was made for.
 */
export function coalesced(task: () => Promise<void>, onError: (error: unknown) => void): () => void {
  let running = false;
  let again = false;
  return () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    void (async () => {
      do {
        again = false;
        try {
          await task();
        } catch (error) {
          onError(error);
        }
      } while (again);
      running = false;
    })();
  };
}
