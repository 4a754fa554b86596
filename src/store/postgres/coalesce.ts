/**
 * Reads by id that arrive while earlier ones are in flight are sent together as one query
 * (`= ANY($1)`): under load, one round trip and one statement serve many requests, which is most of
 * what a point read costs. A read only ever joins reads that have not been sent yet, so it sees
 * everything committed before it was asked for.
 */
export class Coalescer<V> {
  readonly #fetch: (ids: string[]) => Promise<Map<string, V>>;
  readonly #maxInFlight: number;
  readonly #maxBatch: number;
  #pending = new Map<
    string,
    {
      promise: Promise<V | undefined>;
      resolve: (value: V | undefined) => void;
      reject: (error: unknown) => void;
    }
  >();
  #inFlight = 0;

  constructor(
    fetch: (ids: string[]) => Promise<Map<string, V>>,
    options: { maxInFlight: number; maxBatch: number },
  ) {
    this.#fetch = fetch;
    this.#maxInFlight = options.maxInFlight;
    this.#maxBatch = options.maxBatch;
  }

  get(id: string): Promise<V | undefined> {
    let entry = this.#pending.get(id);
    if (!entry) {
      let resolve!: (value: V | undefined) => void;
      let reject!: (error: unknown) => void;
      const promise = new Promise<V | undefined>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      entry = { promise, resolve, reject };
      this.#pending.set(id, entry);
    }
    if (this.#inFlight < this.#maxInFlight) this.#flush();
    return entry.promise;
  }

  #flush(): void {
    if (this.#pending.size === 0) return;
    let batch = this.#pending;
    if (batch.size > this.#maxBatch) {
      const taken = [...batch].slice(0, this.#maxBatch);
      batch = new Map(taken);
      for (const [id] of taken) this.#pending.delete(id);
    } else this.#pending = new Map();
    this.#inFlight++;
    this.#fetch([...batch.keys()])
      .then(
        (found) => {
          for (const [id, entry] of batch) entry.resolve(found.get(id));
        },
        (error: unknown) => {
          for (const entry of batch.values()) entry.reject(error);
        },
      )
      .finally(() => {
        this.#inFlight--;
        if (this.#inFlight < this.#maxInFlight) this.#flush();
      });
  }
}
