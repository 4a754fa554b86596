/**
 * Selection: `POST /v1/candidate-sets`. The coordinator itself does not select candidates (the
 * composite executor does); the client is here for forks that want the coordinator to.
 */
import type { CandidateSet, CandidateSetRequest } from '../gen/contract.js';
import type { ServiceClient } from './http.js';

export class SelectionClient {
  constructor(readonly http: ServiceClient) {}

  async candidateSet(body: CandidateSetRequest): Promise<CandidateSet> {
    const { body: set } = await this.http.call<CandidateSet>({
      method: 'POST',
      operation: 'generate_candidate_set',
      path: '/v1/candidate-sets',
      body,
      requestSchema: 'CandidateSetRequest',
      responseSchema: 'CandidateSet',
      safeToRetry: true,
    });
    return set!;
  }
}
