/** The NDJSON line reader of the inspector (ui/src/ndjson.ts). */
import { describe, expect, it } from 'vitest';
import { LineSplitter, lineBatches } from '../../ui/src/ndjson.js';

const bytes = (text: string) => new TextEncoder().encode(text);

function streamOf(chunks: readonly Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
}

describe('LineSplitter', () => {
  it('hands out complete lines only, keeping a partial line for the next chunk', () => {
    const splitter = new LineSplitter();
    expect(splitter.push(bytes('{"seq":1}\n{"se'))).toEqual(['{"seq":1}']);
    expect(splitter.partial).toBe('{"se');
    expect(splitter.push(bytes('q":2}\n{"seq":3}\n'))).toEqual(['{"seq":2}', '{"seq":3}']);
    expect(splitter.partial).toBe('');
  });

  it('joins a UTF-8 character split across chunks', () => {
    const encoded = bytes('{"text":"é✓"}\n');
    const splitter = new LineSplitter();
    const lines = [...encoded].flatMap((byte) => splitter.push(new Uint8Array([byte])));
    expect(lines).toEqual(['{"text":"é✓"}']);
  });

  it('drops CR before LF and blank lines', () => {
    expect(new LineSplitter().push(bytes('a\r\n\n\r\nb\n'))).toEqual(['a', 'b']);
  });
});

describe('lineBatches', () => {
  it('yields one batch per chunk that completes lines, and drops a cut-off last line', async () => {
    const batches: string[][] = [];
    for await (const batch of lineBatches(
      streamOf([bytes('1\n2'), bytes('\n'), bytes('3\n4'), bytes('{"cut')]),
    )) {
      batches.push(batch);
    }
    expect(batches).toEqual([['1'], ['2'], ['3']]);
  });

  it('cancels the stream when the reader leaves early', async () => {
    let canceled = false;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(bytes('x\n'));
      },
      cancel() {
        canceled = true;
      },
    });
    for await (const batch of lineBatches(stream)) {
      expect(batch).toEqual(['x']);
      break;
    }
    expect(canceled).toBe(true);
  });
});
