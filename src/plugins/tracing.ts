/** A span per request when tracing is on (see src/tracing). */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { installServerSpans, type Tracing } from '../tracing/tracing.js';

async function tracing(app: FastifyInstance, options: { readonly tracing: Tracing }) {
  installServerSpans(app, options.tracing);
}

export default fp(tracing, { name: 'arp-rc-tracing' });
