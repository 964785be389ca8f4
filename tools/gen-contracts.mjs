// Regenerates libs/contracts/src/generated from proto/ (never edit the output by hand).
import { execFileSync } from 'node:child_process';
import { rmSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const out = 'libs/contracts/src/generated';
rmSync(out, { recursive: true, force: true });
const protos = readdirSync('proto/portcullis/v1').filter((f) => f.endsWith('.proto')).map((f) => join('portcullis/v1', f));
execFileSync(
  'node_modules/.bin/proto-loader-gen-types',
  ['--longs=Number', '--enums=String', '--defaults', '--oneofs', '--keepCase', '--grpcLib=@grpc/grpc-js', '-I', 'proto', '-O', out, ...protos],
  { stdio: 'inherit' },
);
