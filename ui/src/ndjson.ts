/**
 * NDJSON over fetch(): the coordinator's event streams write one JSON value per line, each line
 * ending in `\n`. A chunk from the network can hold several lines, or part of one, or split a UTF-8
 * character, so bytes are decoded in streaming mode and only complete lines are handed out. A line
 * still unterminated when the stream ends was cut off (the connection dropped mid-line); it is
 * dropped, and the reader resumes after the last complete event (`after_seq`).
 */

export class LineSplitter {
  readonly #decoder = new TextDecoder('utf-8');
  #partial = '';

  /** The complete, non-blank lines that `chunk` finishes (without their line ends). */
  push(chunk: Uint8Array): string[] {
    const text = this.#partial + this.#decoder.decode(chunk, { stream: true });
    const parts = text.split('\n');
    this.#partial = parts.pop() ?? '';
    return parts
      .map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line))
      .filter((line) => line !== '');
  }

  /** What was left without a line end when the stream ended. */
  get partial(): string {
    return this.#partial;
  }
}

/** The complete lines of `stream`, in batches: one batch per network chunk that completed any. */
export async function* lineBatches(stream: ReadableStream<Uint8Array>): AsyncGenerator<string[]> {
  const reader = stream.getReader();
  const splitter = new LineSplitter();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      const lines = splitter.push(value);
      if (lines.length > 0) yield lines;
    }
  } finally {
    // Stops the download when the consumer leaves early (page closed, another Run opened).
    reader.cancel().catch(() => {});
  }
}
