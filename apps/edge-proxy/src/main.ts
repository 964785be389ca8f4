// edge-proxy: one service process, started from the config file named by --config.
import { startEdgeProxy } from '@portcullis/edge';
import { runServiceMain } from '@portcullis/platform';

runServiceMain('edge-proxy', startEdgeProxy);
