// The floor for a Node relay (BENCH_BARE=1, candidate node-bare): waits for the client's first
// bytes like a sniffer would, connects to the one upstream, writes them, then pipes both ways.
// No parsing, no policy, no logs, no events, no timers: what Node itself costs per connection.
import { connect, createServer } from 'node:net';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
const server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
  client.on('error', () => client.destroy());
  client.once('data', (first) => {
    client.pause();
    const upstream = connect({ host: '127.0.0.1', port: upstreamPort, allowHalfOpen: true, noDelay: true }, () => {
      upstream.write(first);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
});
server.listen(listenPort, '127.0.0.1', () => console.log(`node-bare listening on ${listenPort}`));
process.on('SIGTERM', () => process.exit(0));
