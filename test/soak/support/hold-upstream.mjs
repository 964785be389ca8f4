// A plain TCP upstream in its own process (its own file-descriptor budget), for the soak's
// concurrent flows: on a connection's first bytes it answers REPLY, then echoes whatever comes,
// and closes when the other side does. Prints {"port":N} once listening; SIGTERM stops it.
import { createServer } from 'node:net';

const REPLY = Buffer.from('portcullis-soak-up\n');
let open = 0;
const server = createServer((s) => {
  open++;
  s.on('close', () => open--);
  s.on('error', () => undefined);
  s.once('data', () => {
    s.write(REPLY);
    s.on('data', (d) => s.write(d));
  });
});
server.maxConnections = 1_000_000;
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGUSR2', () => process.stdout.write(`${JSON.stringify({ open })}\n`));
process.on('SIGTERM', () => process.exit(0));
