import { describe, expect, it } from 'vitest';
import { sharedNodeTypeRef } from '../../src/core/refs.js';

describe('sharedNodeTypeRef', () => {
  it('answers one frozen object per plain {node_type_id, version}, equal to what was sent', () => {
    const first = sharedNodeTypeRef(JSON.parse('{"node_type_id":"atomic.x","version":"1"}'));
    const again = sharedNodeTypeRef(JSON.parse('{"node_type_id":"atomic.x","version":"1"}'));
    expect(again).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(JSON.stringify(first)).toBe('{"node_type_id":"atomic.x","version":"1"}');
    expect(sharedNodeTypeRef({ node_type_id: 'atomic.x', version: '2' })).not.toBe(first);
  });

  it('keeps a ref with extensions, another key order or a missing field as it is', () => {
    const withExtensions = { node_type_id: 'a', version: '1', extensions: { 'x.y': 1 } };
    const reordered = JSON.parse('{"version":"1","node_type_id":"a"}');
    const partial = { node_type_id: 'a' } as never;
    for (const ref of [withExtensions, reordered, partial]) expect(sharedNodeTypeRef(ref)).toBe(ref);
  });

  it('still answers equal refs after more distinct types than it keeps', () => {
    for (let i = 0; i < 10_050; i++) {
      const ref = sharedNodeTypeRef({ node_type_id: `t${i}`, version: '1' });
      expect(ref).toEqual({ node_type_id: `t${i}`, version: '1' });
    }
    const a = sharedNodeTypeRef({ node_type_id: 't10049', version: '1' });
    expect(sharedNodeTypeRef({ node_type_id: 't10049', version: '1' })).toBe(a);
  });
});
