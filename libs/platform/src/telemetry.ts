// Tracing: the OpenTelemetry SDK, configured only by the standard OTEL_* environment variables
// and started before @grpc/grpc-js and ioredis are loaded (each app's instrument.ts imports this
// first). With no OTLP endpoint or exporter set it does nothing, and `tracingEnabled()` stays
// false so the hot path skips span work altogether.
import { NodeSDK } from '@opentelemetry/sdk-node';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';

let sdk: NodeSDK | undefined;

export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env['OTEL_SDK_DISABLED'] === 'true') return false;
  if (env['OTEL_TRACES_EXPORTER'] === 'none') return false;
  return Boolean(env['OTEL_EXPORTER_OTLP_ENDPOINT'] || env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] || env['OTEL_TRACES_EXPORTER']);
}

export function tracingEnabled(): boolean {
  return sdk !== undefined;
}

export function startTelemetry(serviceName: string, env: NodeJS.ProcessEnv = process.env): void {
  if (sdk || !tracingRequested(env)) return;
  if (!env['OTEL_SERVICE_NAME']) env['OTEL_SERVICE_NAME'] = serviceName;
  // Metrics go to our own Prometheus endpoint and logs to stdout, not through the SDK.
  env['OTEL_METRICS_EXPORTER'] ??= 'none';
  env['OTEL_LOGS_EXPORTER'] ??= 'none';
  sdk = new NodeSDK({
    instrumentations: [new GrpcInstrumentation(), new IORedisInstrumentation({ requireParentSpan: true })],
  });
  sdk.start();
}

/** Flushes and stops the exporter (spans still buffered are sent). */
export async function stopTelemetry(): Promise<void> {
  const s = sdk;
  sdk = undefined;
  await s?.shutdown().catch(() => undefined);
}
