// Loaded first by main.ts: tracing must hook @grpc/grpc-js and ioredis before anything loads them.
import { startTelemetry } from '@portcullis/platform/telemetry';

startTelemetry('cli');
