/**
 * `date.toISOString()`, remembered for the last millisecond asked: formatting costs more than the
 * rest of a small decision, and a busy coordinator stamps many records and events within one
 * millisecond.
 */
let lastMs = Number.NaN;
let lastIso = '';

export function isoTime(date: Date): string {
  const ms = date.getTime();
  if (ms !== lastMs) {
    lastIso = date.toISOString();
    lastMs = ms;
  }
  return lastIso;
}
