/** Composite Executor: `POST /v1/composite-node-runs:begin` and `POST /v1/composite-node-runs/{id}:cancel`. */
import type { CompositeBeginRequest, CompositeBeginResponse, RunContext } from '../gen/contract.js';
import type { ServiceClient } from './http.js';

export class CompositeExecutorClient {
  constructor(readonly http: ServiceClient) {}

  /** Hands a composite NodeRun to the executor, which answers at once and works in the background. */
  async begin(body: CompositeBeginRequest, signal?: AbortSignal): Promise<CompositeBeginResponse> {
    const { body: response } = await this.http.call<CompositeBeginResponse>({
      method: 'POST',
      operation: 'begin',
      path: '/v1/composite-node-runs:begin',
      body,
      requestSchema: 'CompositeBeginRequest',
      responseSchema: 'CompositeBeginResponse',
      safeToRetry: false,
      runContext: body.run_context,
      subject: { runId: body.run_id, nodeRunId: body.node_run_id },
      ...(signal ? { signal } : {}),
    });
    return response!;
  }

  /** Asks the executor to stop a NodeRun (idempotent, so retried); `runContext` carries the trace. */
  async cancel(nodeRunId: string, runContext?: RunContext): Promise<void> {
    await this.http.call({
      runContext,
      subject: { nodeRunId },
      method: 'POST',
      operation: 'cancel',
      path: `/v1/composite-node-runs/${encodeURIComponent(nodeRunId)}:cancel`,
      safeToRetry: true,
      acceptStatuses: [404],
    });
  }
}
