/**
 * Waits for a condition that some background work will make true, checking once per event-loop turn
 * (never on a timer), and fails if it does not hold within `turns` turns.
 */
export async function until(condition: () => boolean, what: string, turns = 10_000): Promise<void> {
  for (let turn = 0; turn < turns; turn++) {
    if (condition()) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error(`never happened: ${what}`);
}

/** As `until`, for a condition that must be read asynchronously (e.g. over HTTP). */
export async function eventually(
  condition: () => Promise<boolean>,
  what: string,
  turns = 10_000,
): Promise<void> {
  for (let turn = 0; turn < turns; turn++) {
    if (await condition()) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error(`never happened: ${what}`);
}
