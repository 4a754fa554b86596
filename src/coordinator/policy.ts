/**
 * Policy checkpoints (`run.start`, `node.run.execute`): the PDP when one is configured, else a
 * local default. A PDP that cannot answer is a deny, never an allow.
 */

import { TokenRequestError } from '../auth/outbound.js';
import { ServiceError } from '../clients/http.js';
import type { PdpClient } from '../clients/pdp.js';
import type { PolicyDecision, PolicyDecisionRequest } from '../gen/contract.js';

export interface PolicyPort {
  decide(request: PolicyDecisionRequest): Promise<PolicyDecision>;
  /** The decision every checkpoint gets, when it is known without asking (no PDP). */
  readonly local?: PolicyDecision;
}

/** Without a PDP: every checkpoint gets the configured default. */
export function localPolicy(outcome: 'allow' | 'deny'): PolicyPort {
  const decision: PolicyDecision =
    outcome === 'allow'
      ? {
          decision: 'allow',
          reason_code: 'policy_default_allow',
          message: 'No PDP configured; RC_POLICY_DEFAULT=allow',
        }
      : {
          decision: 'deny',
          reason_code: 'policy_unconfigured',
          message: 'No PDP configured; RC_POLICY_DEFAULT=deny',
        };
  return { decide: async () => decision, local: decision };
}

export function pdpPolicy(pdp: PdpClient, onError: (error: unknown) => void = () => {}): PolicyPort {
  return {
    async decide(request) {
      try {
        return await pdp.decide(request);
      } catch (error) {
        onError(error);
        const code =
          error instanceof ServiceError || error instanceof TokenRequestError ? error.code : 'pdp_error';
        return {
          decision: 'deny',
          reason_code: 'pdp_unavailable',
          message: `The PDP could not decide (${code})`,
        };
      }
    },
  };
}
