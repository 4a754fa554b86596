/**
 * The tracer provider the process exports spans with, from the standard OpenTelemetry variables:
 * spans go over OTLP/HTTP when `OTEL_TRACES_EXPORTER=otlp` or an OTLP endpoint
 * (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, to the console with
 * `OTEL_TRACES_EXPORTER=console`; with none of them (or `OTEL_SDK_DISABLED=true`,
 * `OTEL_TRACES_EXPORTER=none`) there is no provider, and the service records no spans at all.
 * The exporter reads its own variables (endpoint, headers, protocol `http/json` or
 * `http/protobuf`, timeout).
 */
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';

export interface ExportingProvider {
  readonly provider: BasicTracerProvider;
  /** For the startup log. */
  readonly description: string;
}

export async function tracerProviderFromEnv(
  env: NodeJS.ProcessEnv,
  version: string,
): Promise<ExportingProvider | undefined> {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  const named = env.OTEL_TRACES_EXPORTER?.trim().toLowerCase();
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const kind = named ?? (endpoint ? 'otlp' : 'none');
  let exporter: SpanExporter;
  let description: string;
  if (kind === 'none') return undefined;
  if (kind === 'otlp') {
    // Loaded only when used: a service that exports nothing never loads the exporter.
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    exporter = new OTLPTraceExporter();
    description = `OTLP/HTTP${endpoint ? ` to ${redactedEndpoint(endpoint)}` : ''}`;
  } else if (kind === 'console') {
    exporter = new ConsoleSpanExporter();
    description = 'console';
  } else {
    throw new Error(`OTEL_TRACES_EXPORTER: '${named}' is not supported (otlp, console or none)`);
  }
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': env.OTEL_SERVICE_NAME || 'arp-run-coordinator',
      'service.version': version,
    }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  return { provider, description };
}

/** The endpoint for the log, without credentials. */
function redactedEndpoint(raw: string): string {
  try {
    const url = new URL(raw);
    url.username = '';
    url.password = '';
    url.search = '';
    return url.toString();
  } catch {
    return '(unparseable URL)';
  }
}
