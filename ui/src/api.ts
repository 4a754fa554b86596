/**
 * The coordinator's API as the page calls it: same origin, JSON, and the bearer token when one was
 * given. The token lives in sessionStorage only (this tab, until it closes) and is sent only to
 * this origin. Any 401 tells the shell to ask for a token.
 */
import type { ErrorEnvelope, NodeRun, Run } from '../../src/gen/contract.js';

const TOKEN_KEY = 'arp-rc.inspector.token';

export interface RunListItem {
  readonly run: Run;
  readonly root_node_type_id: string;
}
export interface RunList {
  readonly items: RunListItem[];
  readonly next_cursor?: string;
}
export interface RunCounts {
  readonly counts: Record<'queued' | 'running' | 'succeeded' | 'failed' | 'canceled', number>;
  readonly total: number;
}
interface NodeRunList {
  readonly items: NodeRun[];
  readonly next_cursor?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const isUnauthorized = (error: unknown): boolean => error instanceof ApiError && error.status === 401;

export class Api {
  /** Called on every 401, with the coordinator's message. */
  onUnauthorized: (message: string) => void = () => {};

  get token(): string | undefined {
    return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  }

  setToken(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token.trim());
  }

  forgetToken(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  }

  async #fetch(path: string, init: RequestInit & { accept: string }): Promise<Response> {
    const headers = new Headers({ accept: init.accept });
    const token = this.token;
    if (token) headers.set('authorization', `Bearer ${token}`);
    const response = await fetch(path, { ...init, headers, credentials: 'omit', cache: 'no-store' });
    if (response.ok) return response;
    const error = await errorOf(response);
    if (error.status === 401) this.onUnauthorized(error.message);
    throw error;
  }

  async #json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await this.#fetch(path, { ...init, accept: 'application/json' });
    return (await response.json()) as T;
  }

  getRun(runId: string, signal?: AbortSignal): Promise<Run> {
    return this.#json(`/v1/runs/${encodeURIComponent(runId)}`, { signal: signal ?? null });
  }

  cancelRun(runId: string): Promise<Run> {
    return this.#json(`/v1/runs/${encodeURIComponent(runId)}:cancel`, { method: 'POST' });
  }

  getNodeRun(nodeRunId: string, signal?: AbortSignal): Promise<NodeRun> {
    return this.#json(`/v1/node-runs/${encodeURIComponent(nodeRunId)}`, { signal: signal ?? null });
  }

  listRuns(params: URLSearchParams, signal?: AbortSignal): Promise<RunList> {
    return this.#json(`/rc/v1/runs?${params}`, { signal: signal ?? null });
  }

  countRuns(params: URLSearchParams, signal?: AbortSignal): Promise<RunCounts> {
    return this.#json(`/rc/v1/run-counts?${params}`, { signal: signal ?? null });
  }

  /** Every NodeRun of the Run, all pages. */
  async listNodeRuns(runId: string, signal?: AbortSignal): Promise<NodeRun[]> {
    const all: NodeRun[] = [];
    let cursor: string | undefined;
    do {
      const params = new URLSearchParams({ limit: '1000', ...(cursor ? { cursor } : {}) });
      const page: NodeRunList = await this.#json(
        `/rc/v1/runs/${encodeURIComponent(runId)}/node-runs?${params}`,
        { signal: signal ?? null },
      );
      all.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    return all;
  }

  /** The Run's event stream, following it live, after `afterSeq`. */
  async followRunEvents(
    runId: string,
    afterSeq: number,
    signal: AbortSignal,
  ): Promise<ReadableStream<Uint8Array>> {
    const params = new URLSearchParams({
      follow: 'true',
      ...(afterSeq > 0 ? { after_seq: String(afterSeq) } : {}),
    });
    const response = await this.#fetch(`/v1/runs/${encodeURIComponent(runId)}/events?${params}`, {
      accept: 'application/x-ndjson',
      signal,
    });
    if (!response.body) throw new ApiError(0, 'no_body', 'The event stream has no body');
    return response.body;
  }
}

async function errorOf(response: Response): Promise<ApiError> {
  let envelope: Partial<ErrorEnvelope> | undefined;
  try {
    envelope = (await response.json()) as Partial<ErrorEnvelope>;
  } catch {
    envelope = undefined;
  }
  const code = envelope?.error?.code ?? 'http_error';
  const message = envelope?.error?.message ?? `${response.status} ${response.statusText}`;
  return new ApiError(response.status, code, message);
}

/** A message for an error shown to the user. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return `${error.message} (${error.status} ${error.code})`;
  if (error instanceof Error) return error.message;
  return String(error);
}
