/** Text for times, durations and values, the same on every page. Times are shown in UTC. */

/** `2026-01-01 12:00:03 UTC` (the date-time as the API gives it, readable). */
export function formatTime(iso: string | undefined): string {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** `12:00:03.250` for the timeline, where the date is the same on every line. */
export function formatClock(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toISOString().slice(11, 23);
}

/** `850 ms`, `1.2 s`, `3 min 05 s`, `2 h 04 min`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const seconds = Math.floor(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, '0')} s`;
  const minutes = Math.floor(seconds / 60);
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/**
 * How long something ran: from `started` to `ended`, or to `now` while it runs (`running` true).
 * Undefined before it started.
 */
export function elapsed(
  started: string | undefined,
  ended: string | undefined,
  now: number,
): { text: string; running: boolean } | undefined {
  if (!started) return undefined;
  const from = Date.parse(started);
  const to = ended ? Date.parse(ended) : now;
  if (Number.isNaN(from) || Number.isNaN(to)) return undefined;
  return { text: formatDuration(Math.max(0, to - from)), running: !ended };
}

/** A value as indented JSON, for the detail panels. */
export const prettyJson = (value: unknown): string => JSON.stringify(value, null, 2) ?? String(value);

/** A one-line summary of an event's data, cut to `max` characters. */
export function summarise(value: unknown, max = 120): string {
  if (value === undefined) return '';
  const text = JSON.stringify(value) ?? '';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** `<input type="datetime-local">` value (local time) → ISO date-time, or undefined when empty/invalid. */
export function localInputToIso(value: string): string | undefined {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** ISO date-time → `<input type="datetime-local">` value in local time (seconds precision). */
export function isoToLocalInput(iso: string | undefined): string {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const pad = (n: number) => String(n).padStart(2, '0');
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}
