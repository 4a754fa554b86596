/** Atomic Executor: `POST /v1/atomic-node-runs:execute` and `POST /v1/atomic-node-runs/{id}:cancel`. */
import type { AtomicExecuteRequest, AtomicExecuteResult, RunContext } from '../gen/contract.js';
import type { ServiceClient } from './http.js';

export class AtomicExecutorClient {
  constructor(readonly http: ServiceClient) {}

  /** Runs the NodeRun and waits for its result. Never retried: execution may have side effects. */
  async execute(body: AtomicExecuteRequest, options: { timeoutMs: number; signal?: AbortSignal }) {
    const { body: result } = await this.http.call<AtomicExecuteResult>({
      method: 'POST',
      operation: 'execute',
      path: '/v1/atomic-node-runs:execute',
      body,
      requestSchema: 'AtomicExecuteRequest',
      responseSchema: 'AtomicExecuteResult',
      safeToRetry: false,
      runContext: body.run_context,
      subject: { runId: body.run_id, nodeRunId: body.node_run_id },
      timeoutMs: options.timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return result!;
  }

  /** Asks the executor to stop a NodeRun (idempotent, so retried); `runContext` carries the trace. */
  async cancel(nodeRunId: string, runContext?: RunContext): Promise<void> {
    await this.http.call({
      runContext,
      subject: { nodeRunId },
      method: 'POST',
      operation: 'cancel',
      path: `/v1/atomic-node-runs/${encodeURIComponent(nodeRunId)}:cancel`,
      safeToRetry: true,
      acceptStatuses: [404],
    });
  }
}
