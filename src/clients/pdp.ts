/** Policy Decision Point: `POST /v1/policy:decide`. */
import type { PolicyDecision, PolicyDecisionRequest } from '../gen/contract.js';
import type { ServiceClient } from './http.js';

export class PdpClient {
  constructor(readonly http: ServiceClient) {}

  /** Decisions have no side effects, so transport failures are retried. */
  async decide(body: PolicyDecisionRequest): Promise<PolicyDecision> {
    const { body: decision } = await this.http.call<PolicyDecision>({
      method: 'POST',
      operation: 'decide',
      path: '/v1/policy:decide',
      body,
      requestSchema: 'PolicyDecisionRequest',
      responseSchema: 'PolicyDecision',
      safeToRetry: true,
      runContext: body.run_context,
      subject: { runId: body.run_id, ...(body.node_run_id ? { nodeRunId: body.node_run_id } : {}) },
    });
    return decision!;
  }
}
