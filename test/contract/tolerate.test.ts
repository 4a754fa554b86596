/** Peers' answers: nulls for absent fields and un-namespaced extension keys are dropped, nothing else. */
import { describe, expect, it } from 'vitest';
import { loadContract } from '../../src/contract/contract.js';
import { ContractValidators } from '../../src/contract/validators.js';

const validators = new ContractValidators(loadContract());

describe('tolerate', () => {
  it('drops null fields of a JARVIS-style AtomicExecuteResult but keeps nulls inside free-form outputs', () => {
    const raw = {
      node_run_id: 'n1',
      state: 'failed',
      outputs: { sha256: null, nested: { keep: null } },
      output_artifacts: null,
      started_at: '2026-01-01T00:00:00Z',
      ended_at: null,
      error: {
        code: 'handler_error',
        message: 'boom',
        details: null,
        retryable: null,
        cause: null,
        extensions: null,
      },
      extensions: null,
    };
    const tolerated = validators.tolerate('AtomicExecuteResult', raw);
    expect(tolerated).toEqual({
      node_run_id: 'n1',
      state: 'failed',
      outputs: { sha256: null, nested: { keep: null } },
      started_at: '2026-01-01T00:00:00Z',
      error: { code: 'handler_error', message: 'boom' },
    });
    expect(validators.validate('AtomicExecuteResult', raw)).not.toEqual([]);
    expect(validators.validate('AtomicExecuteResult', tolerated)).toEqual([]);
    expect(raw.extensions).toBeNull();
  });

  it('drops un-namespaced extension keys and keeps namespaced ones', () => {
    const tolerated = validators.tolerate('PolicyDecision', {
      decision: 'allow',
      reason_code: 'explicit_allow',
      message: null,
      approval_ref: null,
      extensions: { policy_hash: 'abc', 'jarvis.policy_version': 'e2e-1' },
    });
    expect(tolerated).toEqual({
      decision: 'allow',
      reason_code: 'explicit_allow',
      extensions: { 'jarvis.policy_version': 'e2e-1' },
    });
  });

  it('walks arrays and nested refs (NodeType with null constraints and metadata)', () => {
    const tolerated = validators.tolerate('NodeType', {
      node_type_id: 'jarvis.core.echo',
      version: '0.3.8',
      kind: 'atomic',
      constraints: null,
      metadata: { labels: null, annotations: { a: 'b' } },
      input_schema: { properties: { echo: { type: ['string', 'null'] } }, default: null },
    });
    expect(tolerated).toEqual({
      node_type_id: 'jarvis.core.echo',
      version: '0.3.8',
      kind: 'atomic',
      metadata: { annotations: { a: 'b' } },
      input_schema: { properties: { echo: { type: ['string', 'null'] } }, default: null },
    });
    expect(validators.validate('NodeType', tolerated)).toEqual([]);
  });

  it('still lets the validator reject what is really wrong', () => {
    const tolerated = validators.tolerate('AtomicExecuteResult', {
      node_run_id: 'n1',
      state: 'exploded',
      extra: 1,
    });
    expect(validators.validate('AtomicExecuteResult', tolerated).length).toBeGreaterThan(0);
  });
});
