export { normalizeName, normalizeRuleName } from './names';
export type { NameProblem, NameResult } from './names';

export {
  ClientHelloReader,
  readClientHello,
  parseClientHelloBody,
  isGrease,
  MAX_CLIENT_HELLO_BYTES,
  MAX_RECORD_PAYLOAD,
  RECORD_HEADER_BYTES,
  HANDSHAKE_HEADER_BYTES,
  CONTENT_TYPE_HANDSHAKE,
  HANDSHAKE_CLIENT_HELLO,
  EXTENSION,
} from './client-hello';
export type { ClientHelloInfo, EchInfo, HelloResult, InvalidHelloReason, SniResult } from './client-hello';

export { detectProtocol, HTTP_METHODS } from './protocol';
export type { DetectedProtocol } from './protocol';

// Test support that other projects' tests use to craft hellos real clients never send.
export { buildClientHello, buildHandshake, buildHelloBody, defaultExtensions, frameRecords, unframeRecords, helloExtensions, TRAILING_RECORDS } from './testing/build-hello';
export type { HelloSpec, HelloExtension, FrameOptions } from './testing/build-hello';

export { ConnectRequestReader, readConnectRequest, parseAuthority, MAX_CONNECT_HEAD_BYTES } from './http-connect';
export type { ConnectRequest, ConnectResult, ConnectBadReason } from './http-connect';

export { SocksGreetingReader, SocksRequestReader, readSocksGreeting, readSocksRequest, socksReply, SOCKS_VERSION, SOCKS_METHOD_NO_AUTH, SOCKS_METHOD_NONE_ACCEPTABLE, SOCKS_REPLY } from './socks5';
export type { SocksGreetingResult, SocksRequestResult, SocksRequestInvalid } from './socks5';

export { ProxyHeaderReader, readProxyHeader, MAX_PROXY_V1_BYTES, MAX_PROXY_V2_BYTES, PROXY_V2_SIGNATURE, PP2_TYPE } from './proxy-protocol';
export type { ProxyHeader, ProxyResult, ProxyEndpoint, ProxyFamily, ProxyInvalidReason } from './proxy-protocol';

export { parseIpv4, parseIpv6, formatIpv4, formatIpv6 } from './ip';
export type { HostType } from './ip';
